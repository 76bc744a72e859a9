"""Failover scenarios against the real keepalived + nginx in namespaces.

Every scenario ends by asserting exactly one VIP holder and naming it.
"""

from __future__ import annotations

import time

import pytest

from webha.drill import LabCluster
from webha.testbed.lab import ConfigRejected
from webha.splitbrain import detect

pytestmark = pytest.mark.lab


def one_holder(lab, name: str, settle: float = 0.0, timeout: float = 10) -> None:
    """Exactly one VIP holder, ``name``, answering HTTP through the VIP as itself."""
    lab.wait(lambda: lab.vip_holders() == [name], timeout, f"VIP on {name} only")
    if settle:
        time.sleep(settle)
    assert lab.vip_holders() == [name]
    # Clients follow the holder's gratuitous ARPs; where a holder sent none (a split brain healed
    # by the peer stepping down), a client's stale neighbour entry re-resolves within seconds.
    lab.wait(lambda: lab.client_get() == (f"ok {name}", name), 10,
             f"HTTP through the VIP answered by {name}")


def settle_time(lab) -> float:
    """Long enough for any (wrong) takeover to happen: 3 adverts + skew + a margin."""
    return 4 * float(lab.cfg.vrrp.advert_int) + 0.5


def test_1_start_web01_holds_vip_with_dev_stack_as_is(make_lab):
    lab = make_lab(fast=False)  # stacks/Pulumi.dev.yaml: VRRPv3, advert_int 0.2, no auth, nopreempt
    one_holder(lab, "web01", settle=0.5)
    res = lab.hosts["client"].run(
        ["curl", "-sf", "--max-time", "2", f"http://{lab.cfg.vrrp.vip}/"], timeout=5
    )
    assert "shop on web01" in res.stdout
    # One PID namespace per host: each host sees exactly its own nginx master and keepalived.
    for node in ("web01", "web02"):
        ps = lab.hosts[node].run(["ps", "-eo", "comm="], check=True).stdout.split()
        assert ps.count("keepalived") == 2, ps  # parent + VRRP child
        assert ps.count("nginx") == 2, ps  # master + 1 worker
        assert lab.hosts[node].run(["hostname"]).stdout.strip() == node
    # keepalived runs with the rendered config untouched except for paths.
    conf = open(lab.layouts["web01"].keepalived_conf).read()
    assert "vrrp_version 3" in conf and "advert_int 0.1\n" in conf and "nopreempt" in conf
    assert "auth_type" not in conf and "vrrp_no_swap" in conf and "track_file" in conf
    assert "vrrp_rt_priority 50\n" in conf and "vrrp_rlimit_rttime " in conf


def test_2_nginx_killed_on_web01_moves_vip_to_web02(make_lab):
    lab = make_lab()
    one_holder(lab, "web01")
    LabCluster(lab).kill_nginx("web01")
    one_holder(lab, "web02", settle=settle_time(lab))


def test_3_keepalived_sigkill_on_web01_moves_vip_to_web02(make_lab):
    lab = make_lab()
    one_holder(lab, "web01")
    LabCluster(lab).kill_keepalived("web01", "KILL")
    lab.wait(lambda: "web02" in lab.vip_holders(), 5, "web02 to take the VIP")
    assert lab.client_get() == ("ok web02", "web02")  # web02's gratuitous ARP won the client
    # A SIGKILLed keepalived cannot remove its VIP: the address stays on web01's eth0 (a node
    # that really died takes it along). Restarting keepalived there removes it at startup.
    assert lab.vip_holders() == ["web01", "web02"]
    lab.start_keepalived("web01")
    one_holder(lab, "web02", settle=settle_time(lab))


def test_4_link_down_on_web01_then_back(make_lab):
    lab = make_lab()
    one_holder(lab, "web01")
    lab.link("web01", False)
    one_holder(lab, "web02")
    lab.link("web01", True)
    one_holder(lab, "web02", settle=settle_time(lab))  # nopreempt: web02 keeps it


def test_5a_nonpreemptive_web02_keeps_vip_when_web01_recovers(make_lab):
    lab = make_lab()
    one_holder(lab, "web01")
    LabCluster(lab).kill_nginx("web01")
    one_holder(lab, "web02")
    lab.start_nginx("web01")
    lab.wait(lambda: _state(lab, "web01") == "BACKUP", 10, "web01 back to BACKUP")
    one_holder(lab, "web02", settle=settle_time(lab))


def test_5b_preemptive_web01_takes_vip_back(make_lab):
    lab = make_lab({"vrrp": {"preempt": True}})
    assert "state MASTER" in open(lab.layouts["web01"].keepalived_conf).read()
    one_holder(lab, "web01")
    LabCluster(lab).kill_nginx("web01")
    one_holder(lab, "web02")
    lab.start_nginx("web01")
    one_holder(lab, "web01", timeout=15, settle=settle_time(lab))


