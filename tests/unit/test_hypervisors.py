"""Several hypervisors: the config (named hypervisors, per-host placement, anti-affinity, bridged
LAN, hostile names and URIs) and the graph (one provider, pool and base image per hypervisor; a
single-hypervisor stack keeps its resource names, so its URNs and a no-op `up` do not change)."""

import copy
import json

import pytest

from components.config import ConfigError, parse_config
from tests.conftest import ROOT
from tests.unit.test_graph import build_graph
from webha.stackfile import FAKE_SECRETS, load_stack_file, read_stack_values

pytestmark = pytest.mark.unit

TWOHV = read_stack_values(ROOT / "stacks" / "Pulumi.twohv.yaml")
HV2_URI = "qemu+unix:///system?socket=/run/webha-hv2/libvirt/libvirt-sock"


def parse(raw: dict):
    return parse_config({**raw, **FAKE_SECRETS}, set(FAKE_SECRETS))


def twohv(**changes) -> dict:
    raw = copy.deepcopy(TWOHV)
    for key, value in changes.items():
        raw[key] = value
    return raw


def hosts_with(**by_name) -> list[dict]:
    """TWOHV's hosts with fields replaced per host name (a value of None removes the field)."""
    out = []
    for h in copy.deepcopy(TWOHV["hosts"]):
        for field, value in by_name.get(h["name"], {}).items():
            if value is None:
                h.pop(field, None)
            else:
                h[field] = value
        out.append(h)
    return out


def error(raw: dict) -> str:
    with pytest.raises(ConfigError) as exc:
        parse(raw)
    return str(exc.value)


def test_twohv_stack_places_hosts():
    cfg = parse(TWOHV)
    used = cfg.used_hypervisors()
    assert [(h.name, h.uri, h.pool, h.bridge) for h in used] == [
        ("hv1", "qemu+unix:///system?socket=/run/webha-hv1/libvirt/libvirt-sock", "webha", "webha-br"),
        ("hv2", HV2_URI, "webha", "webha-br"),
    ]
    assert {h.name: cfg.hypervisor_of(h).name for h in cfg.hosts} == {
        "web01": "hv1", "mysql01": "hv1", "web02": "hv2"}


