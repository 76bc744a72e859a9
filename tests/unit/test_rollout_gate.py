"""The rollout gate's decision (webha/rollout_gate.py): from one look at every web node, what must
stop before a changed VRRP instance is applied, or why it must not be applied yet."""

import pytest

from webha.rollout_gate import GateError, NodeView, Plan, plan

pytestmark = pytest.mark.unit


def v(name, active, change, holds):
    return NodeView(name, active, change, holds)


def test_no_instance_change_nothing_to_gate():
    # two nodes running is the normal state: without a change marker the gate does nothing
    assert plan([v("web01", True, False, True), v("web02", True, False, False)]) == Plan(None, ())


def test_the_race_ci_hit_stands_down_the_node_running_next_to_the_holder():
    """Each quiesce looked at a different moment: both kept running. The gate stops the non-holder."""
    p = plan([v("web01", True, True, False), v("web02", True, True, True)])
    assert p == Plan("web02", ("web01",)) and not p.done


def test_holder_alone_may_take_the_change():
    p = plan([v("web01", True, True, True), v("web02", False, True, False)])
    assert p == Plan("web01", ()) and p.done


def test_three_nodes_all_but_the_holder_stand_down():
    p = plan([v("web01", True, True, False), v("web02", True, True, True), v("web03", True, False, False)])
    assert p.stand_down == ("web01", "web03")


@pytest.mark.parametrize("views,words", [
    ([v("web01", True, True, True), v("web02", True, True, True)], ["two nodes hold", "web01", "web02"]),
    ([v("web01", True, True, False), v("web02", False, True, False)], ["no node holds", "web01"]),
    ([v("web01", False, True, False), v("web02", False, True, False)], ["no node holds", "none"]),
    ([v("web01", False, True, True), v("web02", True, True, False)], ["web01 holds the VIP but its keepalived is stopped"]),
], ids=["split-brain", "no-holder", "nothing-running", "holder-stopped"])
def test_unsafe_tiers_are_refused_naming_the_nodes(views, words):
    with pytest.raises(GateError) as err:
        plan(views)
    assert all(w in str(err.value) for w in words), str(err.value)
