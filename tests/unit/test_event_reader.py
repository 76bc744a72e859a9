"""The event reader's parsing (templates/keepalived/webha-events.py.j2), rendered as deployed and
run without its inputs: keepalived's FIFO lines and its data dump."""

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
