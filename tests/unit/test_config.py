"""The config model: both shipped stacks parse; every bad input fails naming its field."""

import copy
import re

import pytest

from components.config import ConfigError, parse_config
from webha.stackfile import FAKE_SECRETS as TEST_SECRETS, read_stack_values as raw_stack_config, secrets_for
from tests.conftest import ROOT


def stack_path(stack):
    return ROOT / "stacks" / f"Pulumi.{stack}.yaml"

pytestmark = pytest.mark.unit
SECRET_KEYS = {"dbPassword", "vrrpAuthPass"}


def base() -> dict:
    """The dev stack with VRRPv2 + PASS auth (the dev stack ships VRRPv3 without a password): the
    variant that carries both secrets, so every secret check below has one to refuse."""
    raw = raw_stack_config(stack_path("dev"))
    raw["vrrp"].update(version=2, advertInt=1, authType="PASS")
    raw.update(TEST_SECRETS)
    return copy.deepcopy(raw)


def parse(raw, secret_keys=SECRET_KEYS):
    return parse_config(raw, secret_keys)


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_shipped_stacks_parse(stack):
    raw = raw_stack_config(stack_path(stack))
    secrets = secrets_for(raw, TEST_SECRETS)
    raw.update(secrets)
    cfg = parse(raw, set(secrets))
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
    # issue 13: 0.1 s adverts with the real-time VRRP process (soaked with reloads under stress:
    # README Figures), nginx's exit as a tracked file, fall 2.
    assert str(cfg.vrrp.advert_int) == "0.1" and cfg.vrrp.realtime and cfg.vrrp.auth_type == "none"
    hc = cfg.vrrp.health_check
    assert hc.track_file and (hc.interval, hc.fall, hc.rise) == (1, 2, 2)
    # issue 10: the database moves while the shop takes orders unless the stack says snapshot.
    assert cfg.database.mode == "replicate" and cfg.database.source_after_move == "readOnly"


def test_dev_stack_ships_the_defaults():
    """stacks/Pulumi.dev.yaml (the stack operators copy) runs what the README's figures measure:
    the config model's VRRP defaults, spelled out."""
    raw = raw_stack_config(stack_path("dev"))
    dev = parse({**raw, "dbPassword": TEST_SECRETS["dbPassword"]}, {"dbPassword"})
    raw["vrrp"] = {k: raw["vrrp"][k] for k in ("vip", "virtualRouterId")}
    defaults = parse({**raw, "dbPassword": TEST_SECRETS["dbPassword"]}, {"dbPassword"})
    assert dev.vrrp == defaults.vrrp


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


