"""database.mode: replicate against two real MariaDB servers: the whole move while the shop's
order path writes, a kill at each phase then a re-run, a failed verification that leaves the app
on the source with the fence lifted, the source retired as database.sourceAfterMove says."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from webha.testbed.orders import OrderWriter, install_course_app, orders_on

from .helpers import DB_PASSWORD, migrating, stack_config

pytestmark = pytest.mark.migration



@pytest.fixture
def rep(mlab):
    """The lab with a replicate-mode config, a fresh target and the course's shop on web01: its
    database.php points at the local MariaDB (127.0.0.1) as the app user."""
    cfg = stack_config(mode="replicate")
    mlab.src.reset_retired()
    mlab.tgt.init().start()
    mlab.state = "fresh"
    with migrating(mlab, cfg) as lab:
        install_course_app(lab, DB_PASSWORD)
        yield lab
    mlab.state = "replicated"


def Writer(lab, prefix: str) -> OrderWriter:
    return OrderWriter(lab, prefix, rate=50)


orders = orders_on


def read_only(srv) -> str:
    return srv.value("SELECT @@GLOBAL.read_only")


def app_host(lab) -> str:
    return re.search(r"'hostname' => '([^']*)'", lab.src.database_php.read_text()).group(1)


def run_plan_ok(lab):
    results = lab.run_plan()
    for res in results:
        assert res.returncode == 0, str(res)
    return {r.step: r for r in results}


def test_move_under_continuous_writes_loses_no_acknowledged_order(rep):
    lab = rep
    writer = Writer(lab, "M")
    try:
        time.sleep(1.0)
        res = run_plan_ok(lab)
        time.sleep(1.0)
    finally:
        writer.stop()
    migrate = res["db-migrate"]
    assert "restarting MariaDB once" in res["db-source-binlog"].stdout or "no restart" in res["db-source-binlog"].stdout
    assert "starting at the snapshot GTID" in migrate.stdout and "fence on" in migrate.stdout
    assert "switched" in migrate.stdout and "moved ds_shop to 10.1.1.12" in migrate.stdout
    acked = writer.acked
    assert len(acked) > 50, writer.lines[-5:]
    # Every acknowledged order is on the target; the app now writes there, the source is fenced.
    missing = acked - orders(lab.tgt, "M")
    assert not missing, f"{len(missing)} acknowledged orders missing on the target: {sorted(missing)[:5]}"
    assert app_host(lab) == "10.1.1.12"
    assert read_only(lab.src) == "1"
    assert "read-only" in res["db-source-retire"].stdout
    # Replication removed on both sides; no lease left; the move is recorded.
    assert lab.tgt.value("SHOW SLAVE STATUS") == ""
    assert lab.src.value("SELECT COUNT(*) FROM mysql.global_priv WHERE User='webha_repl'") == "0"
    state = Path(lab.src.dir) / "state"
    assert sorted(p.name for p in state.iterdir() if p.name != "fence.log") == ["moved-ds_shop"]
    assert lab.tgt.value("SELECT state FROM webha_meta.migration") == "complete"
    assert "verified at GTID" in migrate.stdout and "no replication error" in migrate.stdout
    window = float(re.search(r"writes fenced for ([0-9.]+)s", migrate.stdout).group(1))
    print(f"fence window {window:.3f}s, longest gap between acks {writer.longest_gap():.3f}s, "
          f"{len(acked)} acked")
    # Re-run after success: a verified no-op (no copy, no fence, no restart).
    pid = lab.src.pid()
    again = run_plan_ok(lab)
    assert "already migrated" in again["db-migrate"].stdout
    assert "streaming" not in again["db-migrate"].stdout and "fence on" not in again["db-migrate"].stdout
    assert lab.src.pid() == pid and read_only(lab.src) == "1"


def upto_migrate(lab) -> None:
    """The plan's steps before db-migrate."""
    for step in lab.steps():
        if step.name == "db-migrate":
            return
        res = lab.run_step(step)
        assert res.returncode == 0, str(res)


