"""Everything derived from the stack config that the templates need, computed once.

Components never compute peers, states or firewall sources themselves: they ask this module, and
so do the lab harness and the tests. ``Paths`` holds every file location a template mentions so the
lab can move a node's files into its own directory without touching anything else.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from .config import HostConfig, StackConfig


@dataclass(frozen=True)
class Paths:
    """Where things live on a node. Real hosts use the defaults; the lab rewrites them."""

    keepalived_dir: str = "/etc/keepalived"
    script_dir: str = "/etc/keepalived/scripts"
    state_dir: str = "/run/webha"
    nginx_pid: str = "/run/nginx.pid"
    nginx_site: str = "/etc/nginx/sites-enabled/webha-shop.conf"
    app_root: str = "/home/www"
    php_socket: str = "/run/php/php-fpm.sock"
    log_dir: str = "/var/log/webha"
    # Survives reboots (unlike state_dir): keepalived had its ordered first start on this node.
    keepalived_started: str = "/var/lib/webha/keepalived.started"
    script_user: str = "keepalived_script"
    # The event reader (templates/keepalived/webha-events.py.j2): keepalived's notify FIFO in, an
    # ordered JSON-lines log and the node exporter's textfile metrics out.
    keepalived_pid: str = "/run/keepalived.pid"
    events_log: str = "/var/lib/webha/events.jsonl"
    metrics_dir: str = "/var/lib/prometheus/node-exporter"
    # Files php-fpm's opcache never caches (templates/php/): the app's database.php.
    opcache_blacklist: str = "/etc/webha/opcache-blacklist.txt"
    # sshd's host keys (templates/scripts/host-key-install.sh.j2); the lab test of a rotation moves them.
    ssh_dir: str = "/etc/ssh"

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class VrrpNode:
    name: str
    ip: str
    priority: int
    state: str
    peers: list[str] = field(default_factory=list)


def vrrp_nodes(cfg: StackConfig) -> list[VrrpNode]:
    """Web nodes in priority order with their VRRP role.

    Preemptive mode: the top node starts as MASTER. Non-preemptive mode: every node is BACKUP with
    ``nopreempt`` (keepalived ignores nopreempt on a MASTER), the election picks the highest
    priority once and nobody takes the VIP back afterwards.
    """
    webs = cfg.web_hosts
    nodes = []
    for i, host in enumerate(webs):
        state = "MASTER" if cfg.vrrp.preempt and i == 0 else "BACKUP"
        peers = [str(h.ip) for h in webs if h.name != host.name]
        nodes.append(VrrpNode(host.name, str(host.ip), host.priority, state, peers))
    return nodes


def mysql_pattern_to_cidr(pattern: str) -> str:
    """``10.1.1.%`` -> ``10.1.1.0/24`` so the firewall opens exactly what MySQL grants."""
    parts = pattern.split(".")
    if parts[-1] != "%":
        return pattern
    fixed = parts[:-1]
    return ".".join(fixed + ["0"] * (4 - len(fixed))) + f"/{8 * len(fixed)}"


def hosts_entries(cfg: StackConfig) -> list[dict]:
    return [{"ip": str(h.ip), "name": h.name, "fqdn": h.fqdn} for h in cfg.hosts]


def base_context(cfg: StackConfig, paths: Optional[Paths] = None) -> dict:
    """Values shared by every template."""
    paths = paths or Paths(app_root=cfg.app.root)
    net = cfg.network
    allowed = cfg.database.allowed_hosts or [str(h.ip) for h in cfg.web_hosts]
    return {
        "paths": paths.as_dict(),
        "os_family": cfg.image.os_family,
        "network": {
            "cidr": str(net.cidr),
            "prefix": net.cidr.prefixlen,
            "gateway": str(net.gateway),
            "interface": net.interface,
            "domain": net.domain,
            "dns": [str(d) for d in net.dns],
            "mode": net.mode,
        },
        "hosts": hosts_entries(cfg),
        "web_ips": [str(h.ip) for h in cfg.web_hosts],
        "db_ip": str(cfg.db_host.ip),
        "vip": str(cfg.vrrp.vip),
        "app": cfg.app.model_dump(),
        "database": {
            "name": cfg.database.name,
            "app_user": cfg.database.app_user,
            "allowed_hosts": allowed,
            "allowed_ips": [mysql_pattern_to_cidr(p) for p in allowed],
            "source_ip": str(cfg.host(cfg.database.source_host).ip),
            "target_ip": str(cfg.host(cfg.database.target_host).ip),
            "mode": cfg.database.mode,
        },
        "packages": cfg.packages.model_dump(),
        "vrrp": {
            "unicast": cfg.vrrp.unicast,
            "version": cfg.vrrp.version,
            "virtual_router_id": cfg.vrrp.virtual_router_id,
        },
    }


def host_context(cfg: StackConfig, host: HostConfig, paths: Optional[Paths] = None) -> dict:
    """Context for one host's templates (cloud-init, firewall, host prep)."""
    ctx = base_context(cfg, paths)
    ctx["host"] = {"name": host.name, "fqdn": host.fqdn, "ip": str(host.ip), "role": host.role}
    return ctx


