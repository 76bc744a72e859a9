"""Typed stack configuration for webha.

The stack config is read once (``load_stack_config``), validated here with pydantic, and handed to
the components as typed objects. Every check that can be made before touching a machine is made
here, so that ``pulumi preview`` fails with a message that names the offending field
(``webha:vrrp.virtualRouterId: ...``) instead of a half-built tier failing later.

Secrets (the DB app password, the VRRP auth password) are ``SecretStr`` so they never appear in a
repr, a log line or an error message; the loader refuses them when they were not stored with
``pulumi config set --secret``.
"""

from __future__ import annotations

import ipaddress
import json
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Literal, Optional

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

NAMESPACE = "webha"
SECRET_KEYS = ("dbPassword", "vrrpAuthPass", "sshHostKeys")

_HOST_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SHELL_SAFE_PATH = re.compile(r"^/[A-Za-z0-9._/-]*$")
_URL = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/%+=-]*)?$")
# Keys whose value is a structure (object or list): the only ones JSON-parsed when read from the
# Pulumi config. Every other key (the secrets above all) is taken as the literal string it is.
# sshHostKeys is a map of secrets (set with `pulumi config set --secret --path sshHostKeys.HOST`):
# the engine hands it over as one JSON object, marked secret as a whole.
STRUCTURED_KEYS = ("libvirt", "hypervisors", "network", "image", "ssh", "hosts", "vrrp", "database", "app",
                   "packages", "dns", "sshHostKeys")
# What keepalived 2.2.7's config reader does to a word (measured with `keepalived -d`, see
# tests/render/test_render.py): `$NAME`/`${...}` and its built-ins $_RANDOM, $_PWD, $_HASH, $_BANG
# are expanded, whitespace splits, '#' and '!' start a comment, '"' quotes, '{' and '}' are tokens.
_KEEPALIVED_UNSAFE = set('$"#!{}')
# app.root may not be one of these, nor under the ones in _SYSTEM_TREES.
_SYSTEM_DIRS = {
    "/", "/bin", "/boot", "/dev", "/etc", "/home", "/lib", "/lib32", "/lib64", "/media", "/mnt",
    "/opt", "/proc", "/root", "/run", "/sbin", "/srv", "/sys", "/tmp", "/usr", "/usr/bin",
    "/usr/lib", "/usr/local", "/usr/sbin", "/usr/share", "/var", "/var/lib", "/var/log",
    "/var/tmp", "/var/cache", "/var/spool", "/var/run",
}
_SYSTEM_TREES = ("/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/run",
                 "/sbin", "/sys", "/tmp", "/usr/bin", "/usr/lib", "/usr/sbin", "/var/lib/mysql",
                 "/var/run", "/var/tmp")
# Schemas MariaDB keeps for itself.
_SYSTEM_SCHEMAS = {"mysql", "information_schema", "performance_schema", "sys"}
MYSQL_PORT = 3306
_SQL_IDENT = re.compile(r"^[A-Za-z0-9_]{1,32}$")
_IFNAME = re.compile(r"^(?!-)[A-Za-z0-9_.-]{1,15}$")


def _check_ifname(v: str) -> str:
    """A Linux interface name (IFNAMSIZ: at most 15 bytes; no '/', spaces or quotes)."""
    if not _IFNAME.fullmatch(v) or v in (".", ".."):
        raise ValueError(f"{v!r} is not a Linux interface name (1-15 of [A-Za-z0-9_.-])")
    return v


class ConfigError(ValueError):
    """A stack config problem; the message names the field, e.g. ``webha:vrrp.vip``."""


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True
    )


def _check_fqdn(value: str) -> str:
    value = value.lower()
    labels = value.split(".")
    if len(value) > 253 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(f"{value!r} is not a valid hostname (letters, digits, '-', dots)")
    return value


def _check_path(value: str) -> str:
    """An absolute, normalized path of shell-safe characters: no '..', '.', '//' or trailing '/'."""
    if not _SHELL_SAFE_PATH.match(value):
        raise ValueError(f"{value!r} must be an absolute path of [A-Za-z0-9._/-]")
    parts = value.split("/")[1:]
    if value != "/" and ("" in parts or "." in parts or ".." in parts):
        raise ValueError(f"{value!r} must be a normalized absolute path (no '..', '.', '//' or trailing '/')")
    return value


def _is_under(path: str, tree: str) -> bool:
    return path == tree or path.startswith(tree.rstrip("/") + "/")


def _check_url(value: str) -> str:
    if not _URL.match(value):
        raise ValueError(f"{value!r} is not an http(s) URL (host[:port]/path of URL-safe characters)")
    port = re.search(r"^https?://[^/:]+:([0-9]+)", value)
    if port and not 1 <= int(port.group(1)) <= 65535:
        raise ValueError(f"{value!r}: port {port.group(1)} is outside 1-65535")
    return value


def _check_allowed_host(value: str) -> str:
    """A MariaDB account host the firewall can open too: an IPv4 address or a 'a.b.c.%' pattern."""
    parts = value.split(".")
    fixed = parts[:-1] if parts[-1] == "%" else parts
    ok = (
        (len(parts) == 4 or (parts[-1] == "%" and 2 <= len(parts) <= 4))
        and all(p.isascii() and p.isdigit() and int(p) <= 255 and str(int(p)) == p for p in fixed)
    )
    if not ok:
        raise ValueError(
            f"{value!r} must be an IPv4 address (octets 0-255) or a pattern like 10.1.1.% "
            "(the same list becomes MariaDB grants and nftables sources: no names, no CIDR)"
        )
    return value