def _root(root):
    """app.root with the databasePhp the app reads under it."""
    return lambda raw: raw["app"].update(root=root, databasePhp=f"{root}/application/database.php")

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
    # The dev stack's 0.1 s adverts with version 2 (e.g. an operator adding PASS auth back).
    ("advert-centi-v2", _set("vrrp.advertInt", 0.1), "webha:vrrp.advertInt",
     "0.1 is invalid for VRRPv2 (whole seconds 1-255; sub-second adverts need version: 3)"),
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
    ("db-mode-unknown", _set("database.mode", "replica"), "webha:database.mode",
     "'snapshot' or 'replicate'"),
    ("db-source-after-move-unknown", _set("database.sourceAfterMove", "deleted"),
     "webha:database.sourceAfterMove", "'readOnly' or 'stopped'"),
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
    ("newline-db-password", lambda r: r.update(dbPassword="abcdefghijkl\nx"), "webha:dbPassword", "line breaks"),
    ("nul-db-password", lambda r: r.update(dbPassword="abcdefghijkl\0x"), "webha:dbPassword", "NUL"),
    # issue 8, section 5: accepted but broken
    ("php-not-in-application", _set("app.databasePhp", "/home/www/public/database.php"),
     "webha:app.databasePhp", "index.php reads /home/www/application/database.php"),
    ("php-other-name", _set("app.databasePhp", "/home/www/application/db.php"),
     "webha:app.databasePhp", "is not read by the app"),
    ("root-slash", lambda r: r["app"].update(root="/", databasePhp="/etc/passwd"), "webha:app.root", "system directory"),
    ("root-etc", _root("/etc"),
     "webha:app.root", "system directory"),
    ("root-under-etc", _root("/etc/www"),
     "webha:app.root", "system directory"),
    ("root-usr", _root("/usr"),
     "webha:app.root", "system directory"),
    ("root-proc", _root("/proc/1"),
     "webha:app.root", "system directory"),
    ("php-etc-passwd", _set("app.databasePhp", "/etc/passwd"), "webha:app.databasePhp", "not under root"),
    ("root-dotdot", _root("/home/www/../../etc"),
     "webha:app.root", "normalized"),
    ("php-dotdot", _set("app.databasePhp", "/home/www/application/../../../etc/passwd"),
     "webha:app.databasePhp", "normalized"),
    ("root-relative", _root("www"),
     "webha:app.root", "absolute path"),
    ("root-trailing-slash", _set("app.root", "/home/www/"), "webha:app.root", "normalized"),
    ("root-double-slash", _root("/home//www"),
     "webha:app.root", "normalized"),
    ("app-user-is-migration-user", _set("database.appUser", "webha_migrate"), "webha:database.appUser",
     "migration's own user"),
    ("app-user-is-migration-user-case", _set("database.appUser", "WEBHA_MIGRATE"), "webha:database.appUser",
     "migration's own user"),
    ("db-name-is-meta-schema", _set("database.name", "webha_meta"), "webha:database.name", "bookkeeping schema"),
    ("db-name-mysql", _set("database.name", "mysql"), "webha:database.name", "system schema"),
    ("allowed-999", _set("database.allowedHosts", ["999.1.1.1"]), "webha:database.allowedHosts", "octets 0-255"),
    ("allowed-pattern-999", _set("database.allowedHosts", ["10.999.%"]), "webha:database.allowedHosts", "octets 0-255"),
    ("allowed-cidr", _set("database.allowedHosts", ["10.1.1.0/24"]), "webha:database.allowedHosts", "no CIDR"),
    ("allowed-name", _set("database.allowedHosts", ["web01.itcast.cn"]), "webha:database.allowedHosts", "no names"),
    ("allowed-leading-zero", _set("database.allowedHosts", ["10.01.1.11"]), "webha:database.allowedHosts", "octets"),
    ("allowed-misses-web02", _set("database.allowedHosts", ["10.1.1.11"]), "webha:database.allowedHosts",
     "no entry allows web host web02"),
    ("allowed-dupe", _set("database.allowedHosts", ["10.1.1.%", "10.1.1.%"]), "webha:database.allowedHosts", "duplicate"),
    ("image-relative-dot", _set("image.source", "./debian.qcow2"), "webha:image.source", "absolute path"),
    ("image-dotdot", _set("image.source", "/var/lib/../../etc/shadow"), "webha:image.source", "normalized"),
    ("image-url-space", _set("image.source", "http://x/a b.qcow2"), "webha:image.source", "http(s) URL"),
    ("kernel-relative", lambda r: r["image"].update(kernel="vmlinuz", initrd="/boot/initrd.img"),
     "webha:image.kernel", "absolute path"),
    ("initrd-relative", lambda r: r["image"].update(kernel="/boot/vmlinuz", initrd="initrd.img"),
     "webha:image.initrd", "absolute path"),
    ("cmdline-quote", lambda r: r["image"].update(kernel="/boot/vmlinuz", initrd="/boot/initrd.img",
                                                   cmdline='root=/dev/vda "x'), "webha:image.cmdline", "kernel parameters"),
    ("interval-fraction", _set("vrrp.healthCheck", {"interval": 1.5}), "webha:vrrp.healthCheck.interval", "whole seconds"),
    ("interval-half", _set("vrrp.healthCheck", {"interval": 0.5}), "webha:vrrp.healthCheck.interval", "greater than or equal to 1"),
    ("timeout-fraction", _set("vrrp.healthCheck", {"timeout": 1.5}), "webha:vrrp.healthCheck.timeout", "whole seconds"),
    ("http-port-ssh", _set("app.httpPort", 22), "webha:app.httpPort", "ssh.port"),
    ("http-port-ssh-moved", lambda r: r.update(ssh={**r["ssh"], "port": 2222}, app={**r["app"], "httpPort": 2222}),
     "webha:app.httpPort", "ssh.port"),
    ("http-port-mysql", _set("app.httpPort", 3306), "webha:app.httpPort", "MariaDB"),
    ("http-port-0", _set("app.httpPort", 0), "webha:app.httpPort", "greater than or equal to 1"),
    ("http-port-65536", _set("app.httpPort", 65536), "webha:app.httpPort", "less than or equal to 65535"),
    ("ssh-port-0", _set("ssh.port", 0), "webha:ssh.port", "greater than or equal to 1"),
    ("ssh-port-mysql", _set("ssh.port", 3306), "webha:ssh.port", "MariaDB"),
    ("key-relative", _set("ssh.privateKeyPath", "id_ed25519"), "webha:ssh.privateKeyPath", "absolute path"),
    ("pool-space", _set("libvirt.pool", "my pool"), "webha:libvirt.pool", "[A-Za-z0-9_.-]"),
    ("memory-huge", _set("hosts.0.memory", 10**9), "webha:hosts[0].memory", "less than or equal"),
    ("mirror-port", _set("packages", {"mirror": "http://deb.example:99999/debian"}), "webha:packages.mirror", "outside 1-65535"),
    ("proxy-quote", _set("packages", {"proxy": "http://proxy'x:3128"}), "webha:packages.proxy", "http(s) URL"),
    ("auth-random", lambda r: r.update(vrrpAuthPass="$_RANDOM"), "webha:vrrpAuthPass", "'$'"),
    ("auth-pwd", lambda r: r.update(vrrpAuthPass="$_PWD"), "webha:vrrpAuthPass", "expands $NAME"),
    ("auth-dollar-brace", lambda r: r.update(vrrpAuthPass="a${x}"), "webha:vrrpAuthPass", "'$'"),
    ("auth-space", lambda r: r.update(vrrpAuthPass="ab cd"), "webha:vrrpAuthPass", "without spaces"),
    ("auth-hash", lambda r: r.update(vrrpAuthPass="ab#cd"), "webha:vrrpAuthPass", "'#'"),
    ("auth-bang", lambda r: r.update(vrrpAuthPass="ab!cd"), "webha:vrrpAuthPass", "'!'"),
    ("auth-dquote", lambda r: r.update(vrrpAuthPass='ab"cd'), "webha:vrrpAuthPass", "'\"'"),
    ("auth-brace", lambda r: r.update(vrrpAuthPass="ab{cd"), "webha:vrrpAuthPass", "'{'"),
    ("auth-cjk", lambda r: r.update(vrrpAuthPass="密码"), "webha:vrrpAuthPass", "printable ASCII"),
    ("weight-too-small", lambda r: r["vrrp"].update(preempt=True, healthCheck={"weight": -20}),
     "webha:vrrp.healthCheck.weight", "cannot move the VIP (150-20"),
    ("no-db-host", _set("hosts.1.role", "web"), "webha:hosts[1].priority", "required"),
    # issue 12: the dns output's names, zone and TTLs
    ("dns-zone-not-suffix", _set("dns.zone", "example.com"), "webha:app.serverName",
     "shop.itcast.cn is not inside the DNS zone example.com (dns.zone)"),
    ("dns-zone-parent-label", _set("dns.zone", "tcast.cn"), "webha:app.serverName",
     "shop.itcast.cn is not inside the DNS zone tcast.cn (dns.zone)"),
    ("dns-host-outside-default-zone", lambda r: r.update(dns={}, hosts=[
        {**r["hosts"][0], "fqdn": "web01.example.com"}, *r["hosts"][1:]]), "webha:hosts[0].fqdn",
     "web01.example.com is not inside the DNS zone itcast.cn (network.domain; set dns.zone"),
    ("dns-service-outside-default-zone", lambda r: r.update(dns={}, app={**r["app"], "serverName": "shop.example.com"}),
     "webha:app.serverName", "shop.example.com is not inside the DNS zone itcast.cn (network.domain"),
    ("dns-zone-misses-host", _set("hosts.0.fqdn", "web01.example.com"), "webha:hosts[0].fqdn",
     "web01.example.com is not inside the DNS zone itcast.cn (dns.zone)"),
    ("dns-zone-trailing-dot", _set("dns.zone", "itcast.cn."), "webha:dns.zone", "not a valid hostname"),
    ("dns-zone-leading-dot", _set("dns.zone", ".itcast.cn"), "webha:dns.zone", "not a valid hostname"),
    ("dns-zone-dotdot", _set("dns.zone", "itcast..cn"), "webha:dns.zone", "not a valid hostname"),
    ("dns-zone-space", _set("dns.zone", "itcast cn"), "webha:dns.zone", "not a valid hostname"),
    ("dns-extra-space", _set("dns", {"extraNames": ["www.itcast.cn", "a b.itcast.cn"]}),
     "webha:dns.extraNames[1]", "not a valid hostname"),
    ("dns-extra-cjk", _set("dns", {"extraNames": ["网站.itcast.cn"]}), "webha:dns.extraNames[0]", "not a valid hostname"),
    ("dns-extra-dotdot", _set("dns", {"extraNames": ["www..itcast.cn"]}), "webha:dns.extraNames[0]", "not a valid hostname"),
    ("dns-extra-leading-dot", _set("dns", {"extraNames": [".itcast.cn"]}), "webha:dns.extraNames[0]", "not a valid hostname"),
    ("dns-extra-wildcard", _set("dns", {"extraNames": ["*.shop.itcast.cn"]}), "webha:dns.extraNames[0]", "not a valid hostname"),
    ("dns-extra-underscore", _set("dns", {"extraNames": ["_webha-owner.shop.itcast.cn"]}), "webha:dns.extraNames[0]",
     "not a valid hostname"),
    ("dns-extra-outside", _set("dns", {"extraNames": ["www.example.com"]}), "webha:dns.extraNames[0]",
     "not inside the DNS zone itcast.cn"),
    ("dns-extra-is-host", _set("dns", {"extraNames": ["web02.itcast.cn"]}), "webha:dns.extraNames[0]",
     "is hosts[2].fqdn"),
    ("dns-extra-is-service", _set("dns", {"extraNames": ["shop.itcast.cn"]}), "webha:dns.extraNames[0]",
     "is app.serverName"),
    ("dns-extra-dupe", _set("dns", {"extraNames": ["www.itcast.cn", "WWW.itcast.cn"]}), "webha:dns.extraNames",
     "duplicate www.itcast.cn"),
    ("dns-extra-too-long", _set("dns", {"extraNames": [".".join(["a" * 60] * 4) + ".itcast.cn"]}),
     "webha:dns.extraNames[0]", "ownership TXT _webha-owner."),
    ("dns-service-is-host", _set("app.serverName", "web01.itcast.cn"), "webha:app.serverName", "is also hosts[0].fqdn"),
    ("dns-service-ttl-0", _set("dns", {"serviceTtl": 0}), "webha:dns.serviceTtl", "greater than or equal to 1"),
    ("dns-service-ttl-negative", _set("dns", {"serviceTtl": -60}), "webha:dns.serviceTtl", "greater than or equal to 1"),
    ("dns-host-ttl-huge", _set("dns", {"hostTtl": 2**31}), "webha:dns.hostTtl", "less than or equal to 604800"),
    ("dns-host-ttl-text", _set("dns", {"hostTtl": "1h"}), "webha:dns.hostTtl", "integer"),
    ("dns-owner-comma", _set("dns", {"owner": "team,heritage=x"}), "webha:dns.owner", "no ','"),
    ("dns-owner-quote", _set("dns", {"owner": 'a"b'}), "webha:dns.owner", "[A-Za-z0-9._/-]"),
    ("dns-reverse-wide", lambda r: r.update(dns={"reverse": True}, network={**r["network"], "cidr": "10.0.0.0/7",
                                                                           "gateway": "10.1.1.1"}),
     "webha:dns.reverse", "wider than a /8"),
    ("dns-unknown-key", _set("dns", {"ttl": 60}), "webha:dns.ttl", "Extra inputs"),
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


