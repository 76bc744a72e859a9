"""consumers/dns-octodns's command, as the program registers it (Pulumi mocks for the graph
only), run for real: it writes a zone octoDNS loads, and a VIP change in the stack config is
exactly one changed record in octoDNS's plan between its two outputs."""

import json
import shlex
import subprocess

import pytest

from tests.consumer_mocks import run_consumer
from tests.dns.conftest import contract_records, load_octodns, octodns_plan, outputs_json
from tests.dns.test_octodns import as_tuples, describe

pytestmark = pytest.mark.dns


def run_registered(reg):
    res = subprocess.run(shlex.split(reg["create"]), cwd=reg["dir"], input=reg["stdin"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_consumer_output_loads_in_octodns_and_a_vip_change_is_one_record(tmp_path):
    before = json.loads(outputs_json("local"))["dns"]
    after = json.loads(outputs_json("local", vrrp={"vip": "10.1.1.200"}))["dns"]
    _, reg_before = run_consumer(before, str(tmp_path / "before"))
    _, reg_after = run_consumer(after, str(tmp_path / "after"))
    run_registered(reg_before)
    run_registered(reg_after)
    zone = load_octodns(tmp_path / "before", "itcast.cn")
    assert as_tuples(zone) == contract_records(json.dumps({"dns": before}))
    changes = octodns_plan(tmp_path / "before", tmp_path / "after", ["itcast.cn"])
    assert describe(changes) == [("Update", "shop.itcast.cn.", "A", ["10.1.1.100"], ["10.1.1.200"])]
    # destroy: the registered delete removes exactly the files it wrote
    subprocess.run(shlex.split(reg_before["delete"]), check=True, timeout=30)
    assert list((tmp_path / "before").iterdir()) == []
