"""The harness itself: cleanup, stale labs, missing tools, the detector's parsers, the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    before = _netns()
    res = subprocess.run(
        [sys.executable, "-m", "webha", "drill", "--set", "vrrp.version=3", "--set", "vrrp.advertInt=0.25",
         "--set", "vrrp.authType=none", "--scenario", "link-down", "--observe", "1.5"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    assert res.returncode == 0, res.stdout + res.stderr
    assert "== drill link-down" in res.stdout and "VIP holder(s) at the end: web02" in res.stdout
    assert _netns() == before


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
        assert netns.cleanup_stale("whm", state_dir=tmp_path) == []
        assert "whm99998-a" in _netns()
        other_run.kill()
        other_run.wait()
        assert netns.cleanup_stale("whm", state_dir=tmp_path) == ["whm99998"]
        assert "whm99998-" not in _netns()
    finally:
        other_run.kill()
        lab.close()