# --------------------------------------------------------------------------- valid, not refused
GOOD_DB_PASSWORDS = [
    "it's-a-pass-1", 'say "hello" 12', "back\\slash\\123", "dollar$HOME$1x", "with spaces in it",
    "密码密码密码密码密码密码", "{strong-pass-123}", "[1, 2, 3, 4, 5, 6]", "'; DROP USER x; --", "`id`$(id)x;ls -la",
    "%s%n%x%d%s%n", "tab\there-12345",
]


@pytest.mark.parametrize("password", GOOD_DB_PASSWORDS)
def test_db_password_any_one_line_value(password):
    raw = base()
    raw["dbPassword"] = password
    assert parse(raw).db_password.get_secret_value() == password


GOOD_AUTH = ["labpass1", "a'b\\c", "@x;y%z^", "~a(b)[c]", "<a>=b+c,", "a:b/c?d|", "a&b`c*", "-_.0Z9"]


@pytest.mark.parametrize("auth", GOOD_AUTH)
def test_vrrp_auth_pass_keepalived_keeps_literally(auth):
    """Accepted here = proven literal by real keepalived (tests/render: test_auth_pass_*)."""
    raw = base()
    raw["vrrpAuthPass"] = auth
    assert parse(raw).vrrp_auth_pass.get_secret_value() == auth


