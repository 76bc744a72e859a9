"""The resource graph under Pulumi mocks: what `pulumi up` would declare, without a machine."""

import json
import re
import subprocess

import pulumi
import pytest

from tests.conftest import ROOT
from webha.stackfile import FAKE_SECRETS, read_stack_values

pytestmark = pytest.mark.unit


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


@pytest.fixture(scope="module", params=["dev", "local"])
def graph(request, tmp_path_factory):
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    raw = read_stack_values(ROOT / "stacks" / f"Pulumi.{request.param}.yaml")
    raw["ssh"]["privateKeyPath"] = str(key)
    raw.update(FAKE_SECRETS)
    config = {f"webha:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    pulumi.runtime.set_all_config(config, [f"webha:{k}" for k in FAKE_SECRETS])
    mocks = Recorder()
    pulumi.runtime.set_mocks(mocks, project="webha", stack=request.param, preview=False)
    from components.program import build

    tier = build()

    @pulumi.runtime.test
    def settle():
        return pulumi.Output.all(*[vm.domain.id for vm in tier["vms"].values()])

    settle()
    return request.param, mocks, tier


def test_three_domains_with_addresses(graph):
    stack, mocks, _ = graph
    domains = {r.inputs["name"]: r.inputs for r in mocks.of_type("libvirt:index/domain:Domain")}
    prefix = "webha-dev" if stack == "dev" else "webha-local"
    assert sorted(domains) == sorted(f"{prefix}-{h}" for h in ("web01", "mysql01", "web02"))
    assert {d["type"] for d in domains.values()} == {"kvm" if stack == "dev" else "qemu"}
    macs = {n: d["networkInterfaces"][0]["mac"] for n, d in domains.items()}
    assert macs[f"{prefix}-web01"] == "52:54:00:01:01:0b"
    seeds = {r.inputs["name"]: r.inputs for r in mocks.of_type("libvirt:index/cloudInitDisk:CloudInitDisk")}
    web02 = seeds[f"{prefix}-web02-seed.iso"]
    assert "hostname: web02" in web02["userData"] and "fqdn: web02.itcast.cn" in web02["userData"]
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
    _, _, tier = graph
    for name, step in tier["prep"].items():
        assert step.after == [f"{name}-domain"]
    first_db = tier["migration"].steps[0]
    assert set(first_db.after) == {"web01-prep", "mysql01-prep", "web02-prep"}
    for web in tier["webs"]:
        assert web.app_config.after == ["db-migration"]
        assert web.web_install.after == [web.app_config.step_name]
    ka = tier["ha"].steps
    assert ka["web02"].after == ["web01-web", "web02-web"]
    assert ka["web01"].after == ["web01-web", "web02-web", "web02-keepalived"]
    starts = tier["ha"].starts
    assert list(starts) == ["web01", "web02"]  # preferred node first
    assert starts["web01"].after == ["web01-web", "web02-web", "web01-keepalived"]
    assert starts["web02"].after == ["web01-web", "web02-web", "web02-keepalived", "web01-keepalived",
                                     "web01-keepalived-start"]


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



def test_secret_stdin_is_marked_secret(graph):
    _, _, tier = graph
    import asyncio

    loop = asyncio.get_event_loop()
    for out in (tier["ha"].steps["web01"].command.stdin, tier["webs"][0].app_config.command.stdin):
        assert loop.run_until_complete(out.is_secret())


def test_outputs_json_friendly(graph):
    _, _, tier = graph
    out = tier["outputs"]
    assert json.loads(json.dumps(out)) == out
    assert out["vip"] == "10.1.1.100" and out["url"] == "http://10.1.1.100/"
    assert out["hosts"] == {"web01": "10.1.1.11", "mysql01": "10.1.1.12", "web02": "10.1.1.13"}
    assert out["vrrp"]["mode"] == "nopreempt" and out["vrrp"]["virtualRouterId"] == 51