def _host_matches(pattern: str, ip: str) -> bool:
    if pattern.endswith(".%"):
        return ip.startswith(pattern[:-1])
    return pattern == ip


def migration_user_names(cfg: "StackConfig") -> dict[str, str]:
    """Names the migration plan takes for itself (its user and bookkeeping schema)."""
    # Imported here: the plan module imports this one.
    from .migration_plan import DbRuntime, migration_settings

    settings = migration_settings(cfg, DbRuntime())
    return {"user": settings["user"], "meta_schema": settings["meta_schema"]}


# qemu[+transport]://[user@]host[:port]/system|session[?param=value&...]: no spaces, quotes or
# shell characters anywhere (the URI reaches the provider, logs and SSH's command line).
_LIBVIRT_URI = re.compile(
    r"^qemu(\+(ssh|tcp|tls|unix|libssh2|libssh))?://"
    r"([A-Za-z0-9._-]+@)?([A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\])?(:[0-9]{1,5})?"
    r"/(system|session)(\?[A-Za-z0-9_]+=[A-Za-z0-9._/:@%+-]*(&[A-Za-z0-9_]+=[A-Za-z0-9._/:@%+-]*)*)?$"
)


def _check_libvirt_uri(v: str) -> str:
    if not _LIBVIRT_URI.fullmatch(v):
        raise ValueError(
            f"{v!r} is not a libvirt qemu URI such as qemu:///system or "
            "qemu+ssh://root@hv1/system (no spaces, quotes or shell characters)"
        )
    return v


def _check_pool(v: str) -> str:
    if not re.match(r"^[A-Za-z0-9_.-]{1,64}$", v) or v in (".", ".."):
        raise ValueError(f"{v!r} must be 1-64 of [A-Za-z0-9_.-]")
    return v


def _is_local_uri(uri: str) -> bool:
    """The libvirt host is this machine (no host in the URI): image paths can be checked here."""
    return bool(re.match(r"^qemu(\+unix)?:///(system|session)(\?|$)", uri))


class LibvirtConfig(_Model):
    uri: str = "qemu:///system"
    # "kvm" for real hosts; "qemu" (TCG) where /dev/kvm does not run guests.
    domain_type: Literal["kvm", "qemu"] = "kvm"
    pool: str = "default"

    _uri = field_validator("uri")(classmethod(lambda cls, v: _check_libvirt_uri(v)))
    _pool = field_validator("pool")(classmethod(lambda cls, v: _check_pool(v)))

    @property
    def is_local(self) -> bool:
        """The libvirt host is this machine: image paths can be checked here."""
        return _is_local_uri(self.uri)


# A hypervisor's name: part of resource names (`libvirt-hv1`) and error messages.
_HYPERVISOR_NAME = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


