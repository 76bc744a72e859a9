"""Stack outputs: plain JSON that DNS pipelines read with ``pulumi stack output --json``.

``dns`` is the versioned record contract (``schemas/webha.dns.v1.json``): which names point at
the VIP and the hosts, with which TTL, in which zone, and who owns them. ``python -m webha dns``
turns it into octoDNS, BIND, external-dns or PowerDNS documents.
"""

from __future__ import annotations

import ipaddress

from .config import DNS_OWNER_LABEL, StackConfig

DNS_SCHEMA = "webha.dns/v1"
DNS_HERITAGE = "webha"


def stack_outputs(cfg: StackConfig, project: str = "webha", stack: str = "dev") -> dict:
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
        "dns": dns_records(cfg, project, stack),
    }


def reverse_zone(network: ipaddress.IPv4Network) -> str:
    """The in-addr.arpa zone holding the network: its prefix rounded down to whole octets
    (10.1.1.0/24 -> 1.1.10.in-addr.arpa; a /26 lies in the /24's zone)."""
    octets = network.prefixlen // 8
    return ".".join(str(network.network_address).split(".")[:octets][::-1] + ["in-addr", "arpa"])


def owner_txt(owner: str, rtype: str) -> str:
    """The ownership TXT value, shaped like external-dns's registry records."""
    return f"heritage={DNS_HERITAGE},{DNS_HERITAGE}/owner={owner},{DNS_HERITAGE}/type={rtype}"


def _zone(zone: str, kind: str, owned: list[tuple[str, str, int, list[str], str]], owner: str) -> dict:
    """The zone's records: each owned record and its ownership TXT, ordered by name."""
    def record(fqdn: str, rtype: str, ttl: int, values: list[str], role: str) -> dict:
        name = "@" if fqdn == zone else fqdn[: -len(zone) - 1]
        return {"name": name, "fqdn": fqdn, "type": rtype, "ttl": ttl, "values": values, "role": role}

    records = []
    for fqdn, rtype, ttl, values, role in owned:
        records.append(record(fqdn, rtype, ttl, values, role))
        records.append(record(f"{DNS_OWNER_LABEL}.{fqdn}", "TXT", ttl, [owner_txt(owner, rtype)], "owner"))
    records.sort(key=lambda r: (r["fqdn"].split(".")[::-1], r["type"]))
    return {"zone": zone, "kind": kind, "records": records}


def dns_records(cfg: StackConfig, project: str, stack: str) -> dict:
    """The ``dns`` output (webha.dns/v1): the service name and extra names -> the VIP (short
    TTL), every host -> its address, optionally the PTRs, each with its ownership TXT."""
    dns = cfg.dns
    owner = dns.owner or f"{project}/{stack}"
    vip = str(cfg.vrrp.vip)
    owned = [(cfg.app.server_name, "A", dns.service_ttl, [vip], "service")]
    owned += [(name, "A", dns.service_ttl, [vip], "extra") for name in dns.extra_names]
    owned += [(h.fqdn, "A", dns.host_ttl, [str(h.ip)], "host") for h in cfg.hosts]
    zones = [_zone(cfg.dns_zone, "forward", owned, owner)]
    if dns.reverse:
        rzone = reverse_zone(cfg.network.cidr)
        ptrs = [(cfg.vrrp.vip.reverse_pointer, "PTR", dns.service_ttl, [cfg.app.server_name], "service")]
        ptrs += [(h.ip.reverse_pointer, "PTR", dns.host_ttl, [h.fqdn], "host") for h in cfg.hosts]
        zones.append(_zone(rzone, "reverse", ptrs, owner))
    return {"schema": DNS_SCHEMA, "heritage": DNS_HERITAGE, "owner": owner, "zones": zones}
