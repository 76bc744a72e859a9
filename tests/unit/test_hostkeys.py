"""Pinned SSH host keys: the config refuses what is not one ed25519 key per host, kept as a secret;
known_hosts files are made from the public halves only; this machine's copy of the stack file keeps
the per-host secrets that `pulumi config set --secret --path` writes."""

import copy
import json
import subprocess

import pytest

from components.config import ConfigError, parse_config
from components.hostkeys import HostKeyError, fingerprint, generate, known_hosts_lines, public_key, stack_known_hosts
from tests.conftest import ROOT
from webha.localstack import machine_specific, merge
from webha.stackfile import read_stack_values, secrets_for

pytestmark = pytest.mark.unit
HOSTS = ("web01", "mysql01", "web02")
# The dev stack carries no VRRP password (VRRPv3): only the secrets it uses.
FAKE_SECRETS = secrets_for(read_stack_values(ROOT / "stacks" / "Pulumi.dev.yaml"))
SECRET = {*FAKE_SECRETS, "sshHostKeys"}


@pytest.fixture(scope="module")
def keys() -> dict[str, str]:
    return {h: generate() for h in HOSTS}


def raw_with(keys) -> dict:
    raw = read_stack_values(ROOT / "stacks" / "Pulumi.dev.yaml")
    raw.update(FAKE_SECRETS)
    raw["sshHostKeys"] = copy.deepcopy(keys)
    return raw


def test_generated_keys_are_distinct_ed25519_that_openssh_reads(keys, tmp_path):
    assert len(set(keys.values())) == 3
    for host, key in keys.items():
        f = tmp_path / host
        f.write_text(key)
        f.chmod(0o600)
        ssh = subprocess.run(["ssh-keygen", "-y", "-f", str(f)], capture_output=True, text=True, check=True)
        assert ssh.stdout.split()[:2] == public_key(key).split()
        assert public_key(key).startswith("ssh-ed25519 ")
        (tmp_path / f"{host}.pub").write_text(public_key(key) + "\n")
        fp = subprocess.run(["ssh-keygen", "-l", "-f", str(tmp_path / f"{host}.pub")], capture_output=True,
                            text=True, check=True).stdout.split()[1]
        assert fingerprint(public_key(key)) == fp


def test_config_gives_each_hosts_public_key(keys):
    cfg = parse_config(raw_with(keys), SECRET)
    assert cfg.host_public_keys() == {h: public_key(k) for h, k in keys.items()}
    assert keys["web01"] not in repr(cfg) and keys["web01"].splitlines()[2] not in str(cfg.model_dump())


def test_a_plaintext_host_key_is_refused(keys):
    with pytest.raises(ConfigError, match=r"webha:sshHostKeys: stored in plaintext"):
        parse_config(raw_with(keys), set(FAKE_SECRETS))


@pytest.mark.parametrize("bad,words", [
    ("not a key", "not an unencrypted OpenSSH private key"),
    ("-----BEGIN OPENSSH PRIVATE KEY-----\n{\n-----END OPENSSH PRIVATE KEY-----\n", "not an unencrypted"),
    ("ecdsa", "must be an ed25519 key"),
])
def test_a_bad_host_key_names_the_host_and_never_quotes_it(keys, bad, words, tmp_path):
    if bad == "ecdsa":
        subprocess.run(["ssh-keygen", "-q", "-t", "ecdsa", "-N", "", "-f", str(tmp_path / "k")], check=True)
        bad = (tmp_path / "k").read_text()
    raw = raw_with(keys)
    raw["sshHostKeys"]["web02"] = bad
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, SECRET)
    msg = str(exc.value)
    assert msg.startswith("webha:sshHostKeys.web02: ") and words in msg, msg
    assert bad.strip().splitlines()[-1] not in msg or "END" in bad.strip().splitlines()[-1]


def test_a_host_key_for_an_unknown_host_is_refused(keys):
    raw = raw_with(keys)
    raw["sshHostKeys"]["web03"] = generate()
    with pytest.raises(ConfigError, match=r"webha:sshHostKeys: web03 is not a host"):
        parse_config(raw, SECRET)


def test_a_missing_host_key_is_named_at_build(keys):
    raw = raw_with(keys)
    del raw["sshHostKeys"]["mysql01"]
    cfg = parse_config(raw, SECRET)
    with pytest.raises(ConfigError, match=r"webha:sshHostKeys\.mysql01: missing .*--secret --path sshHostKeys\.mysql01"):
        cfg.host_public_keys()