# --------------------------------------------------------------------------- pulumi config reader
def _load_with_pulumi_config(raw: dict, secret_keys) -> object:
    import json

    import pulumi

    from components.config import load_stack_config

    config = {f"webha:{k}": v if isinstance(v, str) else json.dumps(v) for k, v in raw.items()}
    pulumi.runtime.set_all_config(config, [f"webha:{k}" for k in secret_keys])
    try:
        return load_stack_config()
    finally:
        pulumi.runtime.set_all_config({}, [])


def _local_image(raw, tmp_path):
    img = tmp_path / "base.qcow2"
    img.write_bytes(b"QFI\xfb")
    raw["image"] = {**raw["image"], "source": str(img)}
    return raw


@pytest.mark.parametrize("password", ["{strong-pass-123}", "[not-a-list-123]", '{"a": "json object"}', "12345678901234"])
def test_secrets_are_never_json_parsed(password, tmp_path):
    raw = _local_image(base(), tmp_path)
    raw["dbPassword"] = password
    cfg = _load_with_pulumi_config(raw, SECRET_KEYS)
    assert cfg.db_password.get_secret_value() == password


def test_structured_key_with_bad_json_names_the_key(tmp_path):
    raw = _local_image(base(), tmp_path)
    raw["vrrp"] = "{not json"
    with pytest.raises(ConfigError, match=r"^webha:vrrp: not valid JSON"):
        _load_with_pulumi_config(raw, SECRET_KEYS)


