"""The `dns` stack output (webha.dns/v1): built from the typed config, valid against the schema
file in the repository, and refused by the exporters' reader when it is anything else."""

import copy
import json
import subprocess
import sys

import jsonschema
import pytest

from components.config import parse_config
from components.outputs import dns_records, reverse_zone
from tests.conftest import ROOT
from webha.dns.contract import SCHEMA_PATH, ContractError, from_stack_outputs, validate
from webha.stackfile import read_stack_values, secrets_for

pytestmark = pytest.mark.unit


def config(stack="dev", **dns):
    raw = read_stack_values(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    secrets = secrets_for(raw)  # the dev stack carries no VRRP password
    raw.update(secrets)
    if dns:
        raw["dns"] = {**raw.get("dns", {}), **dns}
    return parse_config(raw, set(secrets))


def records(doc, zone=0):
    return {(r["fqdn"], r["type"]): r for r in doc["zones"][zone]["records"]}


def test_schema_file_is_a_valid_draft_2020_12_schema():
    schema = json.loads(SCHEMA_PATH.read_text())
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize("stack", ["dev", "local"])
def test_shipped_stacks_publish_a_valid_document(stack):
    doc = dns_records(config(stack), "webha", stack)
    validate(doc)
    assert doc["schema"] == "webha.dns/v1" and doc["owner"] == f"webha/{stack}"
    assert doc["zones"][0]["zone"] == "itcast.cn" and doc["zones"][0]["kind"] == "forward"


def test_service_name_points_at_the_vip_with_the_short_ttl_and_hosts_at_their_addresses():
    doc = dns_records(config(serviceTtl=30, hostTtl=7200, extraNames=["www.shop.itcast.cn"]), "webha", "dev")
    recs = records(doc)
    assert recs[("shop.itcast.cn", "A")] == {"name": "shop", "fqdn": "shop.itcast.cn", "type": "A", "ttl": 30,
                                                   "values": ["10.1.1.100"], "role": "service"}
    assert recs[("www.shop.itcast.cn", "A")]["values"] == ["10.1.1.100"]
    assert recs[("www.shop.itcast.cn", "A")]["ttl"] == 30
    hosts = {fqdn: r["values"] for (fqdn, t), r in recs.items() if r["role"] == "host"}
    assert hosts == {"web01.itcast.cn": ["10.1.1.11"], "mysql01.itcast.cn": ["10.1.1.12"],
                     "web02.itcast.cn": ["10.1.1.13"]}
    assert {r["ttl"] for r in recs.values() if r["role"] == "host"} == {7200}


def test_every_owned_record_has_an_ownership_txt_naming_the_stack():
    doc = dns_records(config(), "webha", "prod-eu")
    for zone in doc["zones"]:
        recs = records(doc, doc["zones"].index(zone))
        owned = [r for r in recs.values() if r["role"] != "owner"]
        owners = [r for r in recs.values() if r["role"] == "owner"]
        assert len(owners) == len(owned) > 0
        for r in owned:
            txt = recs[(f"_webha-owner.{r['fqdn']}", "TXT")]
            assert txt["values"] == [f"heritage=webha,webha/owner=webha/prod-eu,webha/type={r['type']}"]
            assert txt["ttl"] == r["ttl"]
    assert dns_records(config(owner="team-shop"), "webha", "x")["zones"][0]["records"][1]["values"][0] \
        == "heritage=webha,webha/owner=team-shop,webha/type=A"


def test_reverse_zone_has_a_ptr_per_host_and_the_vip():
    doc = dns_records(config(reverse=True), "webha", "dev")
    assert [z["zone"] for z in doc["zones"]] == ["itcast.cn", "1.1.10.in-addr.arpa"]
    ptr = {r["fqdn"]: r["values"] for r in doc["zones"][1]["records"] if r["type"] == "PTR"}
    assert ptr == {"100.1.1.10.in-addr.arpa": ["shop.itcast.cn"], "11.1.1.10.in-addr.arpa": ["web01.itcast.cn"],
                   "12.1.1.10.in-addr.arpa": ["mysql01.itcast.cn"], "13.1.1.10.in-addr.arpa": ["web02.itcast.cn"]}
    assert len(dns_records(config(reverse=False), "webha", "dev")["zones"]) == 1


@pytest.mark.parametrize("cidr,zone", [("10.1.1.0/24", "1.1.10.in-addr.arpa"), ("10.1.1.64/26", "1.1.10.in-addr.arpa"),
                                       ("172.16.0.0/16", "16.172.in-addr.arpa"), ("10.16.0.0/12", "10.in-addr.arpa")])
def test_reverse_zone_rounds_down_to_whole_octets(cidr, zone):
    import ipaddress

    assert reverse_zone(ipaddress.IPv4Network(cidr)) == zone


def test_service_name_at_the_zone_apex():
    raw = read_stack_values(ROOT / "stacks" / "Pulumi.dev.yaml")
    secrets = secrets_for(raw)  # the dev stack carries no VRRP password
    raw.update(secrets)
    raw["app"]["serverName"] = "itcast.cn"
    doc = dns_records(parse_config(raw, set(secrets)), "webha", "dev")
    validate(doc)
    recs = records(doc)
    assert recs[("itcast.cn", "A")]["name"] == "@"
    assert recs[("_webha-owner.itcast.cn", "TXT")]["name"] == "_webha-owner"


def test_output_is_deterministic_and_a_vip_change_changes_only_the_vip_records():
    a = dns_records(config(reverse=True), "webha", "dev")
    assert a == dns_records(config(reverse=True), "webha", "dev")
    raw = read_stack_values(ROOT / "stacks" / "Pulumi.dev.yaml")
    secrets = secrets_for(raw)  # the dev stack carries no VRRP password
    raw.update(secrets)
    raw["vrrp"]["vip"] = "10.1.1.200"
    raw["dns"]["reverse"] = True
    b = dns_records(parse_config(raw, set(secrets)), "webha", "dev")
    changed = [r for r in (b["zones"][0]["records"]) if r not in a["zones"][0]["records"]]
    assert [(r["fqdn"], r["values"]) for r in changed] == [("shop.itcast.cn", ["10.1.1.200"]),
                                                          ("www.shop.itcast.cn", ["10.1.1.200"])]


# --------------------------------------------------------------------------- the reader refuses
def _doc():
    return dns_records(config(reverse=True), "webha", "dev")


BAD_DOCS = [
    ("other-version", lambda d: d.update(schema="webha.dns/v2"), "schema: 'webha.dns/v2' is not webha.dns/v1"),
    ("extra-field", lambda d: d.update(comment="x"), "Additional properties"),
    ("ttl-zero", lambda d: d["zones"][0]["records"][0].update(ttl=0), "zones/0/records/0/ttl"),
    ("ttl-text", lambda d: d["zones"][0]["records"][0].update(ttl="60"), "zones/0/records/0/ttl"),
    ("a-not-ip", lambda d: d["zones"][0]["records"][0].update(values=["shop.itcast.cn"]), "zones/0/records/0/values/0"),
    ("a-octet-999", lambda d: d["zones"][0]["records"][0].update(values=["10.1.1.999"]), "zones/0/records/0/values/0"),
    ("name-with-space", lambda d: d["zones"][0]["records"][0].update(name="a b"), "zones/0/records/0/name"),
    ("fqdn-trailing-dot", lambda d: d["zones"][0]["records"][0].update(fqdn="mysql01.itcast.cn."),
     "zones/0/records/0/fqdn"),
    ("fqdn-cjk", lambda d: d["zones"][0]["records"][0].update(fqdn="网站.itcast.cn"), "zones/0/records/0/fqdn"),
    ("type-cname", lambda d: d["zones"][0]["records"][0].update(type="CNAME"), "zones/0/records/0/type"),
    ("txt-foreign-heritage", lambda d: d["zones"][0]["records"][1].update(values=["heritage=external-dns,x"]),
     "zones/0/records/1/values/0"),
    ("owner-with-comma", lambda d: d.update(owner="a,b"), "owner"),
    ("no-zones", lambda d: d.update(zones=[]), "zones"),
    ("ptr-two-targets", lambda d: d["zones"][1]["records"][0].update(values=["a.itcast.cn", "b.itcast.cn"]),
     "zones/1/records/0/values"),
]


@pytest.mark.parametrize("case", BAD_DOCS, ids=[c[0] for c in BAD_DOCS])
def test_reader_refuses_what_is_not_webha_dns_v1(case):
    _, mutate, where = case
    doc = copy.deepcopy(_doc())
    mutate(doc)
    with pytest.raises(ContractError) as exc:
        validate(doc)
    assert where in str(exc.value), str(exc.value)


def test_reader_takes_stack_output_json_or_the_document():
    doc = _doc()
    assert from_stack_outputs(json.dumps({"vip": "10.1.1.100", "dns": doc})) == doc
    assert from_stack_outputs(json.dumps(doc)) == doc
    with pytest.raises(ContractError, match="no `dns` output"):
        from_stack_outputs(json.dumps({"vip": "10.1.1.100"}))
    with pytest.raises(ContractError, match="not JSON"):
        from_stack_outputs("vip: 1")


def _cli(*args, stdin):
    return subprocess.run([sys.executable, "-m", "webha", "dns", *args], cwd=ROOT, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_cli_fails_naming_the_problem_and_writes_nothing(tmp_path):
    res = _cli("--format", "octodns", "--output-dir", str(tmp_path / "out"), stdin='{"vip": "10.1.1.100"}')
    assert res.returncode == 2 and "webha dns: the stack has no `dns` output" in res.stderr
    assert not (tmp_path / "out").exists()
    bad = copy.deepcopy(_doc())
    bad["zones"][0]["records"][0]["ttl"] = -1
    res = _cli("--format", "bind", stdin=json.dumps({"dns": bad}))
    assert res.returncode == 2 and "zones/0/records/0/ttl" in res.stderr and res.stdout == ""
    res = _cli("--format", "bind", "--zone", "example.com", stdin=json.dumps({"dns": _doc()}))
    assert res.returncode == 2 and "--zone example.com: not in the document" in res.stderr


def test_cli_output_dir_writes_one_file_per_zone(tmp_path):
    res = _cli("--format", "octodns", "--output-dir", str(tmp_path), stdin=json.dumps({"dns": _doc()}))
    assert res.returncode == 0, res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["1.1.10.in-addr.arpa.yaml", "itcast.cn.yaml"]
    assert res.stdout.split() == [str(tmp_path / "itcast.cn.yaml"), str(tmp_path / "1.1.10.in-addr.arpa.yaml")]