class HypervisorConfig(_Model):
    """One libvirt host of a stack that spans several (``webha:hypervisors``)."""

    uri: str
    # Storage pool on that host (default: libvirt.pool).
    pool: Optional[str] = None
    # The host bridge its guests attach to with network mode "bridge" (default: network.bridge).
    bridge: Optional[str] = None

    _uri = field_validator("uri")(classmethod(lambda cls, v: _check_libvirt_uri(v)))

    @field_validator("pool")
    @classmethod
    def _pool(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else _check_pool(v)

    @field_validator("bridge")
    @classmethod
    def _bridge(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else _check_ifname(v)


@dataclass(frozen=True)
class Hypervisor:
    """A hypervisor as the program uses it, defaults filled in. ``named`` is False for the one
    implicit hypervisor of a stack without ``hypervisors`` (``libvirt.uri``): its resources keep
    the names they always had (``libvirt``, ``base-image``, ``net``)."""

    name: str
    uri: str
    pool: str
    bridge: Optional[str]
    named: bool

    def resource_name(self, base: str) -> str:
        return f"{base}-{self.name}" if self.named else base

    @property
    def is_local(self) -> bool:
        return _is_local_uri(self.uri)


class NetworkConfig(_Model):
    name: str = "webha"
    cidr: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    # isolated: no forward (the host reaches guests over the bridge); nat: libvirt NAT;
    # bridge: guests attach to an existing host bridge (the LAN), no libvirt network is made.
    mode: Literal["isolated", "nat", "bridge"] = "isolated"
    # With mode bridge: the host bridge's name (a hypervisor's own `bridge` wins).
    bridge: Optional[str] = None
    # Interface name inside the guests (keepalived binds the VIP here).
    interface: str = "eth0"
    domain: str = "itcast.cn"
    dns: list[ipaddress.IPv4Address] = Field(default_factory=list)

    @field_validator("cidr", mode="before")
    @classmethod
    def _strict_cidr(cls, v: Any) -> Any:
        if isinstance(v, str):
            try:
                ipaddress.IPv4Network(v, strict=True)
            except ValueError as exc:
                raise ValueError(f"{v!r} is not an IPv4 network in CIDR form ({exc})") from None
            if "/" not in v:
                raise ValueError(f"{v!r} needs a prefix length, e.g. 10.1.1.0/24")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_-]{1,32}$", v):
            raise ValueError(f"{v!r} must be 1-32 of [A-Za-z0-9_-]")
        return v

    @field_validator("interface", "bridge")
    @classmethod
    def _ifname(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else _check_ifname(v)

    @field_validator("domain")
    @classmethod
    def _domain(cls, v: str) -> str:
        return _check_fqdn(v)

    @model_validator(mode="after")
    def _gateway_in_subnet(self) -> "NetworkConfig":
        if self.bridge is not None and self.mode != "bridge":
            raise ValueError(f"bridge: only used with mode: bridge (mode is {self.mode})")
        if self.cidr.prefixlen > 29:
            raise ValueError(f"cidr: {self.cidr} is too small for 3 hosts, a gateway and a VIP")
        if self.gateway not in self.cidr or self.gateway in (
            self.cidr.network_address,
            self.cidr.broadcast_address,
        ):
            raise ValueError(f"gateway: {self.gateway} is not a usable address of {self.cidr}")
        return self


class ImageConfig(_Model):
    # A local path (or http(s) URL the libvirt host can read) of a qcow2 cloud image.
    source: str
    # Optional direct kernel boot (used by the test image built from Debian packages).
    kernel: Optional[str] = None
    initrd: Optional[str] = None
    cmdline: Optional[str] = None
    os_family: Literal["debian", "rhel"] = "debian"
    disk_size_gib: int = Field(default=8, ge=2, le=2048)

    @field_validator("source")
    @classmethod
    def _source(cls, v: str) -> str:
        if re.match(r"^https?://", v):
            return _check_url(v)
        if not v.startswith("/"):
            raise ValueError(f"{v!r} must be an absolute path or an http(s) URL")
        return _check_path(v)

    @field_validator("kernel", "initrd")
    @classmethod
    def _boot_file(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else _check_path(v)

    @field_validator("cmdline")
    @classmethod
    def _cmdline(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.match(r"^[A-Za-z0-9_.,:=/+@-]+( [A-Za-z0-9_.,:=/+@-]+)*$", v):
            raise ValueError(f"{v!r}: kernel parameters of [A-Za-z0-9_.,:=/+@-], separated by one space")
        return v

    @model_validator(mode="after")
    def _kernel_pair(self) -> "ImageConfig":
        if bool(self.kernel) != bool(self.initrd):
            raise ValueError("kernel and initrd must be given together for direct kernel boot")
        if self.cmdline and not self.kernel:
            raise ValueError("cmdline is only used with kernel/initrd (direct kernel boot)")
        return self


class SshConfig(_Model):
    user: str = "root"
    # Path of the private key on the machine running pulumi; ``<path>.pub`` is put in the guests.
    private_key_path: str
    port: int = Field(default=22, ge=1, le=65535)

    @field_validator("private_key_path")
    @classmethod
    def _key_path(cls, v: str) -> str:
        return _check_path(v)

    @field_validator("user")
    @classmethod
    def _user(cls, v: str) -> str:
        if not re.match(r"^[a-z_][a-z0-9_-]{0,31}$", v):
            raise ValueError(f"{v!r} is not a valid Unix user name")
        return v


class HostConfig(_Model):
    name: str
    fqdn: str
    ip: ipaddress.IPv4Address
    role: Literal["web", "db"]
    memory: int = Field(default=1024, ge=256, le=1048576, description="MiB")
    vcpus: int = Field(default=1, ge=1, le=64)
    # VRRP priority, web nodes only: the highest is the preferred holder of the VIP.
    priority: Optional[int] = None
    # Name of the hypervisor (under webha:hypervisors) this guest runs on.
    hypervisor: Optional[str] = None

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _HOST_LABEL.match(v):
            raise ValueError(f"{v!r} is not a valid short hostname")
        return v

    @field_validator("fqdn")
    @classmethod
    def _fqdn(cls, v: str) -> str:
        v = _check_fqdn(v)
        if "." not in v:
            raise ValueError(f"{v!r} is not fully qualified (expected e.g. web01.itcast.cn)")
        return v

    @model_validator(mode="after")
    def _priority(self) -> "HostConfig":
        if self.role == "web":
            if self.priority is None:
                raise ValueError("priority: required for web hosts (1-254)")
            if not 1 <= self.priority <= 254:
                raise ValueError(f"priority: {self.priority} is outside 1-254")
        elif self.priority is not None:
            raise ValueError("priority: only web hosts take part in VRRP")
        return self


class HealthCheckConfig(_Model):
    """``vrrp_script check_nginx``: weight 0 puts the node in FAULT (instant give-up)."""

    # Whole seconds: keepalived 2.2.7 reads `interval 1.5` as "invalid number" and uses 1.
    interval: Decimal = Field(default=Decimal("1"), ge=1, le=60)
    timeout: Decimal = Field(default=Decimal("1"), ge=1, le=60)
    # fall 2: a crash is caught by trackFile at once; the script only catches a hung nginx, and
    # one slow answer on a busy node must not move the VIP (issue 13's soak).
    fall: int = Field(default=2, ge=1, le=10)
    rise: int = Field(default=2, ge=1, le=10)
    weight: int = Field(default=0, ge=-253, le=253)
    # Also watch the nginx process through keepalived's process table (instant on crash; needs
    # the kernel's proc connector, which the namespace lab lacks).
    track_process: bool = True
    # nginx's service manager writes its exit into a file keepalived tracks (vrrp_track_file,
    # read on inotify): instant on crash wherever nginx.service's ExecStopPost runs (the VMs; the
    # lab's stand-in for the unit, templates/lab/nginx-service.sh.j2).
    track_file: bool = True

    @field_validator("interval", "timeout")
    @classmethod
    def _whole_seconds(cls, v: Decimal) -> Decimal:
        if v != v.to_integral_value():
            raise ValueError(f"{v} is not whole seconds (keepalived ignores a fractional value)")
        return v


class VrrpConfig(_Model):
    vip: ipaddress.IPv4Address
    virtual_router_id: int = 51
    version: Literal[2, 3] = 3
    # 0.1 s: a silent death is noticed after 3 x 0.1 + skew = 0.36 s. Holds under stress only
    # with the real-time VRRP process (``realtime``); without it 0.1 s flapped (bench/soak.py,
    # README Figures), 0.2 s held.
    advert_int: Decimal = Decimal("0.1")
    preempt: bool = False
    preempt_delay: Optional[int] = Field(default=None, ge=0, le=1000)
    unicast: bool = True
    strict: bool = False
    auth_type: Literal["none", "PASS"] = "none"
    garp_master_delay: int = Field(default=1, ge=0, le=255)
    # keepalived's VRRP process on SCHED_RR (vrrp_rt_priority), its CPU limit (RLIMIT_RTTIME)
    # set by keepalived.service, never by keepalived: keepalived resets its own to 0 on a reload
    # and the kernel killed the VRRP process (templates/keepalived/systemd-override.conf.j2).
    # Its memory is always locked (vrrp_no_swap).
    realtime: bool = True
    health_check: HealthCheckConfig = Field(default_factory=HealthCheckConfig)

    @field_validator("virtual_router_id")
    @classmethod
    def _vrid(cls, v: int) -> int:
        if not 1 <= v <= 255:
            raise ValueError(f"{v} is outside 1-255")
        return v

    @model_validator(mode="after")
    def _protocol_rules(self) -> "VrrpConfig":
        adv = self.advert_int
        if self.version == 2:
            if adv != adv.to_integral_value() or not 1 <= adv <= 255:
                raise ValueError(
                    f"advertInt: {adv} is invalid for VRRPv2 (whole seconds 1-255; "
                    "sub-second adverts need version: 3)"
                )
        else:
            if not Decimal("0.01") <= adv <= Decimal("40.95") or adv % Decimal("0.01"):
                raise ValueError(
                    f"advertInt: {adv} is invalid for VRRPv3 (0.01-40.95 s in 10 ms steps)"
                )
        if self.auth_type == "PASS" and self.version == 3:
            raise ValueError("authType: PASS authentication does not exist in VRRPv3 (use none)")
        if self.strict and self.unicast:
            raise ValueError("strict: vrrp_strict forbids unicast peers; set strict: false")
        if self.strict and self.auth_type != "none":
            raise ValueError("strict: vrrp_strict forbids authentication; set authType: none")
        if self.preempt_delay is not None and not self.preempt:
            raise ValueError("preemptDelay: only meaningful with preempt: true")
        hc = self.health_check
        if not self.preempt and hc.weight != 0:
            raise ValueError(
                f"healthCheck.weight: {hc.weight} cannot move the VIP with preempt: false "
                "(a nopreempt backup never takes over from a live master); use weight 0 (FAULT)"
            )
        if hc.timeout > hc.interval * 10:
            raise ValueError("healthCheck.timeout: longer than 10 intervals")
        return self


class DatabaseConfig(_Model):
    name: str = "ds_shop"
    app_user: str = "dsshop"
    # Hosts the app user may connect from; empty = exactly the web hosts' IPs.
    allowed_hosts: list[str] = Field(default_factory=list)
    source_host: str = "web01"
    target_host: str = "mysql01"
    # Test stacks only: load the sample shop into the source when it has no ds_shop yet.
    seed_sample: bool = False
    # How the data moves (docs/migration.md): ``replicate`` (default) = the web tier comes up on
    # the source, then a copy at a GTID position, mysql01 replicates web01 until a short write
    # fence, verified, then the app switched on every web node: the shop takes orders throughout.
    # ``snapshot`` = one verified consistent copy before the web tier (writes after it stay on
    # the source: a maintenance window, for a shop that can stop).
    mode: Literal["snapshot", "replicate"] = "replicate"
    # What happens to the source database once the move is complete (issue 15): ``readOnly``
    # (read_only=1, kept across restarts) or ``stopped`` (MariaDB stopped and disabled).
    source_after_move: Literal["readOnly", "stopped"] = "readOnly"

    @field_validator("name", "app_user")
    @classmethod
    def _ident(cls, v: str) -> str:
        if not _SQL_IDENT.match(v) or v.isdigit():
            raise ValueError(f"{v!r} must be 1-32 of [A-Za-z0-9_], not only digits")
        if v.lower() == "root":
            raise ValueError("the app must never use root")
        return v

    @field_validator("name")
    @classmethod
    def _not_system_schema(cls, v: str) -> str:
        if v.lower() in _SYSTEM_SCHEMAS:
            raise ValueError(f"{v!r} is a MariaDB system schema")
        return v

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        for host in v:
            if host == "%":
                raise ValueError("'%' would let the app user in from anywhere; use an IPv4 address or a pattern like 10.1.1.%")
            _check_allowed_host(host)
        dupes = sorted({h for h in v if v.count(h) > 1})
        if dupes:
            raise ValueError(f"duplicate {', '.join(dupes)}")
        return v


class AppConfig(_Model):
    root: str = "/home/www"
    database_php: str = "/home/www/application/database.php"
    server_name: str = "shop.itcast.cn"
    http_port: int = Field(default=80, ge=1, le=65535)

    _paths = field_validator("root", "database_php")(classmethod(lambda cls, v: _check_path(v)))

    @field_validator("server_name")
    @classmethod
    def _server_name(cls, v: str) -> str:
        return _check_fqdn(v)

    @field_validator("root")
    @classmethod
    def _not_system_dir(cls, v: str) -> str:
        bad = v in _SYSTEM_DIRS or any(_is_under(v, t) for t in _SYSTEM_TREES)
        if bad:
            raise ValueError(f"{v!r} is a system directory (or inside one); use e.g. /home/www or /srv/shop")
        return v

    @model_validator(mode="after")
    def _php_inside_root(self) -> "AppConfig":
        # index.php reads __DIR__/../application/database.php: nothing else is ever loaded.
        want = f"{self.root}/application/database.php"
        if self.database_php != want:
            where = "is not under root " + self.root if not _is_under(self.database_php, self.root) else "is not read by the app"
            raise ValueError(
                f"databasePhp: {self.database_php} {where}; the shop's index.php reads {want} "
                "({root}/application/database.php)"
            )
        return self


class PackagesConfig(_Model):
    mirror: Optional[str] = None
    proxy: Optional[str] = None

    @field_validator("mirror", "proxy")
    @classmethod
    def _url(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else _check_url(v)


class DnsConfig(_Model):
    """What the ``dns`` stack output (schemas/webha.dns.v1.json) publishes for DNS pipelines.

    Names stay hostnames (no wildcard, no underscore): the ownership TXT records live at
    ``_webha-owner.<name>``, a label no hostname can take, so they never collide with a record.
    """

    # The forward zone; default: network.domain. Every published name must lie inside it.
    zone: Optional[str] = None
    # The service name (app.serverName) and extraNames point at the VIP: short, so a moved VIP
    # (a new stack config, not a failover: the VIP itself moves between nodes) is seen soon.
    service_ttl: int = Field(default=60, ge=1, le=604800)
    host_ttl: int = Field(default=3600, ge=1, le=604800)
    # More names for the VIP, e.g. www.shop.itcast.cn (fully qualified, inside the zone).
    extra_names: list[str] = Field(default_factory=list)
    # PTR records for the hosts and the VIP in the network's in-addr.arpa zone.
    reverse: bool = False
    # Who owns the records (the ownership TXT's webha/owner=); default: <project>/<stack>.
    owner: Optional[str] = None

    @field_validator("zone")
    @classmethod
    def _zone(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else _check_fqdn(v)

    @field_validator("extra_names")
    @classmethod
    def _extra(cls, v: list[str]) -> list[str]:
        out = []
        for i, name in enumerate(v):
            try:
                out.append(_check_fqdn(name))
            except ValueError as exc:
                raise ValueError(f"[{i}]: {exc}") from None
        dupes = sorted({n for n in out if out.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate {', '.join(dupes)}")
        return out

    @field_validator("owner")
    @classmethod
    def _owner(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not re.match(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,62}$", v):
            raise ValueError(f"{v!r} must be 1-63 of [A-Za-z0-9._/-] (it goes into a TXT value as "
                             "owner=...: no ',', '=', quotes or spaces)")
        return v


def _in_zone(name: str, zone: str) -> bool:
    return name == zone or name.endswith("." + zone)


# The ownership TXT of a name is _webha-owner.<name>: the name must leave room for that label.
DNS_OWNER_LABEL = "_webha-owner"
_DNS_NAME_MAX = 253 - len(DNS_OWNER_LABEL) - 1


class StackConfig(_Model):
    libvirt: LibvirtConfig = Field(default_factory=LibvirtConfig)
    # Named libvirt hosts; empty = one hypervisor, libvirt.uri (today's single-host stacks).
    hypervisors: dict[str, HypervisorConfig] = Field(default_factory=dict)
    # Web nodes may share a hypervisor (one host's loss then takes several of them).
    allow_same_hypervisor: bool = False
    network: NetworkConfig
    image: ImageConfig
    ssh: SshConfig
    hosts: list[HostConfig]
    vrrp: VrrpConfig
    database: DatabaseConfig = Field(default_factory=DatabaseConfig)
    app: AppConfig = Field(default_factory=AppConfig)
    packages: PackagesConfig = Field(default_factory=PackagesConfig)
    dns: DnsConfig = Field(default_factory=DnsConfig)
    db_password: SecretStr
    vrrp_auth_pass: Optional[SecretStr] = None
    # Host -> the guest's SSH host private key (OpenSSH, ed25519); see components/hostkeys.py.
    # Optional here (the lab and the tier check need none); the program requires it.
    ssh_host_keys: Optional[dict[str, SecretStr]] = None

    @field_validator("ssh_host_keys")
    @classmethod
    def _host_keys(cls, v: Optional[dict[str, SecretStr]]) -> Optional[dict[str, SecretStr]]:
        from .hostkeys import HostKeyError, public_key

        out = {}
        for name, key in (v or {}).items():
            try:
                public_key(key.get_secret_value())
            except HostKeyError as exc:
                raise ValueError(f"{name}: {exc}") from None
            # `pulumi config set` (value on stdin) drops the key's final newline, and OpenSSH's
            # sshd refuses a private key file without one ("error in libcrypto": no host key, no
            # sshd). The key is stored as typed; what reaches the guest always ends in one.
            out[name] = SecretStr(key.get_secret_value().strip() + "\n")
        return out if v is not None else None

    @field_validator("db_password")
    @classmethod
    def _db_password(cls, v: SecretStr) -> SecretStr:
        raw = v.get_secret_value()
        if len(raw) < 12:
            raise ValueError("must be at least 12 characters")
        if len(raw) > 256:
            raise ValueError("must be at most 256 characters")
        # Any other character is fine: the templates quote it for PHP, SQL and the shell, and it
        # travels as one NAME=value line on stdin (so: no line breaks, no NUL).
        if any(c in raw for c in "\n\r\0"):
            raise ValueError("must not contain line breaks or NUL")
        return v

    @model_validator(mode="after")
    def _topology(self) -> "StackConfig":
        net = self.network
        names = [h.name for h in self.hosts]
        for field, values in (
            ("name", names),
            ("fqdn", [h.fqdn for h in self.hosts]),
            ("ip", [h.ip for h in self.hosts]),
        ):
            dupes = sorted({str(v) for v in values if values.count(v) > 1})
            if dupes:
                raise ValueError(f"hosts: duplicate {field} {', '.join(dupes)}")
        for i, host in enumerate(self.hosts):
            if host.ip not in net.cidr or host.ip in (
                net.cidr.network_address,
                net.cidr.broadcast_address,
            ):
                raise ValueError(f"hosts[{i}].ip: {host.ip} is not a usable address of {net.cidr}")
            if host.ip == net.gateway:
                raise ValueError(f"hosts[{i}].ip: {host.ip} is the gateway address")
        webs = [h for h in self.hosts if h.role == "web"]
        dbs = [h for h in self.hosts if h.role == "db"]
        if len(webs) < 2:
            raise ValueError(f"hosts: {len(webs)} web host(s); VRRP needs at least two")
        if len(dbs) != 1:
            raise ValueError(f"hosts: exactly one db host is needed, got {len(dbs)}")
        prios = [h.priority for h in webs]
        if len(set(prios)) != len(prios):
            raise ValueError(f"hosts: web priorities must differ, got {prios}")
        vip = self.vrrp.vip
        if vip not in net.cidr or vip in (net.cidr.network_address, net.cidr.broadcast_address):
            raise ValueError(f"vrrp.vip: {vip} is outside the network {net.cidr}")
        if vip == net.gateway:
            raise ValueError(f"vrrp.vip: {vip} is the gateway address")
        taken = {h.ip: h.name for h in self.hosts}
        if vip in taken:
            raise ValueError(f"vrrp.vip: {vip} is already {taken[vip]}'s address")
        hc = self.vrrp.health_check
        if hc.weight < 0:
            top, second = sorted(prios, reverse=True)[:2]
            if top + hc.weight >= second:
                raise ValueError(
                    f"vrrp.healthCheck.weight: {hc.weight} cannot move the VIP "
                    f"({top}{hc.weight} is not below the backup's {second})"
                )
        db = self.database
        if db.source_host not in names or self.host(db.source_host).role != "web":
            raise ValueError(f"database.sourceHost: {db.source_host!r} is not a web host")
        if db.target_host not in names or self.host(db.target_host).role != "db":
            raise ValueError(f"database.targetHost: {db.target_host!r} is not the db host")
        app = self.app
        if app.http_port == self.ssh.port:
            raise ValueError(f"app.httpPort: {app.http_port} is ssh.port (sshd listens there on every host)")
        if app.http_port == MYSQL_PORT:
            raise ValueError(f"app.httpPort: {app.http_port} is MariaDB's port (on {db.source_host} until the migration)")
        if self.ssh.port == MYSQL_PORT:
            raise ValueError(f"ssh.port: {self.ssh.port} is MariaDB's port")
        taken_names = migration_user_names(self)
        if db.app_user.lower() == taken_names["user"].lower():
            raise ValueError(
                f"database.appUser: {db.app_user!r} is the migration's own user "
                "(the last migration step drops it: the app would lose its account)"
            )
        if db.name.lower() == taken_names["meta_schema"].lower():
            raise ValueError(f"database.name: {db.name!r} is the migration's bookkeeping schema")
        if db.allowed_hosts:
            for web in self.web_hosts:
                if not any(_host_matches(p, str(web.ip)) for p in db.allowed_hosts):
                    raise ValueError(
                        f"database.allowedHosts: no entry allows web host {web.name} ({web.ip}): "
                        "its app could not reach the database"
                    )
        auth = self.vrrp_auth_pass
        if self.vrrp.auth_type == "PASS":
            if auth is None:
                raise ValueError("vrrpAuthPass: required (as a secret) with vrrp.authType PASS")
            raw = auth.get_secret_value()
            if not 1 <= len(raw) <= 8:
                raise ValueError(
                    "vrrpAuthPass: PASS authentication uses at most 8 characters "
                    "(keepalived silently truncates longer ones)"
                )
            if not re.match(r"^[!-~]+$", raw) or _KEEPALIVED_UNSAFE & set(raw):
                raise ValueError(
                    "vrrpAuthPass: printable ASCII without spaces, '$', '\"', '#', '!', '{' or '}' "
                    "(keepalived expands $NAME and $_RANDOM-style built-ins, splits on spaces and "
                    "braces, and starts a comment at '#' or '!': the nodes would not share one password)"
                )
        elif auth is not None:
            raise ValueError("vrrpAuthPass: set but vrrp.authType is none")
        if self.ssh_host_keys is not None:
            extra = sorted(set(self.ssh_host_keys) - set(names))
            if extra:
                raise ValueError(f"sshHostKeys: {', '.join(extra)} is not a host of `hosts`")
        self._dns_names()
        self._check_hypervisors()
        return self

    def _check_hypervisors(self) -> None:
        """Named hypervisors: every host on a known one, web nodes on different ones (anti-affinity),
        one LAN between them (mode bridge), each with a bridge to attach to."""
        for name in self.hypervisors:
            if not _HYPERVISOR_NAME.fullmatch(name):
                raise ValueError(f"hypervisors: {name!r} is not a hypervisor name (a-z, 0-9, '-', 1-32, "
                                 "starting with a letter)")
        if not self.hypervisors:
            for i, host in enumerate(self.hosts):
                if host.hypervisor is not None:
                    raise ValueError(f"hosts[{i}].hypervisor: {host.hypervisor!r} is not defined "
                                     "(no webha:hypervisors in this stack)")
            if self.network.mode == "bridge" and not self.network.bridge:
                raise ValueError("network.bridge: required with mode: bridge")
            return
        if "uri" in self.libvirt.model_fields_set:
            raise ValueError("libvirt.uri: set together with hypervisors; give each hypervisor its uri")
        for i, host in enumerate(self.hosts):
            if host.hypervisor is None:
                raise ValueError(f"hosts[{i}].hypervisor: required when webha:hypervisors is set "
                                 f"(one of {', '.join(sorted(self.hypervisors))})")
            if host.hypervisor not in self.hypervisors:
                raise ValueError(f"hosts[{i}].hypervisor: {host.hypervisor!r} is not defined under "
                                 f"hypervisors (one of {', '.join(sorted(self.hypervisors))})")
        if not self.allow_same_hypervisor:
            seen: dict[str, str] = {}
            for i, host in enumerate(self.hosts):
                if host.role != "web":
                    continue
                if host.hypervisor in seen:
                    raise ValueError(
                        f"hosts[{i}].hypervisor: web node {host.name} is on {host.hypervisor} with "
                        f"{seen[host.hypervisor]}; web nodes must sit on different hypervisors (one "
                        "host's loss would take both), or set allowSameHypervisor: true")
                seen[host.hypervisor] = host.name
        used = self.used_hypervisors()
        if len(used) > 1 and self.network.mode != "bridge":
            raise ValueError(
                f"network.mode: {self.network.mode} makes one libvirt network per hypervisor and "
                f"guests on {', '.join(h.name for h in used)} could not reach each other; "
                "use mode: bridge (the LAN the hypervisors share)")
        if self.network.mode == "bridge":
            for hv in used:
                if not hv.bridge:
                    raise ValueError(f"hypervisors.{hv.name}.bridge: required with network mode "
                                     "bridge (or set network.bridge)")
        else:
            for name, hv in self.hypervisors.items():
                if hv.bridge is not None:
                    raise ValueError(f"hypervisors.{name}.bridge: only used with network mode bridge")

    def hypervisor_list(self) -> list[Hypervisor]:
        """Every hypervisor, defaults filled in; the implicit one when none is named."""
        lv = self.libvirt
        if not self.hypervisors:
            return [Hypervisor("default", lv.uri, lv.pool, self.network.bridge, named=False)]
        return [
            Hypervisor(name, hv.uri, hv.pool or lv.pool, hv.bridge or self.network.bridge, named=True)
            for name, hv in self.hypervisors.items()
        ]

    def used_hypervisors(self) -> list[Hypervisor]:
        """Hypervisors that run at least one guest, in the order of first use in hosts."""
        every = {hv.name: hv for hv in self.hypervisor_list()}
        if not self.hypervisors:
            return list(every.values())
        order = list(dict.fromkeys(h.hypervisor for h in self.hosts))
        return [every[n] for n in order]

    def hypervisor_of(self, host: HostConfig) -> Hypervisor:
        if not self.hypervisors:
            return self.hypervisor_list()[0]
        return next(hv for hv in self.hypervisor_list() if hv.name == host.hypervisor)

    def host_public_keys(self) -> dict[str, str]:
        """Host -> ``ssh-ed25519 AAAA...``, made from the secret private keys (never stored)."""
        from .hostkeys import public_key

        keys = self.ssh_host_keys or {}
        missing = [h.name for h in self.hosts if h.name not in keys]
        if missing:
            raise ConfigError("\n".join(
                f"{NAMESPACE}:sshHostKeys.{n}: missing (a secret: `python -m webha.hostkeys generate | "
                f"pulumi config set --secret --path sshHostKeys.{n}`; scripts/up-local.sh makes them)"
                for n in missing))
        return {h.name: public_key(keys[h.name].get_secret_value()) for h in self.hosts}

    def _dns_names(self) -> None:
        """Every name the ``dns`` output publishes lies in the zone, fits an ownership TXT and has
        one owner: the VIP's names never collide with a host's A record."""
        zone = self.dns_zone
        source = "dns.zone" if self.dns.zone else "network.domain; set dns.zone for another zone"
        named = [("app.serverName", self.app.server_name)]
        named += [(f"hosts[{i}].fqdn", h.fqdn) for i, h in enumerate(self.hosts)]
        named += [(f"dns.extraNames[{i}]", n) for i, n in enumerate(self.dns.extra_names)]
        for field, name in named:
            if not _in_zone(name, zone):
                raise ValueError(f"{field}: {name} is not inside the DNS zone {zone} ({source})")
            if len(name) > _DNS_NAME_MAX:
                raise ValueError(f"{field}: {name} is longer than {_DNS_NAME_MAX} characters "
                                 f"(its ownership TXT {DNS_OWNER_LABEL}.{name} must fit 253)")
        hosts = {h.fqdn: f"hosts[{i}].fqdn" for i, h in enumerate(self.hosts)}
        if self.app.server_name in hosts:
            raise ValueError(f"app.serverName: {self.app.server_name} is also {hosts[self.app.server_name]}: "
                             "one name cannot point at both the VIP and a host")
        for i, name in enumerate(self.dns.extra_names):
            if name in hosts:
                raise ValueError(f"dns.extraNames[{i}]: {name} is {hosts[name]}: "
                                 "one name cannot point at both the VIP and a host")
            if name == self.app.server_name:
                raise ValueError(f"dns.extraNames[{i}]: {name} is app.serverName (published already)")
        if self.dns.reverse and self.network.cidr.prefixlen < 8:
            raise ValueError(f"dns.reverse: network.cidr {self.network.cidr} is wider than a /8: "
                             "no single in-addr.arpa zone holds it")

    @property
    def dns_zone(self) -> str:
        return self.dns.zone or self.network.domain

    def host(self, name: str) -> HostConfig:
        return next(h for h in self.hosts if h.name == name)

    @property
    def web_hosts(self) -> list[HostConfig]:
        """Web hosts, preferred VIP holder first."""
        return sorted((h for h in self.hosts if h.role == "web"), key=lambda h: -h.priority)

    @property
    def db_host(self) -> HostConfig:
        return next(h for h in self.hosts if h.role == "db")


def _field_path(loc: tuple) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts[-1] = f"{parts[-1]}[{item}]" if parts else f"[{item}]"
        elif item in ("function-after", "function-before") or "[" in str(item):
            continue
        else:
            parts.append(to_camel(str(item)) if "_" in str(item) else str(item))
    return ".".join(parts)


def format_errors(exc: ValidationError) -> str:
    """One line per problem, each naming the field as the operator typed it."""
    lines = []
    for err in exc.errors():
        path = _field_path(err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        # Model-level checks name their own field at the start of the message.
        where = f"{NAMESPACE}:{path}" if path else NAMESPACE
        if not path and ": " in msg:
            where, msg = f"{NAMESPACE}:{msg.split(': ', 1)[0]}", msg.split(": ", 1)[1]
        elif path and ": " in msg and re.match(r"^[A-Za-z.\[\]0-9]+: ", msg):
            sub, msg = msg.split(": ", 1)
            where = f"{NAMESPACE}:{path}{'' if sub.startswith('[') else '.'}{sub}"
        lines.append(f"{where}: {msg}")
    return "\n".join(lines)


def parse_config(raw: dict[str, Any], secret_keys: set[str] | frozenset = frozenset()) -> StackConfig:
    """Validate a ``{key: value}`` dict (keys without the ``webha:`` prefix)."""
    for key in SECRET_KEYS:
        if key in raw and key not in secret_keys:
            raise ConfigError(
                f"{NAMESPACE}:{key}: stored in plaintext; set it with "
                f"`pulumi config set --secret {key} ...`"
            )
    missing = [k for k in ("network", "image", "ssh", "hosts", "vrrp", "dbPassword") if k not in raw]
    if missing:
        raise ConfigError(
            "\n".join(
                f"{NAMESPACE}:{k}: missing"
                + (" (a secret: `pulumi config set --secret dbPassword ...`)" if k == "dbPassword" else "")
                for k in missing
            )
        )
    try:
        return StackConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(format_errors(exc)) from None


def check_local_files(cfg: StackConfig) -> None:
    """With a libvirt URI on this machine, the image files must exist here (checked at preview)."""
    local = [hv for hv in cfg.used_hypervisors() if hv.is_local]
    if not local:
        return
    import os

    img = cfg.image
    problems = []
    for key, value in (("source", img.source), ("kernel", img.kernel), ("initrd", img.initrd)):
        if value is None or re.match(r"^https?://", value):
            continue
        if not os.path.isfile(value):
            problems.append(
                f"{NAMESPACE}:image.{key}: {value} does not exist (or is not a file) on this "
                f"machine, and libvirt ({local[0].uri}) reads it from here"
            )
    if problems:
        raise ConfigError("\n".join(problems))


def read_pulumi_value(key: str, value: Any) -> Any:
    """A value as the Pulumi config hands it over: structured keys arrive as JSON text, every other
    key (the secrets above all) is the literal string the operator set."""
    if key in STRUCTURED_KEYS and isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{NAMESPACE}:{key}: not valid JSON/YAML structure ({exc})") from None
    return value


def load_stack_config() -> StackConfig:
    """Read every ``webha:*`` key of the running stack and validate it (works in preview)."""
    from pulumi.runtime import config as rc

    prefix = f"{NAMESPACE}:"
    keys = set(rc.CONFIG.get()) | set(rc.get_config_env())
    raw: dict[str, Any] = {}
    secret: set[str] = set()
    for full in sorted(k for k in keys if k.startswith(prefix)):
        key = full[len(prefix):]
        raw[key] = read_pulumi_value(key, rc.get_config(full))
        if rc.is_config_secret(full) or full in rc.get_config_secret_keys_env():
            secret.add(key)
    cfg = parse_config(raw, secret)
    check_local_files(cfg)
    return cfg