def test_single_hypervisor_stacks_have_one_implicit_hypervisor():
    for stack in ("local", "dev"):
        cfg = load_stack_file(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
        (hv,) = cfg.used_hypervisors()
        assert not hv.named and hv.uri == cfg.libvirt.uri and hv.pool == cfg.libvirt.pool
        assert hv.resource_name("libvirt") == "libvirt"  # the URNs of today's stacks


def test_anti_affinity_names_the_field():
    raw = twohv(hosts=hosts_with(web02={"hypervisor": "hv1"}))
    msg = error(raw)
    assert msg.startswith("webha:hosts[2].hypervisor: web node web02 is on hv1 with web01")
    assert "allowSameHypervisor: true" in msg
    cfg = parse({**raw, "allowSameHypervisor": True})
    assert [h.name for h in cfg.used_hypervisors()] == ["hv1"]
    # the db host may share a hypervisor with a web node
    parse(twohv(hosts=hosts_with(mysql01={"hypervisor": "hv2"})))


def test_three_web_nodes_need_three_hypervisors():
    hosts = hosts_with() + [{"name": "web03", "fqdn": "web03.itcast.cn", "ip": "10.1.2.14", "role": "web",
                             "priority": 50, "hypervisor": "hv2"}]
    assert error(twohv(hosts=hosts)).startswith("webha:hosts[3].hypervisor: web node web03 is on hv2 with web02")
    hvs = {**TWOHV["hypervisors"], "hv3": {"uri": "qemu+ssh://root@hv3.example/system"}}
    hosts[3]["hypervisor"] = "hv3"
    assert len(parse(twohv(hosts=hosts, hypervisors=hvs)).web_hosts) == 3


@pytest.mark.parametrize("name", ["hv9", "HV1", "", "hv1 ", "../hv1", "ハイパー"])
def test_unknown_hypervisor(name):
    msg = error(twohv(hosts=hosts_with(web02={"hypervisor": name})))
    assert msg.startswith("webha:hosts[2].hypervisor: ") and "is not defined under hypervisors" in msg


def test_every_host_must_name_its_hypervisor():
    msg = error(twohv(hosts=hosts_with(mysql01={"hypervisor": None})))
    assert msg.startswith("webha:hosts[1].hypervisor: required when webha:hypervisors is set")


def test_hypervisor_on_a_stack_without_hypervisors():
    raw = read_stack_values(ROOT / "stacks" / "Pulumi.local.yaml")
    raw["hosts"][0]["hypervisor"] = "hv1"
    assert error(raw).startswith("webha:hosts[0].hypervisor: 'hv1' is not defined")


@pytest.mark.parametrize("name", ["Hv1", "1hv", "hv_1", "hv 1", "h" * 33, "hv$1", "{hv}", "虚拟机"])
def test_bad_hypervisor_names(name):
    hvs = {name: {"uri": HV2_URI}, "hv1": TWOHV["hypervisors"]["hv1"]}
    raw = twohv(hypervisors=hvs, hosts=hosts_with(web02={"hypervisor": name}))
    assert error(raw).startswith(f"webha:hypervisors: {name!r} is not a hypervisor name")


@pytest.mark.parametrize("uri", [
    "qemu+ssh://root@hv 1/system",
    'qemu+ssh://root@"hv1"/system',
    "qemu+ssh://root@hv1/system'",
    "qemu+ssh://root@hv1/system?socket=/run/x;reboot",
    "qemu+ssh://root@hv1/system?socket=$(id)",
    "qemu+ssh://root@hv1/system?keyfile=/root/.ssh/id rsa",
    "{qemu:///system}",
    "qemu+ssh://根@hv1/system",
    "xen:///system",
    "qemu+ssh://root@hv1/other",
    "qemu+ssh://root@hv1/system\n",
    "",
])
def test_hostile_uris(uri):
    hvs = {**TWOHV["hypervisors"], "hv2": {"uri": uri}}
    msg = error(twohv(hypervisors=hvs))
    assert msg.startswith("webha:hypervisors.hv2.uri: ") and "is not a libvirt qemu URI" in msg


@pytest.mark.parametrize("uri", [
    "qemu:///system",
    "qemu+ssh://root@hv1.example.com/system",
    "qemu+ssh://root@10.0.0.2:2222/system?keyfile=/root/.ssh/id_ed25519&no_verify=1",
    "qemu+tcp://[fd00::2]/system",
    HV2_URI,
])
def test_valid_uris(uri):
    hvs = {**TWOHV["hypervisors"], "hv2": {"uri": uri}}
    assert parse(twohv(hypervisors=hvs)).hypervisor_list()[1].uri == uri


@pytest.mark.parametrize("bridge", ["webha-br-too-long", "br 0", "br/0", "-br0", "br0'", "网桥", "", "..", "{br0}"])
def test_bad_bridge_names(bridge):
    msg = error(twohv(network={**TWOHV["network"], "bridge": bridge}))
    assert msg.startswith("webha:network.bridge: ") and "is not a Linux interface name" in msg
    hvs = {**TWOHV["hypervisors"], "hv2": {"uri": HV2_URI, "bridge": bridge}}
    msg = error(twohv(hypervisors=hvs))
    assert msg.startswith("webha:hypervisors.hv2.bridge: ") and "is not a Linux interface name" in msg


def test_bridge_per_hypervisor_wins():
    hvs = {**TWOHV["hypervisors"], "hv2": {"uri": HV2_URI, "bridge": "br-lan"}}
    net = {k: v for k, v in TWOHV["network"].items() if k != "bridge"}
    msg = error(twohv(network=net))
    assert msg.startswith("webha:hypervisors.hv1.bridge: required with network mode bridge")
    hvs["hv1"] = {**TWOHV["hypervisors"]["hv1"], "bridge": "br0"}
    cfg = parse(twohv(network=net, hypervisors=hvs))
    assert [h.bridge for h in cfg.used_hypervisors()] == ["br0", "br-lan"]


def test_two_hypervisors_need_the_bridged_lan():
    net = {k: v for k, v in TWOHV["network"].items() if k != "bridge"}
    for mode in ("isolated", "nat"):
        msg = error(twohv(network={**net, "mode": mode}))
        assert msg.startswith(f"webha:network.mode: {mode} makes one libvirt network per hypervisor")
    assert error(twohv(network={**TWOHV["network"], "mode": "isolated"})).startswith(
        "webha:network.bridge: only used with mode: bridge")
    local = read_stack_values(ROOT / "stacks" / "Pulumi.local.yaml")
    local["network"]["mode"] = "bridge"
    assert error(local).startswith("webha:network.bridge: required with mode: bridge")


def test_libvirt_uri_and_hypervisors_are_exclusive():
    msg = error(twohv(libvirt={**TWOHV["libvirt"], "uri": "qemu:///system"}))
    assert msg.startswith("webha:libvirt.uri: set together with hypervisors")


# --------------------------------------------------------------------------- graph
@pytest.fixture(scope="module")
def twohv_graph(tmp_path_factory):
    return build_graph("twohv", tmp_path_factory.mktemp("twohv"), copy.deepcopy(TWOHV))


def _provider_name(req) -> str:
    """`urn:...::libvirt-hv1::id` -> libvirt-hv1"""
    return req.provider.split("::")[-2]


def test_one_provider_pool_and_base_image_per_hypervisor(twohv_graph):
    mocks, tier = twohv_graph
    mon = mocks.monitor
    providers = {r.name: r.inputs for r in mocks.of_type("pulumi:providers:libvirt")}
    assert {n: p["uri"] for n, p in providers.items()} == {
        "libvirt-hv1": "qemu+unix:///system?socket=/run/webha-hv1/libvirt/libvirt-sock",
        "libvirt-hv2": HV2_URI,
    }
    bases = {r.name: r.inputs for r in mocks.of_type("libvirt:index/volume:Volume") if r.name.startswith("base-image")}
    assert sorted(bases) == ["base-image-hv1", "base-image-hv2"]
    assert _provider_name(mon.requests["base-image-hv1"]) == "libvirt-hv1"
    assert _provider_name(mon.requests["base-image-hv2"]) == "libvirt-hv2"
    assert not mocks.of_type("libvirt:index/network:Network")  # bridged: no libvirt network
    where = {"web01": "hv1", "mysql01": "hv1", "web02": "hv2"}
    for host, hv in where.items():
        for res in (f"{host}-domain", f"{host}-disk", f"{host}-seed"):
            assert _provider_name(mon.requests[res]) == f"libvirt-{hv}", res
        assert f"base-image-{hv}" in mon.deps(f"{host}-disk")
        assert {"base-image-hv1", "base-image-hv2"} - {f"base-image-{hv}"} <= \
            {*(n for n in mon.requests if n.startswith("base-image"))} - mon.deps(f"{host}-disk")
    domains = {r.name: r.inputs for r in mocks.of_type("libvirt:index/domain:Domain")}
    for host in where:
        (nic,) = domains[f"{host}-domain"]["networkInterfaces"]
        assert nic["bridge"] == "webha-br" and "networkId" not in nic
    disks = {r.name: r.inputs for r in mocks.of_type("libvirt:index/volume:Volume")}
    assert {disks[f"{h}-disk"]["pool"] for h in where} == {"webha"}
    assert disks["web02-disk"]["baseVolumeId"] == "base-image-hv2-id"
    assert tier["outputs"]["hosts"] == {"web01": "10.1.2.11", "mysql01": "10.1.2.12", "web02": "10.1.2.13"}


def test_single_hypervisor_resource_names_unchanged(tmp_path_factory):
    """The `local` stack's libvirt resources keep the names (URNs) they had before hypervisors
    existed: renaming them would make the next `up` replace every VM."""
    mocks, _ = build_graph("local", tmp_path_factory.mktemp("local"))
    names = {(r.typ, r.name) for r in mocks.resources if r.typ.startswith(("libvirt:", "pulumi:providers:libvirt"))}
    assert {("pulumi:providers:libvirt", "libvirt"), ("libvirt:index/network:Network", "net"),
            ("libvirt:index/volume:Volume", "base-image")} <= names
    assert not [n for t, n in names if n.endswith(("-hv1", "-default"))]


def test_tier_check_input_unchanged_for_single_hypervisor_stacks():
    """The check's stdin leaves the new fields out at their defaults (a no-op `up` of `local`
    stays a no-op); a multi-hypervisor stack carries them."""
    from components.tiercheck import check_spec

    local = json.loads(check_spec(parse(read_stack_values(ROOT / "stacks" / "Pulumi.local.yaml")), {}))
    assert "hypervisors" not in local and "allowSameHypervisor" not in local
    assert "bridge" not in local["network"] and all("hypervisor" not in h for h in local["hosts"])
    two = json.loads(check_spec(parse(TWOHV), {}))
    assert two["hypervisors"]["hv2"]["uri"] == HV2_URI and two["hosts"][2]["hypervisor"] == "hv2"
    from webha.stackfile import config_from_dump

    two.pop("sshHostPublicKeys")  # webha verify takes it apart from the config
    assert config_from_dump(two).hypervisor_of(config_from_dump(two).host("web02")).name == "hv2"


def test_drill_takes_away_only_this_machines_hypervisors():
    """The hypervisor-loss drill kills QEMU processes: only in the namespaces of
    scripts/hypervisors-up.sh's hypervisors, never for a stack with a remote (or the main) one."""
    from webha.testbed.hypervisors import local_hypervisors

    assert local_hypervisors(parse(TWOHV)) == {"hv1": "hv1", "hv2": "hv2"}
    assert local_hypervisors(parse(read_stack_values(ROOT / "stacks" / "Pulumi.local.yaml"))) == {}
    remote = {**TWOHV["hypervisors"], "hv2": {"uri": "qemu+ssh://root@hv2.example/system"}}
    assert local_hypervisors(parse(twohv(hypervisors=remote))) == {}
    odd = {**TWOHV["hypervisors"], "hv2": {"uri": "qemu+unix:///system?socket=/run/webha-hv2/x/libvirt-sock"}}
    assert local_hypervisors(parse(twohv(hypervisors=odd))) == {}
