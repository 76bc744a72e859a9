"""webha.dns/v1 -> the documents DNS-as-code tools read. Each writer takes the validated contract
(webha/dns/contract.py) and returns text; the tools' own libraries do the quoting wherever one
exists (dnspython writes the BIND and PowerDNS presentation format, octoDNS's YAML dumper orders
the octoDNS zone the way its YamlProvider insists on).

- octodns: one zone file for octoDNS's YamlProvider (``<zone>.yaml``)
- bind: the records of one zone with ``$ORIGIN``, to ``$INCLUDE`` from the zone's master file
  (the SOA and NS records belong to whoever runs the zone, not to webha)
- external-dns: one ``DNSEndpoint`` (externaldns.k8s.io/v1alpha1) with every zone's records;
  webha's ownership TXTs are left out: external-dns keeps its own (its TXT registry, with
  ``--txt-owner-id``), and the owner is an annotation of the object
- powerdns: the body of ``PATCH /api/v1/servers/localhost/zones/<zone>.`` (REPLACE rrsets)
- json: the document itself
"""

from __future__ import annotations

import io
import json
import re

import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.zone
import yaml

FORMATS = ("octodns", "bind", "external-dns", "powerdns", "json")
# Formats whose document holds one zone (the others hold the whole contract).
PER_ZONE = ("octodns", "bind", "powerdns")


def _rdata(record: dict, value: str) -> dns.rdata.Rdata:
    """One value as dnspython's rdata: TXT from its raw bytes (no hand quoting), names absolute."""
    rtype = dns.rdatatype.from_text(record["type"])
    if record["type"] == "TXT":
        from dns.rdtypes.ANY.TXT import TXT

        return TXT(dns.rdataclass.IN, rtype, [value.encode()])
    if record["type"] == "PTR":
        value = value + "."
    return dns.rdata.from_text(dns.rdataclass.IN, rtype, value)


def octodns_zone(zone: dict) -> str:
    from octodns.yaml import safe_dump

    out: dict[str, list] = {}
    for r in zone["records"]:
        # PTR targets absolute; TXT values as they are (webha.dns/v1 allows no ';' in them, so
        # octoDNS's escaped_semicolons setting reads them the same either way).
        values = [v + "." if r["type"] == "PTR" else v for v in r["values"]]
        data = {"type": r["type"], "ttl": r["ttl"]}
        data.update({"value": values[0]} if len(values) == 1 else {"values": values})
        out.setdefault("" if r["name"] == "@" else r["name"], []).append(data)
    doc = {name: items[0] if len(items) == 1 else items for name, items in out.items()}
    buf = io.StringIO()
    safe_dump(doc, buf)
    return buf.getvalue()


def bind_zone(zone: dict, owner: str) -> str:
    origin = dns.name.from_text(zone["zone"] + ".")
    z = dns.zone.Zone(origin, relativize=True)
    for r in zone["records"]:
        name = dns.name.from_text(r["fqdn"] + ".").relativize(origin)
        rdataset = z.find_rdataset(name, r["type"], create=True)
        for value in r["values"]:
            rdataset.add(_rdata(r, value), r["ttl"])
    header = (f"; webha.dns/v1 records of {zone['zone']} owned by {owner}.\n"
              "; $INCLUDE this file from the zone's master file (which keeps its SOA and NS).\n")
    return header + z.to_text(sorted=True, relativize=True, want_origin=True)


def powerdns_rrsets(zone: dict) -> str:
    rrsets = [{
        "name": r["fqdn"] + ".",
        "type": r["type"],
        "ttl": r["ttl"],
        "changetype": "REPLACE",
        "records": [{"content": _rdata(r, v).to_text(), "disabled": False} for v in r["values"]],
    } for r in zone["records"]]
    return json.dumps({"rrsets": rrsets}, indent=2) + "\n"


def k8s_name(owner: str) -> str:
    """A DNS-1123 object name from the owner: webha/local -> webha-local."""
    name = re.sub(r"[^a-z0-9-]+", "-", owner.lower()).strip("-")[:63].rstrip("-")
    return name or "webha"


def external_dns_endpoint(doc: dict, name: str | None = None, namespace: str | None = None) -> str:
    metadata: dict = {
        "name": name or k8s_name(doc["owner"]),
        "labels": {"app.kubernetes.io/managed-by": "webha"},
        "annotations": {"webha.dns/owner": doc["owner"], "webha.dns/schema": doc["schema"]},
    }
    if namespace:
        metadata["namespace"] = namespace
    endpoints = [{"dnsName": r["fqdn"], "recordTTL": r["ttl"], "recordType": r["type"], "targets": list(r["values"])}
                 for z in doc["zones"] for r in z["records"] if r["role"] != "owner"]
    obj = {"apiVersion": "externaldns.k8s.io/v1alpha1", "kind": "DNSEndpoint", "metadata": metadata,
           "spec": {"endpoints": endpoints}}
    return yaml.safe_dump(obj, sort_keys=False)


def render(fmt: str, doc: dict, zone: dict, *, name: str | None = None, namespace: str | None = None) -> str:
    """``fmt`` of the document (``zone``: the zone a per-zone format writes)."""
    if fmt == "octodns":
        return octodns_zone(zone)
    if fmt == "bind":
        return bind_zone(zone, doc["owner"])
    if fmt == "powerdns":
        return powerdns_rrsets(zone)
    if fmt == "external-dns":
        return external_dns_endpoint(doc, name, namespace)
    if fmt == "json":
        return json.dumps(doc, indent=2) + "\n"
    raise ValueError(f"unknown format {fmt!r} (one of {', '.join(FORMATS)})")


def file_name(fmt: str, zone: str | None) -> str:
    """The file a format is written to in ``--output-dir`` (octoDNS's YamlProvider reads
    ``<zone>.yaml`` with the zone's trailing dot: itcast.cn.yaml)."""
    return {"octodns": f"{zone}.yaml", "bind": f"{zone}.zone", "powerdns": f"{zone}.json",
            "external-dns": "dnsendpoint.yaml", "json": "webha.dns.json"}[fmt]
