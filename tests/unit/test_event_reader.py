"""The event reader's parsing (templates/keepalived/webha-events.py.j2), rendered as deployed and
run without its inputs: keepalived's FIFO lines and its data dump."""

import os
import shlex
import subprocess
import threading

import pytest

from components.render import render
from components.topology import Paths, keepalived_context
from tests.conftest import ROOT
from webha.stackfile import load_stack_file

pytestmark = pytest.mark.unit

DATA = """------< VRRP Topology >------
 VRRP Instance = VI_51
   Tracked scripts :
     check_nginx weight 0
   Status = UP
------< VRRP Scripts >------
 VRRP Script = check_nginx
   Command = '/etc/keepalived/scripts/check_nginx.sh'
   Status = BAD
 VRRP Script = other
   Status = GOOD
"""


@pytest.fixture
def reader(tmp_path):
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.dev.yaml")
    ctx = keepalived_context(cfg, "web01", Paths(state_dir=str(tmp_path), events_log=str(tmp_path / "ev.jsonl"),
                                                 metrics_dir=str(tmp_path)))
    ns: dict = {"__name__": "webha_events"}
    exec(compile(render("keepalived/webha-events.py.j2", **ctx), "webha-events.py", "exec"), ns)
    r = ns["Reader"]()
    r.read_vip = lambda: r.inst.get("VI_51", {}).get("state") == "MASTER"
    r.events = []
    r.emit = lambda kind, at=None, **f: r.events.append((kind, f, r.vip))
    return ns, r


def test_data_dump_gives_each_scripts_status(reader):
    ns, _ = reader
    assert ns["parse_scripts"](DATA) == {"check_nginx": "BAD", "other": "GOOD"}


def test_fifo_lines_count_transitions_not_repeats_or_priority_changes(reader):
    _, r = reader
    for line in ('INSTANCE "VI_51" BACKUP 150', 'INSTANCE "VI_51" MASTER 150',
                 'INSTANCE "VI_51" MASTER 150',  # fifo_write_vrrp_states_on_reload repeats it
                 'INSTANCE "VI_51" MASTER_PRIORITY 140'):
        r.on_line(line)
    assert r.inst["VI_51"]["transitions"] == 2 and r.inst["VI_51"]["state"] == "MASTER"
    assert r.inst["VI_51"]["priority"] == 140
    kinds = [(k, f.get("state") or f.get("event"), f.get("changed"), vip) for k, f, vip in r.events]
    assert kinds == [("vrrp", "BACKUP", True, False), ("vrrp", "MASTER", True, True),
                     ("vrrp", "MASTER", False, True), ("vrrp", "MASTER_PRIORITY", None, True)]


def test_keepalived_dying_between_the_look_and_the_dump_signal_does_not_kill_the_reader(tmp_path, monkeypatch):
    """The reader asks keepalived for a dump every 5 s: look (kill -0), `keepalived --signum`,
    then the signal. A keepalived SIGKILLed (and reaped) in between made os.kill raise
    ProcessLookupError, which ended the reader (bench/failover.py seed 732: web02's reader gone
    after its keepalived was killed, events.now.json removed by the reader's exit)."""
    cfg = load_stack_file(ROOT / "stacks" / "Pulumi.dev.yaml")
    pidfile = tmp_path / "keepalived.pid"
    ctx = keepalived_context(cfg, "web01", Paths(state_dir=str(tmp_path), events_log=str(tmp_path / "ev.jsonl"),
                                                 metrics_dir=str(tmp_path), keepalived_pid=str(pidfile)))
    ns: dict = {"__name__": "webha_events"}
    exec(compile(render("keepalived/webha-events.py.j2", **ctx), "webha-events.py", "exec"), ns)
    r = ns["Reader"]()
    r.read_vip = lambda: False
    r.events = []
    r.emit = lambda kind, at=None, **f: r.events.append((kind, f))
    # A real process as "keepalived"; a thread reaps it the moment it dies (as init does).
    victim = subprocess.Popen(["sleep", "60"])
    threading.Thread(target=victim.wait, daemon=True).start()
    pidfile.write_text(f"{victim.pid}\n")
    # `keepalived --signum=JSON` in the window: keepalived is SIGKILLed (the drill's silent
    # death) and reaped while it runs. Bounded wait (5 s).
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "keepalived").write_text(
        "#!/bin/sh\n"
        f"pid=$(cat {shlex.quote(str(pidfile))})\n"
        'kill -KILL "$pid"\n'
        'i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 500 ]; do sleep 0.01; i=$((i+1)); done\n'
        "echo 10\n")
    (fake / "keepalived").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ['PATH']}")
    try:
        assert r.check_keepalived() is True  # alive at the look
        assert r.dump("JSON", str(tmp_path / "keepalived.json")) is None
        victim.wait(timeout=5)
        assert r.check_keepalived() is False
        assert [f.get("up") for k, f in r.events if k == "keepalived"] == [True, False]
    finally:
        victim.kill()
