"""The harness itself: cleanup, stale labs, missing tools, the detector's parsers, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from webha.testbed import lab as halab
from webha.testbed import netns
from webha.drill import LabCluster, run_drill
from webha.splitbrain import compare_configs, parse_stats, summarize_conf, vrrp_blocking_rules

pytestmark = pytest.mark.lab


def _netns() -> str:
    return subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, timeout=10).stdout


def test_lab_is_removed_even_when_the_body_raises():
    from tests.lab.conftest import stack

    lab = halab.HaLab(stack())
    with pytest.raises(RuntimeError, match="boom"):
        with lab:
            assert lab.prefix in _netns()
            raise RuntimeError("boom")
    assert lab.prefix not in _netns()
    assert not lab.dir.exists()
    assert not [p for p in lab.inits.values() if p.poll() is None]


def test_cleanup_stale_removes_a_dead_runs_lab_only():
    from tests.lab.conftest import stack

    dead = halab.HaLab(stack(), prefix="whl99999").start(daemons=False)
    alive = halab.HaLab(stack()).start(daemons=False)
    try:
        (dead.dir / "owner").write_text("999999999\n")  # no such pid: its run was killed
        gone = halab.cleanup_stale()
        assert "whl99999" in gone and alive.prefix not in gone
        assert "whl99999-" not in _netns() and alive.prefix in _netns()
        assert not dead.dir.exists()
    finally:
        dead.close()
        alive.close()


def test_missing_tool_fails_with_what_to_install(monkeypatch):
    monkeypatch.setattr(netns.shutil, "which", lambda t: None if t == "keepalived" else "/bin/x")
    with pytest.raises(netns.LabError, match="missing keepalived.*apt-get install"):
        netns.require_tools(*halab.LAB_TOOLS)


def test_lab_turns_off_track_process_and_says_why():
    from tests.lab.conftest import stack

    cfg = stack()
    assert cfg.vrrp.health_check.track_process  # the stack's default
    lab_cfg, notes = halab.lab_config(cfg)
    assert not lab_cfg.vrrp.health_check.track_process
    assert "proc connector" in notes[0]
    assert lab_cfg.model_copy(update={"vrrp": cfg.vrrp}) == cfg  # nothing else changed


def test_drill_reports_timeline_and_failed_requests(make_lab):
    lab = make_lab()
    lab.wait_single_holder(10)
    res = run_drill(LabCluster(lab), "nginx-kill", observe=2.0)
    text = res.text()
    assert res.before == "web01" and res.expected == "web02" and res.after == ["web02"], text
    assert res.http_moved_s is not None and 0 < res.http_moved_s < 2.0, text
    assert res.sent > 50 and res.flaps == 0, text
    assert "FAULT injected on web01" in text and "keepalived web02 -> MASTER" in text


def test_cli_drill_runs_and_cleans_up():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "webha", "drill", "--set", "vrrp.version=3", "--set", "vrrp.advertInt=0.25",
         "--set", "vrrp.authType=none", "--scenario", "link-down", "--observe", "1.5"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "== drill link-down" in out and "VIP holder(s) at the end: web02" in out
    # Its own lab only (prefix from its pid): concurrent runs' labs come and go meanwhile.
    prefix = netns.new_prefix(halab.PREFIX_BASE, pid=proc.pid)
    assert prefix + "-" not in _netns()
    assert not (halab.BASE_DIR / prefix).exists()


# ---------------------------------------------------------------- detector parsers (no root)
CONF = """
global_defs {
    router_id web01
    vrrp_version 3
}
vrrp_instance VI_51 {
    state BACKUP
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 0.25
    nopreempt
    unicast_src_ip 10.1.1.11
    unicast_peer {
        10.1.1.13
    }
    virtual_ipaddress {
        10.1.1.100/24 dev eth0
    }
}
"""


def test_config_comparison_names_the_mismatch():
    a = summarize_conf(CONF)
    b = summarize_conf(CONF.replace("web01", "web02").replace("priority 150", "priority 100")
                       .replace("10.1.1.11", "X").replace("10.1.1.13", "10.1.1.11").replace("X", "10.1.1.13"))
    ips = {"web01": "10.1.1.11", "web02": "10.1.1.13"}
    assert all(f.ok for f in compare_configs({"web01": a, "web02": b}, ips))
    c = summarize_conf(CONF.replace("virtual_router_id 51", "virtual_router_id 52"))
    bad = compare_configs({"web01": a, "web02": c}, ips)
    assert any("virtual_router_id differs" in f.detail for f in bad if not f.ok)
    assert any("unicast_peer lacks 10.1.1.11" in f.detail for f in bad if not f.ok)


def test_nft_rules_dropping_vrrp_are_found():
    ruleset = {"nftables": [
        {"chain": {"family": "inet", "table": "fw", "name": "input", "hook": "input", "policy": "accept"}},
        {"rule": {"family": "inet", "table": "fw", "chain": "input", "handle": 4, "expr": [
            {"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "protocol"}}, "right": "vrrp"}},
            {"counter": {"packets": 7, "bytes": 280}}, {"drop": None}]}},
        {"chain": {"family": "inet", "table": "fw2", "name": "in", "hook": "input", "policy": "drop"}},
    ]}
    found = vrrp_blocking_rules(json.dumps(ruleset))
    assert any("handle 4 drops VRRP" in f and "7 packets" in f for f in found)
    assert any("policy drop and no rule accepting VRRP" in f for f in found)


def test_stats_parser():
    text = "VRRP Instance: VI_51\n  Advertisements:\n    Received: 12\n    Sent: 3\n  Became master: 1\n"
    assert parse_stats(text) == {"VI_51": {"received": 12, "sent": 3}}


def test_ssh_executor_quotes_the_remote_command(tmp_path, monkeypatch):
    from webha.executor import SshExecutor

    fake = tmp_path / "ssh"
    fake.write_text('#!/bin/sh\nfor a in "$@"; do printf "%s\\n" "$a"; done\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    ex = SshExecutor("web01", "10.1.1.11", "/k/id_ed25519")
    res = ex.run(["sh", "-c", 'kill -0 "$(cat "$1")"', "sh", "/run/x y.pid"], check=True)
    args = res.stdout.splitlines()
    assert args[:4] == ["-i", "/k/id_ed25519", "-p", "22"] and "root@10.1.1.11" in args
    assert args[-2:] == ["--", "sh -c 'kill -0 \"$(cat \"$1\")\"' sh '/run/x y.pid'"]


def test_cleanup_stale_leaves_a_live_runs_lab_of_any_kind(tmp_path):
    """The migration lab used to clean up by name alone and killed the labs of concurrent runs."""
    import subprocess as sp

    other_run = sp.Popen(["sleep", "60"])  # stands for another pytest run that owns the lab
    lab = netns.Lab("whm99998", {"a": "10.9.9.2"}, "10.9.9.0/24", state_dir=tmp_path)
    try:
        lab.start()
        (tmp_path / "whm99998" / "owner").write_text(f"{other_run.pid}\n")
        # (a killed run's leftovers of the same kind may be removed too: only ours is asserted)
        assert "whm99998" not in netns.cleanup_stale("whm", state_dir=tmp_path)
        assert "whm99998-a" in _netns()
        other_run.kill()
        other_run.wait()
        assert "whm99998" in netns.cleanup_stale("whm", state_dir=tmp_path)
        assert "whm99998-" not in _netns()
    finally:
        other_run.kill()
        lab.close()


# ---------------------------------------------------------------- events and metrics
def _metric(text: str, name: str, **labels):
    """One sample of a Prometheus text exposition (the node exporter's /metrics); None if absent."""
    import re

    for line in text.splitlines():
        m = re.match(r"^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
        if got == {k: str(v) for k, v in labels.items()}:
            return float(m.group(3))
    return None


def test_metrics_scraped_after_a_failover_show_the_transition(make_lab):
    """The node exporter on each web node serves what the event reader wrote: state, VIP,
    transitions, check status, adverts; scraped from the client (where the libvirt host is)."""
    lab = make_lab()
    lab.wait_single_holder(10)
    lab.wait(lambda: (_metric(lab.metrics("web02"), "webha_vrrp_adverts_received_total", instance="VI_51") or 0) > 0,
             15, "web02's adverts-received counter")
    before = lab.metrics("web02")
    assert _metric(before, "webha_vrrp_state", instance="VI_51", state="BACKUP") == 1
    assert _metric(before, "webha_vip_held", vip="10.1.1.100", interface="eth0") == 0
    n0 = _metric(before, "webha_vrrp_transitions_total", instance="VI_51")
    LabCluster(lab).kill_nginx("web01")
    lab.wait(lambda: lab.vip_holders() == ["web02"], 10, "web02 to take the VIP")
    lab.wait(lambda: _metric(lab.metrics("web02"), "webha_vip_held", vip="10.1.1.100", interface="eth0") == 1,
             5, "web02's metrics to show the VIP")
    after = lab.metrics("web02")
    assert _metric(after, "webha_vrrp_transitions_total", instance="VI_51") == n0 + 1, after
    assert _metric(after, "webha_vrrp_state", instance="VI_51", state="MASTER") == 1
    assert _metric(after, "webha_vrrp_last_transition_timestamp_seconds", instance="VI_51") > time.time() - 30
    assert _metric(after, "webha_keepalived_up") == 1
    # web01: FAULT, and (within a counter read, 5 s) its check reported BAD.
    lab.wait(lambda: _metric(lab.metrics("web01"), "webha_check_up", script="check_nginx") == 0, 15,
             "web01's check_up to drop")
    assert _metric(lab.metrics("web01"), "webha_vrrp_state", instance="VI_51", state="FAULT") == 1


def test_event_log_is_ordered_and_names_the_vip(make_lab):
    """keepalived's transitions arrive through the FIFO in order, each with whether the node
    holds the VIP after it; a VIP keepalived did not remove (SIGKILL, no systemd in the lab) shows
    up as an address event when it goes."""
    lab = make_lab()
    lab.wait_single_holder(10)
    LabCluster(lab).kill_keepalived("web01", "KILL")
    lab.wait(lambda: "web02" in lab.vip_holders(), 5, "web02 to take the VIP")
    lab.start_keepalived("web01")  # removes the VIP it finds at startup
    lab.wait(lambda: lab.vip_holders() == ["web02"], 10, "web02 alone")

    def log(node):
        return [json.loads(l) for l in Path(lab.paths(node).events_log).read_text().splitlines()]

    for node in ("web01", "web02"):
        seqs = [e["seq"] for e in log(node)]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        walls = [e["wall"] for e in log(node)]
        assert walls == sorted(walls)
    w2 = [(e["state"], e["vip"]) for e in log("web02") if e["kind"] == "vrrp" and e.get("state")]
    assert w2[-1] == ("MASTER", True), w2
    # web01: keepalived seen dead while the VIP is still on its interface, then (keepalived
    # restarted and removed it) an event saying it no longer holds it.
    w1 = log("web01")
    down = max(i for i, e in enumerate(w1) if e["kind"] == "keepalived" and e["up"] is False)
    assert w1[down]["vip"] is True, [(e["kind"], e.get("state"), e.get("up"), e["vip"]) for e in w1]
    assert any(e["vip"] is False for e in w1[down + 1:]), w1


def test_drill_over_the_event_stream_agrees_with_the_client(make_lab):
    """The drill's holder timeline comes from the streamed event logs, the holder before the fault
    from a fresh read; the VIP's move and the client's first answer from the new holder agree
    within 0.2 s (the issue's acceptance bound)."""
    lab = make_lab()
    lab.wait_single_holder(10)
    res = run_drill(LabCluster(lab), "keepalived-stop", observe=2.0)
    text = res.text()
    assert res.before == "web01" and res.holders[0][1] == ("web01",), text
    assert res.vip_moved_s is not None and res.http_moved_s is not None, text
    assert abs(res.vip_moved_s - res.http_moved_s) <= 0.2, text
    assert set(res.offsets) == {"web01", "web02"} and all(abs(o) < 0.1 for o in res.offsets.values()), text
    assert "(nobody)" not in text.split("FAULT injected")[0], text


def test_drill_refuses_when_the_event_logs_disagree_with_the_addresses(make_lab):
    """A reader that is not running is an error naming it, never a timeline from '(nobody)'."""
    from webha.drill import DrillError

    lab = make_lab()
    lab.wait_single_holder(10)
    lab.hosts["web01"].run(["pkill", "-f", "webha-events.py run"], check=True)
    with pytest.raises(DrillError, match="web01.*webha-events"):
        run_drill(LabCluster(lab), "nginx-kill", observe=1.0)


def test_cli_splitbrain_skew_limit_reaches_the_clock_check():
    """`--skew-limit` is the clock finding's limit: a lab's nodes share this machine's clock, so
    the default passes and a limit below the read's own uncertainty cannot tell (exit 1)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "webha", "splitbrain", "--set", "vrrp.authType=none", *extra],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)

    ok = run()
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "limit |difference| <= 0.5s" in ok.stdout
    tight = run("--skew-limit", "0.000001")
    assert tight.returncode == 1, tight.stdout + tight.stderr
    assert "[!!] clock" in tight.stdout and "limit |difference| <= 1e-06s" in tight.stdout
    bad = run("--skew-limit", "nan")
    assert bad.returncode == 2 and "--skew-limit: must be a positive number" in bad.stderr
