"""webha/guests.py: the guests a destroy starts first, read from the stack's state.

The export below has the shape of a real twohv checkpoint (two explicit libvirt providers, a
domain per host referring to its provider as URN::ID, other resources around them). The power
states come from real ``virsh`` against libvirt's test driver (a node file: web01 running, web02
shut off), so the ``domstate``/``start`` calls and their output are libvirt's own.
"""

from __future__ import annotations

import io
import json
import shutil

import pytest

from webha.guests import GuestError, stack_guests, start_stopped, start_stopped_from_export

pytestmark = pytest.mark.unit

WEB01 = "122c070c-7750-42ae-8bf4-de3b2c53c899"
WEB02 = "bc7f4165-aaa9-4317-9ef7-bffe533b7847"
MYSQL01 = "721d5e6c-169f-43c3-9878-40387f888afc"

NODE = f"""<node>
  <domain type='test'>
    <name>webha-twohv-web01</name><uuid>{WEB01}</uuid><memory>65536</memory><os><type>hvm</type></os>
  </domain>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>webha-twohv-web02</name><uuid>{WEB02}</uuid><memory>65536</memory><os><type>hvm</type></os>
    <test:runstate>5</test:runstate>
  </domain>
</node>
"""


def provider(name: str, pid: str, uri: str) -> dict:
    return {"urn": f"urn:pulumi:twohv::webha::pulumi:providers:libvirt::{name}", "id": pid,
            "type": "pulumi:providers:libvirt", "inputs": {"uri": uri}, "outputs": {"uri": uri}}


def domain(host: str, uuid: str | None, prov: dict) -> dict:
    r = {"urn": f"urn:pulumi:twohv::webha::webha:index:VirtualMachine$libvirt:index/domain:Domain::{host}-domain",
         "type": "libvirt:index/domain:Domain", "provider": f"{prov['urn']}::{prov['id']}",
         "outputs": {"name": f"webha-twohv-{host}"}}
    if uuid:
        r["id"] = uuid
    return r


def export(uri1: str, uri2: str, *extra: dict) -> dict:
    hv1 = provider("libvirt-hv1", "d0fe55cf-6398-4e9b-9128-17905b50be55", uri1)
    hv2 = provider("libvirt-hv2", "36b64a69-c195-4b69-9199-e34d33a203b7", uri2)
    return {"version": 3, "deployment": {"resources": [
        {"urn": "urn:pulumi:twohv::webha::pulumi:pulumi:Stack::webha-twohv", "type": "pulumi:pulumi:Stack"},
        hv1, hv2,
        {"urn": "urn:pulumi:twohv::webha::command:remote:Command::web01-keepalived", "id": "x",
         "type": "command:remote:Command", "provider": "urn:pulumi:twohv::webha::pulumi:providers:command::default::y"},
        domain("web01", WEB01, hv1), domain("web02", WEB02, hv2), *extra]}}


@pytest.fixture()
def node(tmp_path):
    if shutil.which("virsh") is None:
        pytest.fail("virsh is missing: apt-get install libvirt-clients (scripts/install-deps.sh)", pytrace=False)
    path = tmp_path / "node.xml"
    path.write_text(NODE)
    return f"test://{path}"


def test_guests_carry_their_own_providers_uri():
    ex = export("qemu+unix:///system?socket=/run/webha-hv1/libvirt/libvirt-sock",
                "qemu+unix:///system?socket=/run/webha-hv2/libvirt/libvirt-sock")
    # A domain whose create never finished (no id) has nothing to start.
    hv1 = ex["deployment"]["resources"][1]
    ex["deployment"]["resources"].append(domain("mysql01", None, hv1))
    got = {(g.name, g.uuid, g.uri.split("socket=")[1]) for g in stack_guests(ex)}
    assert got == {("webha-twohv-web01", WEB01, "/run/webha-hv1/libvirt/libvirt-sock"),
                   ("webha-twohv-web02", WEB02, "/run/webha-hv2/libvirt/libvirt-sock")}


def test_a_domain_without_a_known_provider_is_an_error_naming_it():
    ex = export("qemu:///system", "qemu:///system")
    ex["deployment"]["resources"][-1]["provider"] = "urn:pulumi:twohv::webha::pulumi:providers:libvirt::gone::z"
    with pytest.raises(GuestError, match="webha-twohv-web02"):
        stack_guests(ex)


def test_only_the_shut_off_guest_is_started(node):
    lines: list[str] = []
    started = start_stopped(stack_guests(export(node, node)), log=lines.append)
    assert [g.name for g in started] == ["webha-twohv-web02"]
    assert len(lines) == 1 and lines[0].startswith("started webha-twohv-web02")


def test_from_an_export_on_stdin(node):
    started = start_stopped_from_export(io.StringIO(json.dumps(export(node, node))), log=lambda m: None)
    assert [g.uuid for g in started] == [WEB02]


def test_a_guest_the_hypervisor_does_not_know_fails_after_the_others(node):
    hv1 = provider("libvirt-hv1", "d0fe55cf-6398-4e9b-9128-17905b50be55", node)
    lines: list[str] = []
    with pytest.raises(GuestError, match=r"webha-twohv-mysql01 .*domstate"):
        start_stopped(stack_guests(export(node, node, domain("mysql01", MYSQL01, hv1))), log=lines.append)
    assert lines and lines[0].startswith("started webha-twohv-web02")  # the others were handled


def test_not_an_export_is_an_error():
    with pytest.raises(GuestError, match="not a stack export"):
        start_stopped_from_export(io.StringIO("error: no stack selected"))
