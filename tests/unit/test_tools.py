"""Operator tools without a lab: fake executors answer, the verdicts must not turn unknown into ok."""

import subprocess

import pytest

from webha.drill import Cluster, DrillResult
from webha.executor import ExecError, HostLayout
from webha.splitbrain import clock_finding, detect
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


def healthy(ip, state, vip=False, **extra):
    out = ADDR.format(ip=ip) + (ADDR.format(ip="10.1.1.100") if vip else "")
    return {"ip -4 -o addr": (0, out), "vrrp.state": (0, state + "\n"), "nft": (0, '{"nftables": []}'),
            "date": (0, "%.3f" % __import__("time").time()), **extra}


def test_holders_raise_on_an_unreadable_node():
    c = cluster({"web01": healthy("10.1.1.11", "MASTER", vip=True),
                 "web02": {"ip -4 -o addr": (None, "")}})
    with pytest.raises(VipUnreadable, match="web02") as exc:
        holders(c.hosts, "10.1.1.100", "eth0")
    assert exc.value.partial == ["web01"]


@pytest.mark.parametrize("nft", [(1, ""), (0, "not json"), (3, "")])
def test_unreadable_ruleset_is_a_failed_finding(nft):
    c = cluster({"web01": healthy("10.1.1.11", "MASTER", vip=True, nft=nft),
                 "web02": healthy("10.1.1.13", "BACKUP")})
    report = detect(c, stats=False)
    fw = [f for f in report.findings if f.check == "firewall" and f.detail.startswith("web01")]
    assert fw and not fw[0].ok and "cannot read the ruleset" in fw[0].detail, report.text()


def test_missing_state_file_is_not_ok():
    c = cluster({"web01": healthy("10.1.1.11", "MASTER", vip=True),
                 "web02": {**healthy("10.1.1.13", "BACKUP"), "vrrp.state": (1, "")}})
    state = next(f for f in detect(c, stats=False).findings if f.check == "state")
    assert not state.ok and "web02=unknown" in state.detail


@pytest.mark.parametrize("skew,verdict", [(0.1, "within"), (0.989, "OVER the limit")])
def test_clock_line_says_what_is_compared_and_matches_the_verdict(skew, verdict):
    import time

    f = clock_finding("web01", Fake("web01", {"date": (0, "%.6f" % (time.time() + skew))}), 0.5)
    assert f.ok == (verdict == "within") and verdict in f.detail and "limit |difference| <= 0.5s" in f.detail


def test_vrrp_block_without_a_second_holder_fails_the_drill():
    res = DrillResult("vrrp-block", "", "web01", "web01", 10.0, [(9.0, ("web01",))], [], [], ["web01"])
    assert res.failures() == ["no second VIP holder appeared while VRRP was blocked (expected split brain)"]
    moved = DrillResult("nginx-kill", "", "web01", "web02", 10.0, [(9.0, ("web01",))], [], [], ["web01"])
    assert "the VIP never reached web02" in moved.failures()
