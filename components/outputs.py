"""Stack outputs: plain JSON that DNS pipelines read with ``pulumi stack output --json``."""

from __future__ import annotations

from .config import StackConfig


def stack_outputs(cfg: StackConfig) -> dict:
    port = cfg.app.http_port
    vip = str(cfg.vrrp.vip)
    return {
        "vip": vip,
        "url": f"http://{vip}/" if port == 80 else f"http://{vip}:{port}/",
        "hosts": {h.name: str(h.ip) for h in cfg.hosts},
        "fqdns": {h.name: h.fqdn for h in cfg.hosts},
        "vrrp": {
            "virtualRouterId": cfg.vrrp.virtual_router_id,
            "mode": "preempt" if cfg.vrrp.preempt else "nopreempt",
            "version": cfg.vrrp.version,
            "unicast": cfg.vrrp.unicast,
            "preferredHolder": cfg.web_hosts[0].name,
        },
    }