@pytest.mark.parametrize("unicast", [True, False], ids=["unicast", "multicast"])
def test_6_unicast_and_multicast(make_lab, unicast):
    lab = make_lab({"vrrp": {"unicast": unicast}})
    conf = open(lab.layouts["web01"].keepalived_conf).read()
    assert ("unicast_peer" in conf) is unicast
    one_holder(lab, "web01", settle=settle_time(lab))  # adverts reach web02: it stays BACKUP
    assert _state(lab, "web02") == "BACKUP"
    LabCluster(lab).kill_keepalived("web01", "TERM")  # clean stop: priority-0 advert
    one_holder(lab, "web02", settle=settle_time(lab))


def test_7_vrrp_blocked_by_nftables_is_reported_as_split_brain(make_lab):
    lab = make_lab()
    one_holder(lab, "web01")
    cluster = LabCluster(lab)
    for node in lab.web_names:
        cluster.block_vrrp(node)
    lab.wait(lambda: lab.vip_holders() == ["web01", "web02"], 10, "both nodes to take the VIP")
    report = detect(cluster)
    text = report.text()
    assert report.split_brain, text
    assert report.holders == ["web01", "web02"]
    assert "SPLIT BRAIN" in text and "web01, web02" in text
    fw = [f for f in report.problems if f.check == "firewall"]
    assert {f.detail.split(":")[0] for f in fw} == {"web01", "web02"}, text
    assert all("VRRP (protocol 112)" in f.detail for f in fw)
    assert [f for f in report.problems if f.check == "adverts"], text  # nobody hears the other
    assert not [f for f in report.problems if f.check in ("clock", "config")], text
    for node in lab.web_names:
        cluster.unblock_vrrp(node)
    one_holder(lab, "web01", settle=settle_time(lab))  # the higher priority master wins
    healthy = detect(cluster)
    assert not healthy.split_brain and healthy.holders == ["web01"], healthy.text()
    assert not healthy.problems, healthy.text()


def test_8a_config_rejected_by_keepalived_t_is_never_started(make_lab):
    from components.render import render
    from components.topology import keepalived_context
    from tests.lab.conftest import stack

    lab = make_lab(daemons=False)
    # A valid stack config, but for an interface these hosts do not have.
    other = stack({"network": {"interface": "ens3"}})
    bad = keepalived_context(other, "web01", paths=lab.paths("web01"))
    path = f"{lab.host_dir('web01')}/keepalived/bad.conf"
    with open(path, "w") as fh:
        fh.write(render("keepalived/keepalived.conf.j2", **bad))
    with pytest.raises(ConfigRejected, match="keepalived -t rejected"):
        lab.start_keepalived("web01", conf=path)
    ps = lab.hosts["web01"].run(["ps", "-eo", "comm="]).stdout.split()
    assert "keepalived" not in ps
    assert lab.vip_holders() == []
    # The good config of the same host passes and runs.
    lab.start_nginx("web01")
    lab.start_keepalived("web01")
    one_holder(lab, "web01", timeout=10)


def test_8b_hung_nginx_and_hanging_check_do_not_wedge_failover(make_lab):
    lab = make_lab()
    one_holder(lab, "web01")
    # Freeze nginx on web01: the check's curl hangs, keepalived's script timeout ends it.
    pid = lab.paths("web01").nginx_pid
    freeze = 'm=$(cat "$1"); kill -%s $(pgrep -P "$m") "$m"'
    lab.hosts["web01"].run(["sh", "-c", freeze % "STOP", "sh", pid], check=True)
    t0 = time.monotonic()
    lab.wait(lambda: lab.vip_holders() == ["web02"], 8, "web02 to take over from a hung web01")
    assert time.monotonic() - t0 < 4
    # keepalived on web01 stays responsive with a hanging check: no pile-up of check processes.
    ps = lab.hosts["web01"].run(["ps", "-eo", "comm="]).stdout.split()
    assert ps.count("check_nginx.sh") + ps.count("curl") <= 2, ps
    lab.hosts["web01"].run(["sh", "-c", freeze % "CONT", "sh", pid], check=True)
    lab.wait(lambda: _state(lab, "web01") == "BACKUP", 10, "web01 back to BACKUP")
    # A check script that never returns on the backup puts it in FAULT, it does not hang it.
    script = f"{lab.paths('web02').script_dir}/check_nginx.sh"
    LabCluster(lab).kill_keepalived("web02", "TERM")
    lab.wait(lambda: not lab.keepalived_running("web02"), 10, "keepalived on web02 to stop")
    with open(script, "w") as fh:
        fh.write("#!/bin/sh\nexec sleep 1000\n")
    lab.start_keepalived("web02")
    one_holder(lab, "web01", timeout=10)
    lab.wait(lambda: _state(lab, "web02") == "FAULT", 10, "web02 FAULT from its hanging check")
    one_holder(lab, "web01", settle=settle_time(lab))


def _state(lab, node: str) -> str:
    try:
        return open(f"{lab.paths(node).state_dir}/vrrp.state").read().strip()
    except OSError:
        return ""