RTTIME_SOFT_US = 5000
RTTIME_HARD_US = 10000


def keepalived_context(
    cfg: StackConfig,
    node_name: str,
    paths: Optional[Paths] = None,
) -> dict:
    """Context for keepalived.conf / check / notify on one web node. Holds no secret: the VRRP
    password goes only into ``keepalived/vrrp-auth.conf.j2``, which keepalived.conf includes."""
    node = next(n for n in vrrp_nodes(cfg) if n.name == node_name)
    v = cfg.vrrp
    hc = v.health_check
    ctx = host_context(cfg, cfg.host(node_name), paths)
    ctx["node"] = asdict(node)
    ctx["keepalived"] = {
        "router_id": node.name,
        "instance": f"VI_{v.virtual_router_id}",
        "version": v.version,
        "advert_int": format(v.advert_int.normalize(), "f"),
        "virtual_router_id": v.virtual_router_id,
        "nopreempt": not v.preempt,
        "preempt_delay": v.preempt_delay,
        "unicast": v.unicast,
        "strict": v.strict,
        "auth_type": v.auth_type,
        "garp_master_delay": v.garp_master_delay,
        "realtime": v.realtime,
        # RLIMIT_RTTIME of keepalived (us of CPU a real-time process may use without blocking):
        # set by its service manager (systemd LimitRTTIME; the lab: prlimit), never by keepalived.
        # keepalived's own (vrrp_rlimit_rttime) is reset on every reload to a never-initialised
        # {0, 0} (process.c: reset_process_priorities, orig_rlimit_rt) and a process without
        # CAP_SYS_RESOURCE cannot raise it again: SIGKILL at the next tick that finds the VRRP
        # process running. So keepalived runs without CAP_SYS_RESOURCE and asks for more than
        # the hard limit: its setrlimit fails (EPERM, logged as "child process cannot set realtime
        # rlimit") and it never touches the limit. 5/10 ms = keepalived's own default.
        "rttime": {"soft": RTTIME_SOFT_US, "hard": RTTIME_HARD_US, "keepalived": 2 * RTTIME_HARD_US},
        "check": {
            "interval": format(hc.interval.normalize(), "f"),
            "timeout": format(hc.timeout.normalize(), "f"),
            # keepalived's limit on the script: curl's (timeout) + 1 s for the script's own start on
            # a busy node. With both at 1 s, every false transition of bench/soak.py's first run
            # was a check keepalived killed (`timed_out`) while nginx was fine.
            "script_timeout": format((hc.timeout + 1).normalize(), "f"),
            "fall": hc.fall,
            "rise": hc.rise,
            "weight": hc.weight,
            "track_process": hc.track_process,
            "track_file": hc.track_file,
            # 1 = nginx exited, 0 = running: written by nginx-exit.sh, read by keepalived.
            "exit_file": f"{ctx['paths']['state_dir']}/nginx.exit",
        },
    }
    return ctx