def test_known_hosts_from_the_stack_outputs(keys):
    out = {"hosts": {"web01": "10.1.1.11", "mysql01": "10.1.1.12", "web02": "10.1.1.13"},
           "sshHostKeys": {h: public_key(k) for h, k in keys.items()}}
    text = stack_known_hosts(json.loads(json.dumps(out)))
    assert text.splitlines() == [f"{out['hosts'][h]} {public_key(keys[h])}" for h in sorted(keys)]
    with pytest.raises(HostKeyError, match="lack `sshHostKeys`"):
        stack_known_hosts({"hosts": out["hosts"]})
    with pytest.raises(HostKeyError, match="not an ssh-ed25519 public key"):
        known_hosts_lines([(["10.1.1.11"], "ssh-rsa AAAA")])


def test_the_known_hosts_cli_writes_what_openssh_reads(keys, tmp_path):
    out = {"hosts": {"web01": "10.1.1.11"}, "sshHostKeys": {"web01": public_key(keys["web01"])}}
    path = tmp_path / "known_hosts"
    subprocess.run([".venv/bin/python", "-m", "webha.hostkeys", "known-hosts", str(path)], cwd=ROOT,
                   input=json.dumps(out), text=True, check=True)
    found = subprocess.run(["ssh-keygen", "-F", "10.1.1.11", "-f", str(path)], capture_output=True, text=True)
    assert found.returncode == 0 and public_key(keys["web01"]) in found.stdout


def test_this_machines_copy_keeps_the_per_host_secrets():
    committed = {"config": {"webha:vrrp": {"advertInt": 2}}}
    runtime = {"config": {"webha:sshHostKeys": {"web01": {"secure": "v1:a"}, "web02": {"secure": "v1:b"}}}}
    assert merge(committed, runtime)["config"]["webha:sshHostKeys"] == runtime["config"]["webha:sshHostKeys"]
    # and a committed file with one is refused like any other secret
    assert machine_specific(runtime) == ["webha:sshHostKeys"]


def test_operator_tools_trust_only_the_pinned_keys(tmp_path):
    from webha.executor import ssh_executors
    from webha.stackfile import load_stack_file

    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.local.yaml")
    kh = str(tmp_path / "known_hosts")
    for ex in ssh_executors(cfg, kh).values():
        argv = " ".join(ex.ssh_argv())
        assert "-o StrictHostKeyChecking=yes" in argv and f"-o UserKnownHostsFile={kh}" in argv, argv
        assert "-o GlobalKnownHostsFile=/dev/null" in argv


def test_no_trust_on_first_use_anywhere():
    """No committed code or script accepts a new host key (smoke-vm.sh's throwaway VM aside)."""
    res = subprocess.run(["git", "grep", "-n", "-e", "accept-new", "-e", "StrictHostKeyChecking=no",
                          "--", ".", ":!tests", ":!*.md", ":!scripts/smoke-vm.sh"],
                         cwd=ROOT, capture_output=True, text=True)
    assert res.stdout == "", res.stdout


def test_the_tier_check_refuses_a_spec_without_the_public_keys(tmp_path, keys):
    """`webha verify` (the tier check) trusts only the keys its spec carries: none, no check."""
    from components.tiercheck import HOST_KEYS_FIELD, check_spec

    cfg = parse_config(raw_with(keys), SECRET)
    spec = json.loads(check_spec(cfg, cfg.host_public_keys()))
    assert spec[HOST_KEYS_FIELD]["web01"] == public_key(keys["web01"]) and "sshHostKeys" not in spec
    del spec[HOST_KEYS_FIELD]["web02"]
    res = subprocess.run([".venv/bin/python", "-m", "webha", "verify", "--config-json", "-"], cwd=ROOT,
                         input=json.dumps(spec), capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and f"{HOST_KEYS_FIELD}: no public host key for web02" in res.stderr, res.stderr


def test_a_failed_command_on_the_guest_is_described_never_empty_never_with_the_key(keys):
    """The HostKey step's error says what failed, with the guest's stderr and stdout (or that
    there was none), and never quotes a line of the private key it sent."""
    from types import SimpleNamespace

    from webha.hostkeys import _failure

    args = SimpleNamespace(name="web02")
    private = keys["web02"]
    line = private.splitlines()[2]
    silent = _failure(args, "the install script", subprocess.CompletedProcess([], 1, "", ""), private)
    assert silent == "[web02] the install script on the guest -> exit 1; no stderr; no stdout"
    leaky = _failure(args, "the install script",
                     subprocess.CompletedProcess([], 2, "progress\n", f"bad key: {line}\n"), private)
    assert line not in leaky and "bad key: [private key]" in leaky
    assert leaky.endswith("-> exit 2; stderr: bad key: [private key]; stdout: progress")
