"""The config model: both shipped stacks parse; every bad input fails naming its field."""

import copy

import pytest

from components.config import ConfigError, parse_config
from webha.stackfile import FAKE_SECRETS as TEST_SECRETS, read_stack_values as raw_stack_config
from tests.conftest import ROOT


def stack_path(stack):
    return ROOT / "stacks" / f"Pulumi.{stack}.yaml"

pytestmark = pytest.mark.unit
SECRET_KEYS = {"dbPassword", "vrrpAuthPass"}


def base() -> dict:
    raw = raw_stack_config(stack_path("dev"))
    raw.update(TEST_SECRETS)
    return copy.deepcopy(raw)


def parse(raw, secret_keys=SECRET_KEYS):
    return parse_config(raw, secret_keys)


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_shipped_stacks_parse(stack):
    raw = raw_stack_config(stack_path(stack))
    raw.update(TEST_SECRETS)
    cfg = parse(raw)
    assert [h.name for h in cfg.web_hosts] == ["web01", "web02"]
    assert cfg.db_host.name == "mysql01"
    assert str(cfg.vrrp.vip) == "10.1.1.100"


def test_secrets_never_in_repr():
    cfg = parse(base())
    text = repr(cfg) + str(cfg.model_dump())
    assert TEST_SECRETS["dbPassword"] not in text
    assert TEST_SECRETS["vrrpAuthPass"] not in text


def test_defaults_are_webha_fast_failover():
    raw = base()
    raw["vrrp"] = {"vip": "10.1.1.100"}
    raw.pop("vrrpAuthPass")
    cfg = parse(raw)
    assert cfg.vrrp.version == 3 and cfg.vrrp.preempt is False
    assert cfg.vrrp.health_check.weight == 0 and cfg.vrrp.health_check.track_process


def _set(path, value):
    def mutate(raw):
        node = raw
        keys = path.split(".")
        for k in keys[:-1]:
            node = node[int(k)] if k.isdigit() else node[k]
        last = keys[-1]
        if value is DELETE:
            del node[last]
        elif last.isdigit():
            node[int(last)] = value
        else:
            node[last] = value
    return mutate


DELETE = object()

