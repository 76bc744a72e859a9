"""Benchmark: moving ds_shop while the shop takes orders, replicate mode versus snapshot mode
(real mariadbd in network namespaces, as in tests/migration). Prints figures, asserts nothing.

    .venv/bin/python bench/db_move.py --mb 200 1000    (as root: namespaces)

The load: bench/order_writer.php on web01, 50 orders/s for the whole move, each order a new
"request" that reads the app's database.php, connects as the app user (what the shop's PHP does;
there is no VIP in the migration lab, so this is the app's order path minus nginx/php-fpm) and
commits an order + item with a unique order_no, retried until acknowledged. Per run: the longest
gap between acknowledged orders from the start of db-migrate to its end (the write-unavailability
window), failed orders (placed, never acknowledged), failed attempts, p99 order latency, acked
orders versus those rows on mysql01 at the end.

Modes, per size, each on a fresh target (the not-timed steps before db-migrate run first):
* replicate: the plan as deployed (db-source-binlog's restart happens before, and is reported
  apart: it is a step of its own, before the move);
* snapshot: what snapshot mode needs to lose nothing: a maintenance window (read_only=1 on the
  source) for the whole db-migrate, then database.php switched by hand.
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from components.migration_plan import secret_values  # noqa: E402
from tests.migration.helpers import DB_PASSWORD, stack_config  # noqa: E402
from webha.testbed import shopdata  # noqa: E402
from webha.testbed.mariadb_lab import MigrationLab  # noqa: E402
from webha.testbed.orders import OrderWriter, install_course_app, orders_on  # noqa: E402


def run(lab: MigrationLab, name: str, **settings):
    res = lab.run_step(lab.step(name, **settings), timeout=7200)
    if res.returncode != 0:
        raise SystemExit(str(res))
    return res


def run_timed(lab: MigrationLab, name: str) -> tuple[str, list[tuple[float, str]]]:
    """Run a step, stamping each line of its log (stdout and stderr) with the time it arrived:
    where the longest gap between acks falls among the step's phases."""
    import threading

    proc = lab.popen_step(lab.step(name))
    stamped: list[tuple[float, str]] = []
    out: list[str] = []

    def read(stream, keep):
        for line in stream:
            stamped.append((time.time(), line.rstrip("\n")))
            if keep:
                out.append(line)

    readers = [threading.Thread(target=read, args=(proc.stdout, True), daemon=True),
               threading.Thread(target=read, args=(proc.stderr, False), daemon=True)]
    for t in readers:
        t.start()
    rc = proc.wait(timeout=7200)
    for t in readers:
        t.join(10)
    if rc != 0:
        raise SystemExit(f"{name} exited {rc}: " + "\n".join(line for _, line in stamped[-20:]))
    return "".join(out), sorted(stamped)


def p99(values: list[float]) -> float:
    if not values:
        return float("nan")
    return statistics.quantiles(values, n=100)[98] if len(values) > 1 else values[0]