def kill_migrate_at(lab, marker: str) -> str:
    """Run db-migrate and SIGKILL its whole process group when its log prints ``marker``."""
    proc = lab.popen_step(lab.step("db-migrate"))
    out = []
    deadline = time.monotonic() + 300
    for line in proc.stdout:
        out.append(line)
        if marker in line:
            os.killpg(proc.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline
    proc.wait()
    text = "".join(out)
    assert marker in text, text + proc.stderr.read()
    return text


def wait_for(what, seconds: float = 5.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if what():
            return True
        time.sleep(0.05)
    return what()


@pytest.mark.parametrize("phase,marker", [
    ("before the fence", "replicating (run"),
    ("during the fence", "fence on"),
    ("after the switch", "switched "),
])
def test_killed_at_each_phase_then_rerun(rep, phase, marker):
    lab = rep
    upto_migrate(lab)
    writer = Writer(lab, "K")
    try:
        time.sleep(0.5)
        kill_migrate_at(lab, marker)
        if phase == "after the switch":
            # The app already writes to the target: the fence stays on the source.
            assert app_host(lab) == "10.1.1.12"
            time.sleep(1.0)
            assert read_only(lab.src) == "1"
        else:
            # The lease's watchdog lifts a fence the dead run left at once; the app stays on the
            # source and keeps writing there.
            assert wait_for(lambda: read_only(lab.src) == "0", 3.0), "fence left on after the kill"
            assert app_host(lab) == "127.0.0.1"
            n = len(writer.acked)
            assert wait_for(lambda: len(writer.acked) > n + 10, 5.0), ("the shop cannot write to the source", writer.lines[-5:])
        res = run_plan_ok(lab)
        assert "resuming the move" in res["db-migrate"].stdout
        time.sleep(1.0)
    finally:
        writer.stop()
    missing = writer.acked - orders(lab.tgt, "K")
    assert not missing, f"{phase}: {len(missing)} acknowledged orders missing on the target"
    assert app_host(lab) == "10.1.1.12" and read_only(lab.src) == "1"
    assert lab.tgt.value("SHOW SLAVE STATUS") == ""
    assert lab.tgt.value("SELECT state FROM webha_meta.migration") == "complete"


def test_failed_verification_lifts_the_fence_and_keeps_the_app_on_the_source(rep):
    lab = rep
    upto_migrate(lab)
    writer = Writer(lab, "V")
    try:
        kill_migrate_at(lab, "replicating (run")
        # A difference replication will not repair (the target changed behind its back).
        lab.tgt.sql("UPDATE ds_shop.categories SET sort = sort + 1000 WHERE id = 1")
        res = lab.run_step(lab.step("db-migrate"))
        assert res.returncode == 4, str(res)
        # Found before the fence (the full comparison runs at one GTID with the replica stopped
        # there): the shop never stopped writing to the source.
        assert "verification FAILED at GTID" in res.stderr and "`categories`" in res.stderr
        assert "fence on" not in res.stdout
        assert read_only(lab.src) == "0" and app_host(lab) == "127.0.0.1"
        n = len(writer.acked)
        assert wait_for(lambda: len(writer.acked) > n + 10, 5.0), ("the shop cannot write to the source", writer.lines[-5:])
        assert lab.tgt.value("SELECT state FROM webha_meta.migration") == "replicating"
        # Repaired, the next plan run completes the move with nothing lost.
        lab.tgt.sql("UPDATE ds_shop.categories SET sort = sort - 1000 WHERE id = 1")
        run_plan_ok(lab)
        time.sleep(1.0)
    finally:
        writer.stop()
    assert not writer.acked - orders(lab.tgt, "V")
    assert app_host(lab) == "10.1.1.12" and read_only(lab.src) == "1"


def test_source_after_move_stopped_and_rerun_is_a_no_op(rep):
    lab = rep
    with migrating(lab, stack_config(mode="replicate", sourceAfterMove="stopped")):
        res = run_plan_ok(lab)
        assert "source MariaDB stopped" in res["db-source-retire"].stdout
        assert lab.src.sql("SELECT 1", check=False).returncode != 0
        assert app_host(lab) == "10.1.1.12"
        # Re-run: nothing starts the source again, nothing is copied.
        again = run_plan_ok(lab)
        assert "not seeding" in again["db-seed-sample"].stdout
        assert "source is retired" in again["db-source-binlog"].stdout
        assert "the source is stopped: nothing to do" in again["db-migrate"].stdout
        assert lab.src.sql("SELECT 1", check=False).returncode != 0
    lab.src.reset_retired()