@pytest.mark.parametrize("key", ["source", "kernel", "initrd"])
def test_local_uri_image_files_must_exist(key, tmp_path):
    raw = _local_image(base(), tmp_path)
    for k in ("kernel", "initrd"):
        (tmp_path / k).write_text("x")
        raw["image"][k] = str(tmp_path / k)
    raw["image"][key] = str(tmp_path / "missing")
    with pytest.raises(ConfigError, match=rf"webha:image\.{key}: .*missing does not exist"):
        _load_with_pulumi_config(raw, SECRET_KEYS)
    # A remote libvirt host reads its own files: nothing to check here.
    raw["libvirt"] = {**raw["libvirt"], "uri": "qemu+ssh://kvm1.example/system"}
    assert _load_with_pulumi_config(raw, SECRET_KEYS).image.source


def test_local_uri_accepts_url_source(tmp_path):
    raw = base()
    raw["image"] = {**raw["image"], "source": "https://cloud.debian.org/images/debian-12.qcow2"}
    assert _load_with_pulumi_config(raw, SECRET_KEYS).image.source.startswith("https://")


# --------------------------------------------------------------------------- hostile input sweep
HOSTILE = ["a'b", 'a"b', "a$b", "a b", "网站", "{x}", "[1]", "a\nb", "-1", "99999999999", "", "a;b", "../x"]
# Every operator-typed field, as a path in the raw config ("hosts.2.name" is named hosts[2].name).
SWEEP_FIELDS = """
libvirt.uri libvirt.pool libvirt.domainType network.name network.cidr network.gateway
network.interface network.domain network.mode image.source image.osFamily image.diskSizeGib
ssh.user ssh.privateKeyPath ssh.port hosts.2.name hosts.0.fqdn hosts.0.ip hosts.0.role
hosts.0.memory hosts.0.vcpus hosts.0.priority vrrp.vip vrrp.virtualRouterId vrrp.advertInt
vrrp.garpMasterDelay vrrp.authType database.name database.appUser database.sourceHost
database.targetHost app.root app.databasePhp app.serverName app.httpPort vrrpAuthPass
dns.zone dns.serviceTtl dns.hostTtl dns.owner
""".split()


