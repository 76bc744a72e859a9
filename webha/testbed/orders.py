"""The shop writing during a database move, for the migration tests and bench/db_move.py.

``install_course_app`` gives the source host what the course's single LNMP server had: the app's
``database.php`` pointing at its local MariaDB (127.0.0.1) as the app user. ``OrderWriter`` runs
``bench/order_writer.php`` on that host: like the shop's PHP, every order re-reads database.php,
connects as the app user and commits an order + item; each order has a unique ``order_no`` that is
recorded when the database acknowledged the commit, so the acknowledged orders can be looked for on
the target afterwards.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
from pathlib import Path

from components.render import render
from components.topology import base_context

ROOT = Path(__file__).resolve().parents[2]
WRITER = ROOT / "bench" / "order_writer.php"
APP_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, EXECUTE, CREATE TEMPORARY TABLES"


def install_course_app(lab, password: str) -> None:
    """The app user on the source (not binlogged: not part of the shop's data) and database.php
    on the source host pointing at 127.0.0.1; goods 1 gets stock for every order of a run."""
    lab.src.sql("SET SESSION sql_log_bin = 0;"
                f"CREATE USER IF NOT EXISTS dsshop@'127.0.0.1' IDENTIFIED BY '{password}';"
                f"GRANT {APP_PRIVILEGES} ON ds_shop.* TO dsshop@'127.0.0.1';"
                "UPDATE ds_shop.goods SET stock = 100000000 WHERE id = 1;")
    php = render("app/application/database.php.j2", **base_context(lab.cfg), db_host="127.0.0.1",
                 db_password=password)
    path = lab.src.database_php
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(php)
    path.chmod(0o640)


class OrderWriter:
    """bench/order_writer.php on the source host at ``rate`` orders/s until :meth:`stop`."""

    def __init__(self, lab, prefix: str, rate: float = 50):
        self.stop_file = Path(lab.src.dir) / f"stop-{prefix}"
        self.stop_file.unlink(missing_ok=True)
        self.proc = lab.lab.popen(lab.source, ["php", str(WRITER), str(lab.src.database_php), str(rate),
                                               "3600", prefix, str(self.stop_file)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line.strip())

    def stop(self) -> "OrderWriter":
        self.stop_file.touch()
        try:
            self.proc.wait(timeout=60)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._t.join(5)
        if not any(line.startswith("done ") for line in self.lines):
            raise RuntimeError(f"order writer did not finish: {self.lines[-5:]} {self.proc.stderr.read()}")
        return self

    def _acks(self) -> list[list[str]]:
        return [line.split() for line in list(self.lines) if line.startswith("ack ")]

    @property
    def acked(self) -> set[str]:
        return {f[1] for f in self._acks()}

    @property
    def ack_times(self) -> list[float]:
        return sorted(float(f[3]) for f in self._acks())

    @property
    def latencies(self) -> list[float]:
        return sorted(float(f[3]) - float(f[2]) for f in self._acks())

    @property
    def errors(self) -> int:
        return sum(1 for line in self.lines if line.startswith("err "))

    @property
    def placed(self) -> int:
        done = [line for line in self.lines if line.startswith("done ")]
        return int(done[-1].split()[1]) if done else len(self.acked)

    def longest_gap_at(self, start: float = 0.0, end: float = float("inf")) -> tuple[float, float]:
        """(length, time of the ack that opened it) of the longest gap, as :meth:`longest_gap`."""
        times = self.ack_times
        t = [x for x in times if x < start][-1:] + [x for x in times if start <= x <= end] + \
            [x for x in times if x > end][:1]
        return max(((b - a, a) for a, b in zip(t, t[1:])), default=(0.0, start))

    def longest_gap(self, start: float = 0.0, end: float = float("inf")) -> float:
        """Longest time between two acknowledged orders from the last ack before ``start`` to
        the first after ``end`` (a window with no ack at all counts in full)."""
        times = self.ack_times
        before = [x for x in times if x < start][-1:]
        after = [x for x in times if x > end][:1]
        t = before + [x for x in times if start <= x <= end] + after
        return max((b - a for a, b in zip(t, t[1:])), default=0.0)


def orders_on(srv, prefix: str) -> set[str]:
    return set(srv.value(f"SELECT order_no FROM ds_shop.orders WHERE order_no LIKE '{prefix}%'").split())
