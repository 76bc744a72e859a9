"""N web nodes: one MASTER, N-1 backups. Three web nodes in the namespace lab through the
failover scenarios: each fault moves the VIP to the best remaining node (priority order), never
to two at once, and a recovered node never takes it back (nopreempt)."""

from __future__ import annotations

import pytest

from tests.lab.test_failover import one_holder, settle_time
from webha.drill import LabCluster, run_drill
from webha.stackfile import read_stack_values
from tests.conftest import ROOT

pytestmark = pytest.mark.lab

WEB03 = {"name": "web03", "fqdn": "web03.itcast.cn", "ip": "10.1.1.14", "role": "web", "priority": 50}


def three() -> dict:
    return {"hosts": read_stack_values(ROOT / "stacks" / "Pulumi.dev.yaml")["hosts"] + [WEB03]}


def test_three_nodes_one_master_two_backups_then_cascade(make_lab):
    lab = make_lab(three())
    assert lab.web_names == ["web01", "web02", "web03"]
    one_holder(lab, "web01", settle=settle_time(lab))
    # Every node hears the master, none but web01 claims it; the unicast peers are the other two.
    conf = open(lab.layouts["web03"].keepalived_conf).read()
    assert "10.1.1.11" in conf and "10.1.1.13" in conf
    cluster = LabCluster(lab)
    cluster.kill_nginx("web01")
    one_holder(lab, "web02", settle=settle_time(lab))  # the best backup, not web03
    lab.link("web02", False)
    one_holder(lab, "web03", settle=settle_time(lab))  # the last one left
    lab.start_nginx("web01")
    lab.link("web02", True)
    one_holder(lab, "web03", settle=settle_time(lab))  # nopreempt: the recovered nodes stay backups


@pytest.mark.parametrize("scenario", ["nginx-kill", "keepalived-stop", "link-down"])
def test_three_node_drills(make_lab, scenario):
    lab = make_lab(three())
    one_holder(lab, "web01")
    res = run_drill(LabCluster(lab), scenario, observe=2.0)
    assert res.failures() == [], res.text()
    assert res.expected == "web02" and res.after == ["web02"], res.text()
    assert len(res.max_holders) == 1, res.text()
    # the drill leaves one holder; fault the new one and the third node takes over
    res2 = run_drill(LabCluster(lab), scenario, observe=2.0)
    assert res2.failures() == [] and res2.before == "web02", res2.text()
    assert res2.expected == "web01" and res2.after == ["web01"], res2.text()
