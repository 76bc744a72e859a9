"""Benchmark: the plan's db-migrate step (streamed copy + full verification) versus a bare
``mariadb-dump | mariadb`` pipe between the same two servers (real mariadbd in network
namespaces, as in tests/migration). Prints the figures; docs/migration.md records them.

    sudo .venv/bin/python bench/migration.py --mb 200 --runs 3

Each run starts from a fresh target (new datadir + the db-migrate-credential and target-prepare
steps, not timed) and the two contenders alternate, so drift (page cache, disk) hits both alike.
The bare pipe runs as its own account with the old migration user's rights (ALL on ds_shop.*,
SET USER: the dump's DEFINER=root clauses need it), password in a 0600 option file.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.migration.helpers import stack_config  # noqa: E402
from webha.testbed import shopdata  # noqa: E402
from webha.testbed.mariadb_lab import MigrationLab  # noqa: E402


PIPE_USER = "bench_pipe"


def fresh_prepared_target(lab: MigrationLab, pipe_password: str) -> None:
    lab.tgt.init().start()
    for name in ("db-migrate-credential", "db-target-prepare"):
        res = lab.run_step(lab.step(name))
        if res.returncode != 0:
            raise SystemExit(str(res))
    lab.tgt.sql(f"CREATE USER {PIPE_USER}@'10.1.1.11' IDENTIFIED BY '{pipe_password}';"
                f"GRANT ALL ON ds_shop.* TO {PIPE_USER}@'10.1.1.11';"
                f"GRANT SET USER ON *.* TO {PIPE_USER}@'10.1.1.11';")


def bare_pipe(lab: MigrationLab, cnf: Path) -> float:
    cmd = (f"set -o pipefail; mariadb-dump --socket={lab.src.socket} -uroot --single-transaction "
           "--routines --triggers --events --databases ds_shop "
           f"| mariadb --defaults-extra-file={cnf}")
    t0 = time.monotonic()
    lab.lab.run(lab.source, "bash", "-c", cmd, timeout=3600)
    return time.monotonic() - t0


def migrate(lab: MigrationLab, **settings) -> float:
    res = lab.run_step(lab.step("db-migrate", **settings))
    if res.returncode != 0 or "verified" not in res.stdout:
        raise SystemExit(str(res))
    return res.seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mb", type=float, default=200, help="approximate size of ds_shop (MiB)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--base", default="/var/tmp/webha-bench", help="datadirs (on disk, not tmpfs)")
    ap.add_argument("--variants", action="store_true",
                    help="also time compress=True and no_autocommit=True once each")
    args = ap.parse_args()

    cfg = stack_config()
    rows = shopdata.rows_for_mb(args.mb)
    base = Path(args.base)
    shutil.rmtree(base, ignore_errors=True)
    lab = MigrationLab(cfg, base, seed_rows=rows, buffer_pool="512M")
    try:
        lab.start()
        t0 = time.monotonic()
        res = lab.run_step(lab.step("db-seed-sample"), timeout=3600)
        if res.returncode != 0:
            raise SystemExit(str(res))
        size = lab.src.value("SELECT ROUND(SUM(data_length + index_length) / 1048576) FROM "
                             "information_schema.TABLES WHERE TABLE_SCHEMA = 'ds_shop'")
        nrows = lab.src.value("SELECT SUM(TABLE_ROWS) FROM information_schema.TABLES "
                              "WHERE TABLE_SCHEMA = 'ds_shop'")
        print(f"source ds_shop: --rows {rows}, {size} MiB on disk, ~{nrows} rows "
              f"(seeded in {time.monotonic() - t0:.0f}s); {os.cpu_count()} CPUs", flush=True)
        cnf = base / "bench-client.cnf"
        pipe_password = secrets.token_hex(16)
        old = os.umask(0o077)
        cnf.write_text(f"[client]\nuser={PIPE_USER}\npassword={pipe_password}\n"
                       "host=10.1.1.12\nport=3306\nprotocol=tcp\nmax-allowed-packet=256M\n")
        os.umask(old)

        pipe_t, mig_t = [], []
        for i in range(args.runs):
            fresh_prepared_target(lab, pipe_password)
            pipe_t.append(bare_pipe(lab, cnf))
            fresh_prepared_target(lab, pipe_password)
            mig_t.append(migrate(lab))
            print(f"run {i + 1}: bare pipe {pipe_t[-1]:.1f}s, db-migrate (copy + verify) "
                  f"{mig_t[-1]:.1f}s", flush=True)
        p, m = statistics.median(pipe_t), statistics.median(mig_t)
        print(f"median bare pipe {p:.1f}s ({float(size) / p:.1f} MiB/s), db-migrate {m:.1f}s "
              f"({float(size) / m:.1f} MiB/s): speed {p / m:.2f}x the pipe (goal >= 0.90x)")
        if args.variants:
            for name, settings in (("compress=True", {"compress": True}),
                                   ("no_autocommit=True", {"no_autocommit": True})):
                fresh_prepared_target(lab, pipe_password)
                print(f"variant {name}: db-migrate {migrate(lab, **settings):.1f}s", flush=True)
        return 0
    finally:
        lab.close()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
