"""The nginx crash detector that works in the lab and on the VMs (issue 13): nginx's service
manager writes its exit into a file keepalived tracks (vrrp_track_file, read on inotify), and
keepalived's VRRP process on real-time scheduling with its memory locked.

On the VMs the writer is nginx.service's ExecStopPost (templates/keepalived/nginx-override.conf.j2);
in the lab it is the stand-in for that unit (templates/lab/nginx-service.sh.j2), running the same
nginx-exit.sh. No timing is asserted: the check script runs once a minute here, so a VIP that
moves within seconds moved because of the tracked file.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from components.topology import RTTIME_HARD_US, RTTIME_SOFT_US
from tests.lab.test_failover import one_holder
from webha.drill import LabCluster

pytestmark = pytest.mark.lab

# The check script (the only other detector in the lab) every 60 s, after a first success.
SLOW_CHECK = {"vrrp": {"healthCheck": {"interval": 60, "timeout": 2, "fall": 1, "rise": 1}}}


def exit_file(lab, node: str) -> Path:
    return Path(lab.paths(node).state_dir) / "nginx.exit"


def test_nginx_exit_moves_the_vip_without_the_check_script(make_lab):
    lab = make_lab(SLOW_CHECK)
    one_holder(lab, "web01")
    assert exit_file(lab, "web01").read_text().strip() == "0"  # ExecStartPost: running
    LabCluster(lab).kill_nginx("web01")
    # Far inside the check's 60 s: only the tracked file can have moved it.
    one_holder(lab, "web02", timeout=10)
    assert exit_file(lab, "web01").read_text().strip() == "1"  # ExecStopPost: exited
    assert "tracked file nginx_exit now FAULT state" in lab.log("web01")
    lab.start_nginx("web01")
    assert exit_file(lab, "web01").read_text().strip() == "0"
    lab.wait(lambda: "nginx_exit leaving FAULT state" in lab.log("web01"), 10,
             "web01 to leave FAULT once nginx runs again")
    one_holder(lab, "web02", settle=1.0)  # nopreempt: web02 keeps it


def test_without_the_tracked_file_the_slow_check_alone_does_not_move_it(make_lab):
    """The control: the same lab with trackFile off keeps the VIP on web01 (nginx dead) for the
    whole check interval - what the test above would see if the tracked file did nothing."""
    lab = make_lab({**SLOW_CHECK, "vrrp": {**SLOW_CHECK["vrrp"],
                                           "healthCheck": {**SLOW_CHECK["vrrp"]["healthCheck"],
                                                           "trackFile": False}}})
    one_holder(lab, "web01")
    assert "vrrp_track_file" not in open(lab.layouts["web01"].keepalived_conf).read()
    LabCluster(lab).kill_nginx("web01")
    time.sleep(5.0)
    assert lab.vip_holders() == ["web01"]  # nginx is dead, nobody noticed yet
    assert "FAULT" not in lab.log("web01")


@pytest.mark.parametrize("realtime", [True, False], ids=["realtime", "normal"])
def test_vrrp_process_scheduling_and_locked_memory(make_lab, realtime):
    """vrrp_no_swap (always) and vrrp_rt_priority (``realtime``) reach the kernel: locked memory
    (VmLck) and SCHED_RR."""
    lab = make_lab({"vrrp": {"realtime": realtime}})
    lab.wait_single_holder(10)
    for node in lab.web_names:
        pid = lab.vrrp_pid(node)
        policy = lab.hosts[node].run(["chrt", "-p", pid], check=True).stdout
        status = lab.hosts[node].run(["cat", f"/proc/{pid}/status"], check=True).stdout
        locked = int(next(l.split()[1] for l in status.splitlines() if l.startswith("VmLck:")))
        assert locked > 0, status
        if realtime:
            assert "SCHED_RR" in policy and "priority: 50" in policy, policy
        else:
            assert "SCHED_OTHER" in policy, policy


def _rttime(lab, node: str, pid: str) -> tuple[str, str]:
    """RLIMIT_RTTIME (soft, hard) of a process, as /proc shows it ("unlimited" or us)."""
    limits = lab.hosts[node].run(["cat", f"/proc/{pid}/limits"], check=True).stdout
    line = next(l for l in limits.splitlines() if l.startswith("Max realtime timeout"))
    soft, hard = line.split()[3:5]
    return soft, hard


@pytest.mark.parametrize("realtime", [True, False], ids=["realtime", "normal"])
def test_reload_keeps_the_holder_and_the_vrrp_process(make_lab, realtime):
    """`pulumi up` reloads keepalived (SIGHUP) on a config change. keepalived resets its own
    RLIMIT_RTTIME on a reload to {0, 0} and, without CAP_SYS_RESOURCE, cannot raise it again:
    the kernel then SIGKILLs the SCHED_RR VRRP process the first time a tick finds it running,
    the new one starts as BACKUP and the VIP moves. So the limit is set by keepalived's service
    manager and keepalived cannot touch it (systemd-override.conf.j2). Five reloads change
    nothing: same VRRP process, same holder, the same limit, still SCHED_RR."""
    lab = make_lab({"vrrp": {"realtime": realtime}}, fast=False)  # the dev stack, 0.2 s adverts
    one_holder(lab, "web01", settle=1.0)
    before = {n: lab.vrrp_pid(n) for n in lab.web_names}
    limit = {n: _rttime(lab, n, pid) for n, pid in before.items()}
    for _ in range(5):
        for node in lab.web_names:
            lab.reload_keepalived(node)
        time.sleep(1.0)
    assert {n: lab.vrrp_pid(n) for n in lab.web_names} == before
    assert lab.vip_holders() == ["web01"]
    assert "rlimit_rttime been exceeded" not in lab.log("web01") + lab.log("web02")
    for node, pid in before.items():
        if realtime:  # the drop-in's limit; a normal keepalived's VRRP process is not real-time
            assert limit[node] == (str(RTTIME_SOFT_US), str(RTTIME_HARD_US)), limit
        assert _rttime(lab, node, pid) == limit[node], "a reload changed RLIMIT_RTTIME"
        policy = lab.hosts[node].run(["chrt", "-p", pid], check=True).stdout
        assert ("SCHED_RR" in policy) is realtime, policy