def one_move(lab: MigrationLab, mode: str, prefix: str, rate: float) -> dict:
    lab.cfg = stack_config(mode=mode)
    lab.src.reset_retired()
    lab.tgt.init().start()
    install_course_app(lab, DB_PASSWORD)
    restart = ""
    if mode == "replicate":
        out = run(lab, "db-source-binlog").stdout
        m = re.search(r"restarted in ([0-9.]+)s", out)
        restart = f"{m.group(1)} s" if m else "none needed"
    for name in ("db-migrate-credential", "db-target-prepare"):
        run(lab, name)
    writer = OrderWriter(lab, prefix, rate)
    time.sleep(3.0)
    load0 = os.getloadavg()
    t0 = time.time()
    if mode == "snapshot":
        lab.src.sql("SET GLOBAL read_only = 1")  # the maintenance window
    stdout, stamped = run_timed(lab, "db-migrate")
    if mode == "snapshot":
        php = base64.b64decode(secret_values(lab.cfg)["DATABASE_PHP_B64"])
        tmp = lab.src.database_php.with_suffix(".new")
        tmp.write_bytes(php)
        tmp.replace(lab.src.database_php)
    t1 = time.time()
    time.sleep(3.0)
    writer.stop()
    load1 = os.getloadavg()
    run(lab, "db-target-finish")
    run(lab, "db-source-retire")
    acked = writer.acked
    present = orders_on(lab.tgt, prefix)
    fence = re.search(r"writes fenced for ([0-9.]+)s", stdout)
    gap, gap_at = writer.longest_gap_at(t0, t1 + 3.0)
    # the step's log lines around the gap: the last one before it opened, those inside it
    before = [line for t, line in stamped if t <= gap_at][-1:]
    inside = [line for t, line in stamped if gap_at < t <= gap_at + gap]
    return {
        "mode": mode,
        "move_s": t1 - t0,
        "fence_s": float(fence.group(1)) if fence else t1 - t0,
        "window_s": gap,
        # where it was: seconds after db-migrate started, and before it ended (the switch is at
        # its end; a gap elsewhere is the commit block or load, not the fence)
        "gap_at_s": gap_at - t0,
        "gap_before_end_s": t1 - gap_at,
        "gap_log": " | ".join(before + ["(gap opens)"] + inside)[:600],
        "placed": writer.placed,
        "failed_orders": writer.placed - len(acked),
        "failed_attempts": writer.errors,
        "p99_ms": p99(writer.latencies) * 1000,
        "acked": len(acked),
        "missing": len(acked - present),
        "restart": restart,
        "load": f"{load0[0]:.2f} -> {load1[0]:.2f}",
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, nargs="+", default=[200.0])
    ap.add_argument("--modes", nargs="+", default=["replicate", "snapshot"])
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--rate", type=float, default=50)
    ap.add_argument("--base", default="/var/tmp/webha-bench-move", help="datadirs (on disk, not tmpfs)")
    args = ap.parse_args()
    rows_all = []
    for mb in args.mb:
        base = Path(args.base)
        shutil.rmtree(base, ignore_errors=True)
        lab = MigrationLab(stack_config(), base, seed_rows=shopdata.rows_for_mb(mb), buffer_pool="512M")
        try:
            lab.start()
            t = time.monotonic()
            run(lab, "db-seed-sample")
            size = lab.src.value("SELECT ROUND(SUM(DATA_LENGTH + INDEX_LENGTH) / 1048576) "
                                 "FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'ds_shop'")
            print(f"# {mb:.0f} MB requested: ds_shop {size} MiB, seeded in {time.monotonic() - t:.0f}s", flush=True)
            for i in range(args.runs):
                for mode in args.modes:
                    r = one_move(lab, mode, f"{mode[0].upper()}{i}", args.rate)
                    r["mib"] = size
                    rows_all.append(r)
                    print("  " + " ".join(f"{k}={v:.3f}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in r.items()), flush=True)
        finally:
            lab.close()
            shutil.rmtree(base, ignore_errors=True)
    print("\n| size | mode | move | fence (log) | longest gap between acks | failed orders | failed attempts "
          "| p99 latency | acked / missing on target | source restart (before) | load avg |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows_all:
        print(f"| {r['mib']} MiB | {r['mode']} | {r['move_s']:.1f} s | {r['fence_s']:.2f} s | **{r['window_s']:.2f} s** "
              f"| {r['failed_orders']} | {r['failed_attempts']} | {r['p99_ms']:.0f} ms | {r['acked']} / {r['missing']} "
              f"| {r['restart']} | {r['load']} |")
    print("\n| size | mode | runs | longest gap median / max | fence median / max | failed orders (sum) "
          "| p99 latency median / max | acked / missing (sum) | load avg |")
    print("|---|---|---|---|---|---|---|---|---|")
    for key in dict.fromkeys((r["mib"], r["mode"]) for r in rows_all):
        rs = [r for r in rows_all if (r["mib"], r["mode"]) == key]

        def med_max(field, scale=1.0, fmt="{:.2f}"):
            vals = [r[field] * scale for r in rs]
            return f"{fmt.format(statistics.median(vals))} / {fmt.format(max(vals))}"

        print(f"| {key[0]} MiB | {key[1]} | {len(rs)} | **{med_max('window_s')} s** | {med_max('fence_s')} s "
              f"| {sum(r['failed_orders'] for r in rs)} | {med_max('p99_ms', fmt='{:.0f}')} ms "
              f"| {sum(r['acked'] for r in rs)} / {sum(r['missing'] for r in rs)} "
              f"| {rs[0]['load'].split(' -> ')[0]} .. {rs[-1]['load'].split(' -> ')[1]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