BAD = [
    # (id, mutation, expected field, expected words)
    ("vip-outside", _set("vrrp.vip", "10.9.9.9"), "webha:vrrp.vip", "outside the network"),
    ("vip-is-host", _set("vrrp.vip", "10.1.1.12"), "webha:vrrp.vip", "mysql01's address"),
    ("vip-is-gateway", _set("vrrp.vip", "10.1.1.1"), "webha:vrrp.vip", "gateway"),
    ("vip-malformed", _set("vrrp.vip", "10.1.1.300"), "webha:vrrp.vip", "IPv4"),
    ("dup-ip", _set("hosts.2.ip", "10.1.1.11"), "webha:hosts", "duplicate ip 10.1.1.11"),
    ("dup-name", _set("hosts.2.name", "web01"), "webha:hosts", "duplicate name web01"),
    ("dup-fqdn", _set("hosts.2.fqdn", "web01.itcast.cn"), "webha:hosts", "duplicate fqdn"),
    ("vrid-zero", _set("vrrp.virtualRouterId", 0), "webha:vrrp.virtualRouterId", "outside 1-255"),
    ("vrid-256", _set("vrrp.virtualRouterId", 256), "webha:vrrp.virtualRouterId", "outside 1-255"),
    ("prio-equal", _set("hosts.2.priority", 150), "webha:hosts", "priorities must differ"),
    ("prio-255", _set("hosts.0.priority", 255), "webha:hosts[0].priority", "outside 1-254"),
    ("prio-0", _set("hosts.2.priority", 0), "webha:hosts[2].priority", "outside 1-254"),
    ("prio-missing", _set("hosts.2.priority", DELETE), "webha:hosts[2].priority", "required"),
    ("prio-on-db", _set("hosts.1.priority", 120), "webha:hosts[1].priority", "only web hosts"),
    ("advert-frac-v2", _set("vrrp.advertInt", 0.5), "webha:vrrp.advertInt", "invalid for VRRPv2"),
    ("advert-zero-v2", _set("vrrp.advertInt", 0), "webha:vrrp.advertInt", "invalid for VRRPv2"),
    ("one-web", lambda r: r.update(hosts=r["hosts"][:2]), "webha:hosts", "1 web host(s); VRRP needs at least two"),
    ("cidr-malformed", _set("network.cidr", "10.1.1.0/33"), "webha:network.cidr", "CIDR"),
    ("cidr-host-bits", _set("network.cidr", "10.1.1.5/24"), "webha:network.cidr", "CIDR"),
    ("ip-malformed", _set("hosts.0.ip", "10.1.1"), "webha:hosts[0].ip", "IPv4"),
    ("ip-outside", _set("hosts.0.ip", "192.168.1.11"), "webha:hosts[0].ip", "not a usable address"),
    ("ip-is-gateway", _set("hosts.0.ip", "10.1.1.1"), "webha:hosts[0].ip", "gateway"),
    ("hostname-bad", _set("hosts.0.name", "web_01"), "webha:hosts[0].name", "not a valid short hostname"),
    ("fqdn-bad", _set("hosts.0.fqdn", "web01..itcast.cn"), "webha:hosts[0].fqdn", "not a valid hostname"),
    ("fqdn-short", _set("hosts.0.fqdn", "web01"), "webha:hosts[0].fqdn", "not fully qualified"),
    ("auth-too-long", lambda r: r.update(vrrpAuthPass="123456789"), "webha:vrrpAuthPass", "at most 8"),
    ("auth-missing", lambda r: r.pop("vrrpAuthPass"), "webha:vrrpAuthPass", "required"),
    ("auth-v3", _set("vrrp.version", 3), "webha:vrrp.authType", "VRRPv3"),
    ("strict-unicast", _set("vrrp.strict", True), "webha:vrrp.strict", "forbids unicast"),
    ("nopreempt-weight", _set("vrrp.healthCheck", {"weight": -20}), "webha:vrrp.healthCheck.weight", "nopreempt"),
    ("preempt-delay-nopreempt", _set("vrrp.preemptDelay", 5), "webha:vrrp.preemptDelay", "preempt: true"),
    ("gateway-outside", _set("network.gateway", "10.2.0.1"), "webha:network.gateway", "not a usable address"),
    ("version-4", _set("vrrp.version", 4), "webha:vrrp.version", "2 or 3"),
    ("unknown-field", _set("vrrp.advert", 1), "webha:vrrp.advert", "Extra inputs"),
    ("db-root-user", _set("database.appUser", "root"), "webha:database.appUser", "never use root"),
    ("db-any-host", _set("database.allowedHosts", ["%"]), "webha:database.allowedHosts", "IPv4 address or a pattern"),
    ("db-target-web", _set("database.targetHost", "web02"), "webha:database.targetHost", "not the db host"),
    ("php-outside-root", _set("app.databasePhp", "/etc/database.php"), "webha:app.databasePhp", "not under root"),
    ("libvirt-uri", _set("libvirt.uri", "http://x"), "webha:libvirt.uri", "libvirt qemu URI"),
    ("domain-type", _set("libvirt.domainType", "xen"), "webha:libvirt.domainType", "'kvm' or 'qemu'"),
    ("image-relative", _set("image.source", "debian.qcow2"), "webha:image.source", "absolute path"),
    ("kernel-without-initrd", _set("image.kernel", "/boot/vmlinuz"), "webha:image", "kernel and initrd"),
    ("mirror-not-url", _set("packages", {"mirror": "ftp://x"}), "webha:packages.mirror", "http(s) URL"),
    ("memory-tiny", _set("hosts.0.memory", 64), "webha:hosts[0].memory", "greater than or equal to 256"),
    ("short-db-password", lambda r: r.update(dbPassword="short"), "webha:dbPassword", "at least 12"),
    ("quote-db-password", lambda r: r.update(dbPassword="abcdefghijkl'"), "webha:dbPassword", "quotes"),
    ("weight-too-small", lambda r: r["vrrp"].update(preempt=True, healthCheck={"weight": -20}),
     "webha:vrrp.healthCheck.weight", "cannot move the VIP (150-20"),
    ("no-db-host", _set("hosts.1.role", "web"), "webha:hosts[1].priority", "required"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_config_names_the_field(case):
    _, mutate, field, words = case
    raw = base()
    mutate(raw)
    with pytest.raises(ConfigError) as exc:
        parse(raw)
    msg = str(exc.value)
    assert f"{field}:" in msg or f"{field}." in msg or f"{field}[" in msg, msg
    assert words in msg, msg
    assert TEST_SECRETS["dbPassword"] not in msg


def test_missing_db_password_says_secret():
    raw = base()
    raw.pop("dbPassword")
    with pytest.raises(ConfigError, match=r"webha:dbPassword: missing.*--secret"):
        parse(raw)


def test_plaintext_secret_refused():
    with pytest.raises(ConfigError, match=r"webha:dbPassword: stored in plaintext"):
        parse(base(), secret_keys={"vrrpAuthPass"})


def test_missing_sections_all_reported():
    with pytest.raises(ConfigError) as exc:
        parse({}, set())
    for key in ("network", "image", "ssh", "hosts", "vrrp", "dbPassword"):
        assert f"webha:{key}: missing" in str(exc.value)


@pytest.mark.parametrize("adv,ok", [("0.25", True), ("0.01", True), ("40.95", True), ("0.005", False), ("41", False)])
def test_advert_int_v3(adv, ok):
    raw = base()
    raw.pop("vrrpAuthPass")
    raw["vrrp"].update(version=3, authType="none", advertInt=float(adv))
    if ok:
        assert str(parse(raw).vrrp.advert_int.normalize()) == str(__import__("decimal").Decimal(adv).normalize())
    else:
        with pytest.raises(ConfigError, match="webha:vrrp.advertInt: .* invalid for VRRPv3"):
            parse(raw)
