"""The resource graph under Pulumi mocks: what `pulumi up` would declare, without a machine.

The order and secrecy checks read what the engine RECEIVES: every RegisterResource request goes
through :class:`RecordingMonitor`, which keeps the request's ``dependencies`` (the URNs Pulumi will
order the resource after) and its serialized inputs, where a secret is still wrapped in the SDK's
secret signature (the mocks' ``new_resource`` only sees unwrapped values).
"""

import json
import re
import subprocess

import pulumi
import pytest
from google.protobuf import json_format
from pulumi.runtime.mocks import MockMonitor

from components.hostkeys import generate as generate_host_key
from tests.conftest import ROOT
from webha.stackfile import FAKE_SECRETS, read_stack_values, secrets_for

pytestmark = pytest.mark.unit

# pulumi/sdk/python/lib/pulumi/runtime/rpc.py: _special_sig_key / _special_secret_sig
SPECIAL_SIG_KEY = "4dabf18193072939515e22adb298388d"
SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"


class Recorder(pulumi.runtime.Mocks):
    def __init__(self):
        self.resources = []

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        self.resources.append(args)
        outputs = dict(args.inputs)
        if args.typ == "command:remote:Command":
            outputs.update(stdout="", stderr="")
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs):
        return {}

    def of_type(self, typ):
        return [r for r in self.resources if r.typ == typ]


class RecordingMonitor(MockMonitor):
    """The mock engine, keeping each RegisterResource request as the engine got it."""

    def __init__(self, mocks):
        super().__init__(mocks)
        self.requests: dict[str, object] = {}  # resource name -> request
        self.typed: dict[tuple[str, str], object] = {}  # (type, name) -> request (components too)

    def RegisterResource(self, request):
        response = super().RegisterResource(request)
        self.requests[request.name] = request
        self.typed[(request.type, request.name)] = request
        return response

    def deps(self, name: str) -> set[str]:
        """Names of the resources the engine will create ``name`` after."""
        return {urn.rsplit("::", 1)[-1] for urn in self.requests[name].dependencies}

    def command_deps(self, name: str) -> set[str]:
        commands = {n for n, r in self.requests.items() if r.type == "command:remote:Command"}
        return self.deps(name) & commands

    def raw_input(self, name: str, key: str):
        """An input as serialized for the engine (a secret is ``{SIG: SECRET_SIG, value: ...}``)."""
        obj = json_format.MessageToDict(self.requests[name].object)
        return obj.get(key)


def is_secret(value) -> bool:
    return isinstance(value, dict) and value.get(SPECIAL_SIG_KEY) == SECRET_SIG


