"""Operator tools without a lab: fake executors answer, the verdicts must not turn unknown into ok."""

import subprocess
import time

import pytest

from webha.drill import Cluster, DrillResult
from webha.executor import ExecError, HostLayout
from webha.splitbrain import Gathered, clock_finding, detect_from, parse_gathered
from webha.stackfile import load_stack_file
from webha.vip import VipUnreadable, holders
from tests.conftest import ROOT

pytestmark = pytest.mark.unit
ADDR = "2: eth0    inet {ip}/24 brd 10.1.1.255 scope global eth0\\       valid_lft forever\n"


class Fake:
    """Answers by the command's first words; anything else exits 1."""

    def __init__(self, name, answers):
        self.name, self.answers = name, answers

    def run(self, argv, *, timeout=10, check=False, input=None):
        for key, (rc, out) in self.answers.items():
            if key in " ".join(argv):
                if rc is None:
                    raise ExecError(f"[{self.name}] unreachable")
                return subprocess.CompletedProcess(argv, rc, out, "" if rc == 0 else "boom")
        return subprocess.CompletedProcess(argv, 1, "", "no such file")


def cluster(answers):
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.dev.yaml")
    return Cluster(cfg, {n: Fake(n, a) for n, a in answers.items()},
                   {n: HostLayout() for n in answers})


def gathered(node, ip, vrrp_state, vip=False, **sections):
    """What detect-gather.sh returns for a healthy node; ``sections`` replace (rc, text) pairs."""
    out = ADDR.format(ip=ip) + (ADDR.format(ip="10.1.1.100") if vip else "")
    now = time.time()
    secs = {"addr": (0, out), "state": (0, vrrp_state + "\n"), "nft": (0, '{"nftables": []}'),
            "conf": (1, ""), "conf.err": (0, "cat: no such file"), **sections}
    return Gathered(node, {k: v for k, v in secs.items() if v is not None}, now, now - 0.001, now + 0.001)


def test_holders_raise_on_an_unreadable_node():
    c = cluster({"web01": {"ip -4 -o addr": (0, ADDR.format(ip="10.1.1.100"))},
                 "web02": {"ip -4 -o addr": (None, "")}})
    with pytest.raises(VipUnreadable, match="web02") as exc:
        holders(c.hosts, "10.1.1.100", "eth0")
    assert exc.value.partial == ["web01"]


def test_an_unreadable_node_in_the_gathered_output_is_unknown_not_a_non_holder():
    c = cluster({"web01": {}, "web02": {}})
    g = {"web01": gathered("web01", "10.1.1.11", "MASTER", vip=True),
         "web02": Gathered("web02", error="ssh: connect to host 10.1.1.13 port 22: No route to host")}
    report = detect_from(c, g, stats=False)
    assert report.unknown == ["web02"] and report.holders == ["web01"], report.text()
    assert report.text().startswith("UNKNOWN"), report.text()
    assert any(f.check == "session" and "No route to host" in f.detail for f in report.problems)


@pytest.mark.parametrize("nft", [(1, ""), (0, "not json"), (3, "")])
def test_unreadable_ruleset_is_a_failed_finding(nft):
    c = cluster({"web01": {}, "web02": {}})
    g = {"web01": gathered("web01", "10.1.1.11", "MASTER", vip=True, nft=nft),
         "web02": gathered("web02", "10.1.1.13", "BACKUP")}
    report = detect_from(c, g, stats=False)
    fw = [f for f in report.findings if f.check == "firewall" and f.detail.startswith("web01")]
    assert fw and not fw[0].ok and "cannot read the ruleset" in fw[0].detail, report.text()


def test_missing_state_file_is_not_ok():
    c = cluster({"web01": {}, "web02": {}})
    g = {"web01": gathered("web01", "10.1.1.11", "MASTER", vip=True),
         "web02": gathered("web02", "10.1.1.13", "BACKUP", state=(1, ""))}
    state = next(f for f in detect_from(c, g, stats=False).findings if f.check == "state")
    assert not state.ok and "web02=unknown" in state.detail


@pytest.mark.parametrize("skew,verdict", [(0.1, "within"), (0.989, "OVER the limit"), (0.45, "cannot tell")])
def test_clock_line_says_what_is_compared_and_matches_the_verdict(skew, verdict):
    now = time.time()
    f = clock_finding("web01", now + skew, now - 0.1, now + 0.1, 0.5)
    assert f.ok == (verdict == "within") and verdict in f.detail and "limit |difference| <= 0.5s" in f.detail


def test_gathered_sections_parse_with_status_and_stderr():
    lines = ["@@webha begin addr\n", "2: eth0 inet 10.1.1.11/24\n", "@@webha end addr 0\n",
             "@@webha begin nft\n", "@@webha end nft 3\n",
             "@@webha begin conf\n", "@@webha end conf 1\n",
             "@@webha begin conf.err\n", "cat: /etc/keepalived/keepalived.conf: No such file\n",
             "@@webha end conf.err 0\n"]
    g = Gathered("web01", parse_gathered("web01", lines))
    assert g.get("addr") == (0, "2: eth0 inet 10.1.1.11/24\n", "")
    assert g.get("nft")[0] == 3
    assert g.get("conf") == (1, "", "cat: /etc/keepalived/keepalived.conf: No such file\n")
    assert g.get("stats1")[0] is None  # never ran: not "0 adverts"


def test_vrrp_block_without_a_second_holder_fails_the_drill():
    res = DrillResult("vrrp-block", "", "web01", "web01", 10.0, [(9.0, ("web01",))], [], [], ["web01"])
    assert res.failures() == ["no second VIP holder appeared while VRRP was blocked (expected split brain)"]
    moved = DrillResult("nginx-kill", "", "web01", "web02", 10.0, [(9.0, ("web01",))], [], [], ["web01"])
    assert "the VIP never reached web02" in moved.failures()