def _named(path: str) -> str:
    return "webha:" + re.sub(r"\.(\d+)", r"[\1]", path)


def _sweep_cases():
    for path in SWEEP_FIELDS:
        for value in HOSTILE:
            yield pytest.param(path, _named(path), value, id=f"{path}={value!r}")
    for path in ("network.dns", "database.allowedHosts", "dns.extraNames"):
        for value in HOSTILE:
            yield pytest.param(path, f"webha:{path}", [value], id=f"{path}=[{value!r}]")
    for sub in ("interval", "timeout", "fall", "rise", "weight"):
        for value in HOSTILE + [0.5, 10**6, -(10**6)]:
            yield pytest.param(f"vrrp.healthCheck.{sub}", f"webha:vrrp.healthCheck.{sub}", value,
                               id=f"healthCheck.{sub}={value!r}")


# Hostile-looking but valid where they go (each is checked to PARSE, so the list stays honest).
SWEEP_VALID = {
    ("libvirt.pool", "-1"), ("libvirt.pool", "99999999999"), ("network.name", "-1"),
    ("network.name", "99999999999"), ("network.interface", "99999999999"),
    ("network.domain", "99999999999"), ("hosts.2.name", "99999999999"), ("dns.owner", "99999999999"),
    # keepalived keeps these literally (tests/render test_auth_pass_is_literal_in_keepalived).
    ("vrrpAuthPass", "a'b"), ("vrrpAuthPass", "[1]"), ("vrrpAuthPass", "-1"), ("vrrpAuthPass", "a;b"),
    ("vrrpAuthPass", "../x"),
}


# Valid alone, refused with another field: the error names the field the value collides with.
SWEEP_NAMED_ELSEWHERE = {
    # a zone that holds none of the names: refused at the first name outside it ("... (dns.zone)")
    ("dns.zone", "99999999999"): "webha:app.serverName",
}


@pytest.mark.parametrize("path,field,value", list(_sweep_cases()))
def test_hostile_input_refused_naming_the_field(path, field, value):
    raw = base()
    if path.startswith("vrrp.healthCheck."):
        raw["vrrp"]["healthCheck"] = {**raw["vrrp"].get("healthCheck", {}), path.rsplit(".", 1)[1]: value}
    else:
        _set(path, value)(raw)
    if isinstance(value, str) and (path, value) in SWEEP_VALID:
        parse(raw)
        return
    with pytest.raises(ConfigError) as exc:
        parse(raw)
    msg = str(exc.value)
    if isinstance(value, str) and (path, value) in SWEEP_NAMED_ELSEWHERE:
        field = SWEEP_NAMED_ELSEWHERE[(path, value)]
        assert path in msg, msg
    assert any(line.startswith((f"{field}:", f"{field}[", f"{field}.")) for line in msg.splitlines()), msg
    assert TEST_SECRETS["dbPassword"] not in msg
