"""consumers/dns-octodns under Pulumi mocks: it reads the webha stack named in its config through
a StackReference and registers one local command that writes the zones from stdin."""

import json
import shlex

import pytest

from components.config import parse_config
from components.outputs import dns_records
from tests.conftest import ROOT
from tests.consumer_mocks import CONSUMER, run_consumer
from webha.stackfile import FAKE_SECRETS, read_stack_values

pytestmark = pytest.mark.unit


def dns_output(stack="local"):
    raw = read_stack_values(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    raw.update(FAKE_SECRETS)
    return dns_records(parse_config(raw, set(FAKE_SECRETS)), "webha", stack)


def test_reads_the_configured_stack_and_writes_through_the_exporter():
    doc = dns_output()
    mocks, reg = run_consumer(doc)
    ref = mocks.resources["pulumi:pulumi:StackReference"]
    assert ref.name == "organization/webha/local"
    argv = shlex.split(reg["create"])
    assert argv[1:] == ["-m", "webha", "dns", "--format", "octodns", "--output-dir", str(CONSUMER / "zones")]
    assert reg["dir"] == str(ROOT)
    assert json.loads(reg["stdin"]) == {"dns": doc}
    assert reg["files"] == [str(CONSUMER / "zones" / "itcast.cn.yaml")]
    assert shlex.split(reg["delete"]) == ["rm", "-f", "--", str(CONSUMER / "zones" / "itcast.cn.yaml")]


def test_a_vip_change_changes_only_the_stdin():
    _, a = run_consumer(dns_output())
    raw = read_stack_values(ROOT / "stacks" / "Pulumi.local.yaml")
    raw.update(FAKE_SECRETS)
    raw["vrrp"]["vip"] = "10.1.1.200"
    _, b = run_consumer(dns_records(parse_config(raw, set(FAKE_SECRETS)), "webha", "local"))
    assert (a["create"], a["delete"], a["files"]) == (b["create"], b["delete"], b["files"])
    assert a["stdin"] != b["stdin"]


def test_another_contract_version_fails_the_program():
    doc = dict(dns_output(), schema="webha.dns/v2")
    with pytest.raises(ValueError, match="schema: 'webha.dns/v2' is not webha.dns/v1"):
        run_consumer(doc)


def test_ttls_stay_integers_though_the_engine_hands_floats():
    """A StackReference gives every number as a float (what a real run showed: `ttl: 300.0` in
    the zone file); the consumer hands the exporter integers."""
    doc = dns_output()
    as_engine = json.loads(json.dumps(doc), parse_int=float)
    _, reg = run_consumer(as_engine)
    ttls = [r["ttl"] for z in json.loads(reg["stdin"])["dns"]["zones"] for r in z["records"]]
    assert ttls and all(type(t) is int for t in ttls), ttls
    assert json.loads(reg["stdin"]) == {"dns": doc}