def build_graph(stack: str, tmp, raw: dict | None = None):
    """Run the program under mocks for ``stack`` (or ``raw`` config values); returns (mocks, tier)
    with ``mocks.monitor`` holding the engine's view."""
    key = tmp / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    raw = raw or read_stack_values(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    raw["ssh"]["privateKeyPath"] = str(key)
    # The image files are checked at preview when libvirt is local: stand-ins that exist.
    for field in ("source", "kernel", "initrd"):
        if raw["image"].get(field):
            (tmp / field).write_text("stand-in")
            raw["image"][field] = str(tmp / field)
    secrets = secrets_for(raw)  # dev: VRRPv3, no password; local: VRRPv2 + PASS
    raw.update(secrets)
    # As `pulumi config set --secret` stores a key read from stdin: without its final newline.
    raw["sshHostKeys"] = {h["name"]: generate_host_key().rstrip("\n") for h in raw["hosts"]}
    config = {f"webha:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    pulumi.runtime.set_all_config(config, [f"webha:{k}" for k in [*secrets, "sshHostKeys"]])
    mocks = Recorder()
    monitor = RecordingMonitor(mocks)
    pulumi.runtime.set_mocks(mocks, project="webha", stack=stack, preview=False, monitor=monitor)
    from components.program import build

    tier = build()

    @pulumi.runtime.test
    def settle():
        return pulumi.Output.all(*[vm.domain.id for vm in tier["vms"].values()])

    settle()
    mocks.monitor = monitor
    mocks.host_keys = raw["sshHostKeys"]
    return mocks, tier


@pytest.fixture(scope="module", params=["dev", "local", "local-snapshot", "local-replicate"])
def graph(request, tmp_path_factory):
    stack, _, variant = request.param.partition("-")
    raw = read_stack_values(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    if variant:  # database.mode set explicitly; "dev" and "local" run the default
        raw["database"] = {**raw.get("database", {}), "mode": variant}
    mocks, tier = build_graph(stack, tmp_path_factory.mktemp("graph"), raw)
    return stack, mocks, tier


def test_three_domains_with_addresses(graph):
    stack, mocks, _ = graph
    domains = {r.inputs["name"]: r.inputs for r in mocks.of_type("libvirt:index/domain:Domain")}
    prefix = "webha-dev" if stack == "dev" else "webha-local"
    assert sorted(domains) == sorted(f"{prefix}-{h}" for h in ("web01", "mysql01", "web02"))
    assert {d["type"] for d in domains.values()} == {"kvm" if stack == "dev" else "qemu"}
    macs = {n: d["networkInterfaces"][0]["mac"] for n, d in domains.items()}
    assert macs[f"{prefix}-web01"] == "52:54:00:01:01:0b"
    seeds = {r.inputs["name"]: r.inputs for r in mocks.of_type("libvirt:index/cloudInitDisk:CloudInitDisk")}
    web02 = dict(seeds[f"{prefix}-web02-seed.iso"])
    assert is_secret(web02["userData"]), "user-data carries the host private key: a secret"
    web02["userData"] = web02["userData"]["value"]
    assert 'hostname: "web02"' in web02["userData"] and 'fqdn: "web02.itcast.cn"' in web02["userData"]
    assert "10.1.1.13/24" in web02["networkConfig"]
    assert "10.1.1.12       mysql01.itcast.cn mysql01" in web02["userData"]
    assert "policy drop" in web02["userData"]


def test_kernel_cmdline_in_the_providers_read_back_shape():
    from components.vm import kernel_cmdline

    # What terraform-provider-libvirt 0.8 read back for this cmdline on a real domain.
    assert kernel_cmdline("root=/dev/vda rw console=ttyS0 net.ifnames=0") == [
        {"console": "ttyS0", "net.ifnames": "0", "root": "/dev/vda"}, {"_": "rw"}]
    assert kernel_cmdline("quiet console=tty0 console=ttyS0 rw") == [
        {"console": "tty0"}, {"console": "ttyS0"}, {"_": "quiet rw"}]


def test_isolated_network(graph):
    _, mocks, _ = graph
    (net,) = mocks.of_type("libvirt:index/network:Network")
    assert net.inputs["mode"] == "none" and net.inputs["addresses"] == ["10.1.1.0/24"]


def test_deployment_order(graph):
    """Every edge of the README's order, as the engine receives it (RegisterResource.dependencies)."""
    _, mocks, tier = graph
    mon = mocks.monitor
    hosts = list(tier["vms"])
    for name in hosts:
        assert f"{name}-domain" in mon.deps(f"{name}-prep"), mon.deps(f"{name}-prep")
    # every step runs after its own files are copied
    for name, req in mon.requests.items():
        if req.type == "command:remote:Command":
            assert f"{name}-script" in mon.deps(name), name
    steps = [s.command._name for s in tier["migration"].steps]
    first, *rest = steps
    assert {f"{h}-prep" for h in hosts} <= mon.command_deps(first)
    for before, step in zip([first, *rest], rest):
        assert before in mon.command_deps(step), (step, mon.command_deps(step))
    if tier["config"].database.mode == "replicate":
        # the web tier between the source's readiness and the move; every web node switched
        # after the move, the tier check after the switches
        last_db = "db-source-app"
        assert steps.index(last_db) < steps.index("db-migrate-credential")
        assert {"web01-keepalived-start", "web02-keepalived-start"} & mon.command_deps("db-migrate-credential")
        assert {"web01-keepalived", "web02-keepalived"} <= mon.command_deps("db-migrate-credential")
        for web in tier["webs"]:
            assert "db-source-retire" in mon.command_deps(web.app_switch.step_name)
        assert {w.app_switch.step_name for w in tier["webs"]} <= mon.command_deps("tier-check")
    else:
        last_db = rest[-1] if rest else first
        assert all(w.app_switch is None for w in tier["webs"])
    for web in tier["webs"]:
        app, install = web.app_config.step_name, web.web_install.step_name
        assert last_db in mon.command_deps(app), mon.command_deps(app)
        assert app in mon.command_deps(install)
    installs = {w.web_install.step_name for w in tier["webs"]}
    assert installs <= mon.command_deps("web02-keepalived")
    assert installs | {"web02-keepalived"} <= mon.command_deps("web01-keepalived")  # backups first
    starts = tier["ha"].starts
    assert list(starts) == ["web01", "web02"]  # preferred node first
    assert installs | {"web01-keepalived"} <= mon.command_deps("web01-keepalived-start")
    assert installs | {"web01-keepalived", "web02-keepalived", "web01-keepalived-start"} <= \
        mon.command_deps("web02-keepalived-start")
    # and nothing runs before what it needs: no step depends on a later one
    assert "web01-keepalived-start" not in mon.command_deps("web02-keepalived")


def test_commands_have_triggers_and_undo(graph):
    _, mocks, _ = graph
    commands = {r.name: r.inputs for r in mocks.of_type("command:remote:Command")}
    # A changed file changes the command's create (content-addressed script path): an update.
    for name, c in commands.items():
        assert re.fullmatch(rf"bash /var/lib/webha/steps/{name}\.[0-9a-f]{{16}}\.sh", c["create"])
    # Triggers (a replacement) only where there is no undo to run after the re-run.
    assert all(c.get("triggers") for n, c in commands.items() if n.startswith("db-"))
    assert not [n for n, c in commands.items() if c.get("triggers") and c.get("delete")]
    assert commands["web01-keepalived"]["delete"].startswith("bash /var/lib/webha/steps/")
    copies = [r.inputs for r in mocks.of_type("command:remote:CopyToRemote")]
    assert any(c["remotePath"].endswith("/check_nginx.sh") for c in copies)


def test_secrets_only_travel_on_stdin(graph):
    _, mocks, tier = graph
    for r in mocks.resources:
        text = json.dumps(r.inputs, default=str)
        leaks = [s for s in FAKE_SECRETS.values() if s in text]
        if leaks:
            assert r.typ == "command:remote:Command", (r.name, r.typ)
            assert all(s not in json.dumps({k: v for k, v in r.inputs.items() if k != "stdin"}, default=str)
                       for s in leaks), r.name



def test_secret_stdin_is_registered_secret(graph):
    """The engine receives every stdin that carries a secret as a secret (encrypted in state)."""
    from components.config import parse_config
    from components.migration_plan import secret_values

    stack, mocks, tier = graph
    mon = mocks.monitor
    raw = read_stack_values(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    secrets = secrets_for(raw)
    values = [*secrets.values(), *secret_values(parse_config({**raw, **secrets}, set(secrets))).values()]
    # every migration step that reads stdin reads secrets on it (the plan's contract)
    must = {n for n, r in mon.requests.items()
            if r.type == "command:remote:Command" and n.startswith("db-") and mon.raw_input(n, "stdin") is not None}
    assert must, "no migration step with stdin registered"
    must |= {*(f"{w}-app-config" for w in ("web01", "web02")), *(f"{w}-keepalived" for w in ("web01", "web02"))}
    seen = set()
    for name, req in mon.requests.items():
        stdin = mon.raw_input(name, "stdin")
        if stdin is None:
            continue
        plain = json.dumps(stdin)
        carries = any(v in plain for v in values)
        if name in must or carries:
            assert is_secret(stdin), f"{name}: stdin registered without the secret wrapper"
            seen.add(name)
    assert must <= seen, must - seen


def test_outputs_json_friendly(graph):
    _, _, tier = graph
    out = tier["outputs"]
    assert json.loads(json.dumps(out)) == out
    assert out["vip"] == "10.1.1.100" and out["url"] == "http://10.1.1.100/"
    assert out["hosts"] == {"web01": "10.1.1.11", "mysql01": "10.1.1.12", "web02": "10.1.1.13"}
    assert out["vrrp"]["mode"] == "nopreempt" and out["vrrp"]["virtualRouterId"] == 51


def test_dns_output_registered_is_the_contract(graph):
    """The `dns` stack output as the program exported it: webha.dns/v1, owned by webha/<stack>."""
    from components.outputs import dns_records
    from webha.dns.contract import validate

    stack, _, tier = graph
    exported = pulumi.runtime.settings.get_root_resource().outputs["dns"]
    validate(exported)
    assert exported["owner"] == f"webha/{stack}"
    assert exported == dns_records(tier["config"], "webha", stack)
    service = [r for r in exported["zones"][0]["records"] if r["role"] == "service"]
    assert [(r["fqdn"], r["values"], r["ttl"]) for r in service] == [("shop.itcast.cn", ["10.1.1.100"], 60)]


def test_tier_check_runs_last_and_carries_no_secret(graph):
    """The post-condition of `up` runs after every keepalived start, on this machine, with the
    config (no secret) on stdin; its re-run digest of the secrets is registered as a secret."""
    _, mocks, tier = graph
    mon = mocks.monitor
    req = mon.requests["tier-check"]
    assert req.type == "command:local:Command"
    assert {"web01-keepalived", "web02-keepalived", "web02-keepalived-start"} <= mon.deps("tier-check")
    inputs = {r.name: r.inputs for r in mocks.of_type("command:local:Command")}["tier-check"]
    assert " -m webha verify --config-json - " in inputs["create"]
    spec = json.loads(inputs["stdin"])
    assert spec["vrrp"]["vip"] == "10.1.1.100" and "dbPassword" not in spec
    # the check trusts the stack's public host keys and carries no private one
    assert spec["sshHostPublicKeys"] == {h: _public(k) for h, k in mocks.host_keys.items()}
    assert "sshHostKeys" not in spec
    assert not [s for s in FAKE_SECRETS.values() if s in json.dumps(inputs, default=str)]
    env = mon.raw_input("tier-check", "environment")
    assert is_secret(env["WEBHA_TIER_SECRETS"]) and not is_secret(env["WEBHA_TIER_DIGEST"])


def test_keepalived_conf_is_a_visible_file_without_the_password(graph):
    """A reviewer sees keepalived.conf's changed lines: its text is registered as a plain string
    input of the step's component (the engine elides asset text in diffs); no password in it."""
    stack, mocks, _ = graph
    mon = mocks.monitor
    uses_pass = "vrrpAuthPass" in secrets_for(read_stack_values(ROOT / "stacks" / f"Pulumi.{stack}.yaml"))
    for node in ("web01", "web02"):
        req = mon.typed[("webha:index:RemoteStep", f"{node}-keepalived")]
        files = json_format.MessageToDict(req.object)["files"]
        text = files["keepalived.conf"]
        assert isinstance(text, str) and "advert_int" in text
        assert ("include /etc/keepalived/vrrp-auth.conf" in text) is uses_pass
        assert not [s for s in FAKE_SECRETS.values() if s in json.dumps(files)]


def test_quiesce_runs_on_every_node_before_any_keepalived_config(graph):
    """A changed VRRP instance: every non-holder stops before any node reloads into it."""
    _, mocks, _ = graph
    mon = mocks.monitor
    for apply in ("web01-keepalived", "web02-keepalived"):
        assert {"web01-keepalived-quiesce", "web02-keepalived-quiesce"} <= mon.command_deps(apply), apply
    assert is_secret(mon.raw_input("web01-keepalived-quiesce", "stdin"))


def test_the_rollout_gate_sits_between_every_quiesce_and_every_apply(graph):
    """The whole tier is looked at once (webha/rollout_gate.py) after every node's quiesce and
    before any node's config: the engine creates the gate after both quiesce steps and each
    keepalived-apply after the gate. It re-runs with a changed password (a secret input) and
    carries no secret in its stdin."""
    _, mocks, _ = graph
    mon = mocks.monitor
    gate = "keepalived-rollout-gate"
    assert mon.requests[gate].type == "command:local:Command"
    assert {"web01-keepalived-quiesce", "web02-keepalived-quiesce"} <= mon.deps(gate)
    for apply in ("web01-keepalived", "web02-keepalived"):
        assert gate in mon.deps(apply), apply
    assert "rollout-gate" in mon.raw_input(gate, "create")
    env = mon.raw_input(gate, "environment")
    assert is_secret(env["WEBHA_GATE_SECRETS"])
    stdin = mon.raw_input(gate, "stdin")
    assert isinstance(stdin, str) and not [v for v in FAKE_SECRETS.values() if v in stdin]


# --------------------------------------------------------------------------- pinned host keys
def _public(private: str) -> str:
    from components.hostkeys import public_key

    return public_key(private)


def test_every_connection_pins_its_hosts_key(graph):
    """Every remote command and copy, as the engine receives it, carries ``hostKey`` = the public
    half of the stack's key of the host it connects to (no trust on first use anywhere)."""
    _, mocks, tier = graph
    mon = mocks.monitor
    by_ip = {str(vm.ip): _public(mocks.host_keys[name]) for name, vm in tier["vms"].items()}
    remote = [n for n, r in mon.requests.items()
              if r.type in ("command:remote:Command", "command:remote:CopyToRemote")]
    assert len(remote) > 20
    for name in remote:
        conn = mon.raw_input(name, "connection")
        conn = conn["value"] if is_secret(conn) else conn
        assert conn.get("hostKey") == by_ip[conn["host"]], name


def test_host_keys_are_secret_and_their_public_halves_outputs(graph):
    _, mocks, tier = graph
    mon = mocks.monitor
    privates = list(mocks.host_keys.values())
    body = lambda k: k.split("\n")[1]  # a line of the key's base64, as any dump would hold it
    for name, req in mon.requests.items():
        plain = json.dumps(json_format.MessageToDict(req.object))
        for key in privates:
            if body(key) not in plain:
                continue
            # only inside a registered secret: the seed's user-data and the HostKey step's stdin
            for field, value in json_format.MessageToDict(req.object).items():
                if body(key) in json.dumps(value):
                    assert is_secret(value), (name, field)
    for host, key in mocks.host_keys.items():
        assert is_secret(mon.raw_input(f"{host}-hostkey", "stdin")), host
        user_data = mon.raw_input(f"{host}-seed", "userData")
        assert is_secret(user_data) and body(key) in user_data["value"]
    out = tier["outputs"]["sshHostKeys"]
    assert out == {h: _public(k) for h, k in mocks.host_keys.items()}
    assert not [k for k in privates if body(k) in json.dumps(tier["outputs"])]


def test_cloud_init_installs_only_the_stacks_key(graph, tmp_path):
    import yaml as _yaml

    _, mocks, _ = graph
    seeds = {r.name: r.inputs for r in mocks.of_type("libvirt:index/cloudInitDisk:CloudInitDisk")}
    for host, key in mocks.host_keys.items():
        doc = _yaml.safe_load(seeds[f"{host}-seed"]["userData"]["value"])
        assert doc["ssh_deletekeys"] is True and doc["ssh_genkeytypes"] == ["ed25519"]
        assert doc["ssh_keys"] == {"ed25519_private": key + "\n", "ed25519_public": _public(key)}
        # OpenSSH itself must load the file cloud-init writes (sshd starts with no other key).
        written = tmp_path / f"{host}_ssh_host_ed25519_key"
        written.write_text(doc["ssh_keys"]["ed25519_private"])
        written.chmod(0o600)
        res = subprocess.run(["ssh-keygen", "-y", "-f", str(written)], capture_output=True, text=True)
        assert res.returncode == 0 and res.stdout.split()[:2] == _public(key).split()[:2], res.stderr


def test_host_key_step_runs_before_anything_on_its_host(graph):
    """The HostKey step (a local command: waits for the pinned key, installs a rotated one) runs
    after its guest is created and before the host's first remote command."""
    _, mocks, tier = graph
    mon = mocks.monitor
    for host in tier["vms"]:
        step = f"{host}-hostkey"
        assert mon.requests[step].type == "command:local:Command"
        assert f"{host}-domain" in mon.deps(step)
        assert step in mon.deps(f"{host}-prep"), mon.deps(f"{host}-prep")
        inputs = {r.name: r.inputs for r in mocks.of_type("command:local:Command")}[step]
        assert " -m webha.hostkeys install --name " + host in inputs["create"]
        assert inputs["addPreviousOutputInEnv"] is True
        assert inputs["environment"]["WEBHA_HOST_KEY"] == _public(mocks.host_keys[host])
        # the guest's id: a new guest runs the step again (waits for its cloud-init key)
        assert inputs["triggers"] == [f"{host}-domain-id"]


def test_replicate_mode_restart_step_is_its_own_resource_before_the_move(graph):
    """database.mode: replicate: binary logging on the source is a named step of its own, before
    any step of the move (so `pulumi preview` lists it); db-migrate gets the switched
    database.php as a secret on stdin. Snapshot mode has no such step."""
    _, mocks, tier = graph
    names = [s.command._name for s in tier["migration"].steps]
    mon = mocks.monitor
    if tier["config"].database.mode == "snapshot":
        assert "db-source-binlog" not in names
        return
    assert names.index("db-source-binlog") < names.index("db-migrate-credential")
    assert "db-source-binlog" in mon.command_deps("db-source-app")
    assert "db-source-app" in mon.command_deps("db-migrate-credential")
    assert names[-1] == "db-source-retire"
    assert is_secret(mon.raw_input("db-migrate", "stdin"))
    assert is_secret(mon.raw_input("db-source-app", "stdin"))


def test_replicate_mode_app_on_the_source_until_every_node_is_switched(graph):
    """The app config each web node gets, as registered: replicate mode points it at the source
    before the move (never back once switched) and a switch step per node points it at the
    target; snapshot mode points it at the target once. Both files travel as secrets."""
    _, mocks, tier = graph
    mon = mocks.monitor
    cfg = tier["config"]
    source, target = str(cfg.host(cfg.database.source_host).ip), str(cfg.db_host.ip)
    for web in tier["webs"]:
        script = web.app_config.command._name
        stdin = mon.raw_input(script, "stdin")
        assert is_secret(stdin)
        if cfg.database.mode == "snapshot":
            assert f"'hostname' => '{target}'" in stdin["value"]
            continue
        assert f"'hostname' => '{source}'" in stdin["value"], stdin["value"]
        switch = mon.raw_input(web.app_switch.command._name, "stdin")
        assert is_secret(switch) and f"'hostname' => '{target}'" in switch["value"]
    # the source lets every web node's app in on 3306 in replicate mode only
    seeds = {r.inputs["name"]: r.inputs for r in mocks.of_type("libvirt:index/cloudInitDisk:CloudInitDisk")}
    web01 = next(v for k, v in seeds.items() if k.endswith("-web01-seed.iso"))["userData"]["value"]
    app_rule = 'tcp dport 3306 accept comment "app until the move"'
    assert (app_rule in web01) == (cfg.database.mode == "replicate")
