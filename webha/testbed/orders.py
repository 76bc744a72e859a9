"""The shop writing during a database move, for the migration tests, bench/db_move.py and the e2e
tier.

``install_course_app`` gives the source host what the course's single LNMP server had: the app's
``database.php`` pointing at its local MariaDB (127.0.0.1) as the app user. ``OrderWriter`` runs
``bench/order_writer.php`` on that host: like the shop's PHP, every order re-reads database.php,
connects as the app user and commits an order + item; each order has a unique ``order_no`` that is
recorded when the database acknowledged the commit, so the acknowledged orders can be looked for on
the target afterwards. ``HttpOrders`` places the same orders through the VIP (the shop's
``order.php``: nginx, php-fpm, the same order function) for the e2e tier. Both keep one line per
event in the same format (:class:`AckLog`), so the figures come from one implementation.
"""

from __future__ import annotations

import http.client
import os
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Optional
from urllib.parse import urlencode, urlsplit

from components.render import render
from components.topology import base_context

from . import shopdata

ROOT = Path(__file__).resolve().parents[2]
WRITER = ROOT / "bench" / "order_writer.php"
APP_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, EXECUTE, CREATE TEMPORARY TABLES"


def install_course_app(lab, password: str) -> None:
    """The app user on the source (not binlogged: not part of the shop's data) and database.php
    on the source host pointing at 127.0.0.1, with the shop's order path beside it
    (``shop_order.php``, the file the guests get); goods 1 gets stock for every order of a run."""
    lab.src.sql("SET SESSION sql_log_bin = 0;"
                f"CREATE USER IF NOT EXISTS dsshop@'127.0.0.1' IDENTIFIED BY '{password}';"
                f"GRANT {APP_PRIVILEGES} ON ds_shop.* TO dsshop@'127.0.0.1';"
                f"UPDATE ds_shop.goods SET stock = {shopdata.ORDER_GOODS_STOCK} WHERE id = {shopdata.ORDER_GOODS_ID};")
    php = render("app/application/database.php.j2", **base_context(lab.cfg), db_host="127.0.0.1",
                 db_password=password)
    path = lab.src.database_php
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(php)
    path.chmod(0o640)
    (path.parent / "shop_order.php").write_text(render("app/application/shop_order.php.j2"))


class AckLog:
    """Figures from event lines in ``self.lines``: ``ack <order_no> <t_first_try> <t_ack>
    <attempts> <where>``, ``err <order_no> <t> ...``, and at the end ``done <placed> <acked>
    <errors>`` (epoch seconds)."""

    lines: list[str]

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

    @staticmethod
    def _ack_where(fields: list[str]) -> str:
        """``node/db`` of an ack line's fields (its last field without the ``/new|dup`` end)."""
        return fields[5].rsplit("/", 1)[0]

    def error_kinds(self, bucket: float = 10.0) -> dict[str, dict[str, int]]:
        """Failed attempts and acks per ``bucket`` s from the first line (key ``+<s>``): what the
        client got back, by kind (HTTP status + the shop's error code and class, or the client's
        exception), so a report says why orders failed and when, not only how many."""
        events: list[tuple[float, str]] = []
        for f in (line.split() for line in list(self.lines)):
            if f[0] == "err":
                events.append((float(f[2]), " ".join(
                    [f[3], *(w for w in f[4:] if w != f[1] and not w.startswith("node="))][:4])))
            elif f[0] == "ack":
                events.append((float(f[3]), "ack " + self._ack_where(f)))
        t0 = min((t for t, _ in events), default=0.0)
        out: dict[str, dict[str, int]] = {}
        for t, kind in events:
            counts = out.setdefault(f"+{int((t - t0) // bucket * bucket)}", {})
            counts[kind] = counts.get(kind, 0) + 1
        return out

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
        return self.longest_gap_at(start, end)[0]


class OrderWriter(AckLog):
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


class HttpOrders(AckLog):
    """Orders through the shop's ``order.php`` at ``url`` (the VIP), ``rate`` per second on
    schedule until :meth:`stop` or ``max_seconds``, each a POST on a new connection with a unique
    ``order_no`` (``prefix`` + number), tried again until the shop acknowledges it (``ack`` =
    committed; a retry of an order that had committed is acknowledged as ``dup``) or
    ``order_deadline`` s after it was due pass (then it counts as failed). ``workers`` requests
    at most at once: bounded; an order waiting for a free worker waits in its latency (a shop
    that cannot keep up shows it there); orders still waiting at :meth:`stop` or past their
    deadline before a worker took them are not placed (``scheduled`` - ``placed``: shed)."""

    # Why an attempt waits 10 s and retries back off: a request the client gives up on still runs
    # in php-fpm (nginx does not cancel it), so quick timeouts and quick retries pile abandoned
    # orders onto a slow node until it answers none (seen on a TCG guest at 50 orders/s: no order
    # acknowledged after the first stall). The shop itself gives up after 2 s (connect) + 5 s (read).
    BACKOFF_FIRST, BACKOFF_MAX = 0.05, 2.0

    def __init__(self, url: str, prefix: str, rate: float = 50, max_seconds: float = 1800,
                 workers: int = 16, timeout: float = 10.0, order_deadline: float = 60.0):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self.path = (parts.path or "/").rstrip("/") + "/order.php"
        self.prefix, self.rate, self.max_seconds = prefix, rate, max_seconds
        self.timeout, self.order_deadline = timeout, order_deadline
        self.lines: list[str] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=workers)
        self._placed = 0  # orders a worker took (those still queued at stop() are not placed)
        self.scheduled = 0
        self._thread: Optional[threading.Thread] = None

    def post(self, no: str) -> tuple[Optional[int], str]:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
        try:
            conn.request("POST", self.path, body=urlencode({"order_no": no}),
                         headers={"Content-Type": "application/x-www-form-urlencoded",
                                  "Connection": "close", "User-Agent": "webha-orders"})
            resp = conn.getresponse()
            return resp.status, resp.read(4096).decode("utf-8", "replace").strip()
        except Exception as exc:  # any failure is a failed attempt for the client
            return None, f"{type(exc).__name__}: {exc}"
        finally:
            conn.close()

    def _order(self, no: str, due: float) -> None:
        """One order, from its scheduled time ``due`` (a wait for a free worker counts in its
        latency); not placed at all when the client stopped before a worker took it."""
        if self._stop.is_set() or time.time() - due >= self.order_deadline:
            return  # never sent: not placed (scheduled - placed = shed)
        with self._lock:
            self._placed += 1
        first = due
        tries = 0
        while time.time() - first < self.order_deadline:
            tries += 1
            status, body = self.post(no)
            words = body.split()
            if status == 200 and words[:2] == ["ack", no]:
                fields = dict(w.split("=", 1) for w in words[2:] if "=" in w)
                where = f"{fields.get('node', '?')}/{fields.get('db', '?')}/{words[-1]}"
                self._add(f"ack {no} {first:.6f} {time.time():.6f} {tries} {where}")
                return
            self._add(f"err {no} {time.time():.6f} {status} {body[:120].replace(chr(10), ' ')}")
            time.sleep(min(self.BACKOFF_MAX, self.BACKOFF_FIRST * 2 ** (tries - 1)))

    def _add(self, line: str) -> None:
        with self._lock:
            self.lines.append(line)

    def _schedule(self) -> None:
        t0 = time.time()
        i = 0
        while not self._stop.is_set() and i / self.rate < self.max_seconds:
            due = t0 + i / self.rate
            wait = due - time.time()
            if wait > 0 and self._stop.wait(wait):
                break
            self._pool.submit(self._order, f"{self.prefix}{i:08d}", due)
            i += 1
        self.scheduled = i

    def start(self) -> "HttpOrders":
        self._thread = threading.Thread(target=self._schedule, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> "HttpOrders":
        """Stop placing orders; wait for those in flight (each at most ``order_deadline`` s)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._pool.shutdown(wait=True)
        acked = len(self.acked)
        self._add(f"done {self._placed} {acked} {self.errors}")
        return self

    def where(self) -> dict[str, int]:
        """How many acknowledged orders each ``node/db`` took (new and dup together)."""
        out: dict[str, int] = {}
        for f in self._acks():
            key = self._ack_where(f)
            out[key] = out.get(key, 0) + 1
        return out


def orders_on(srv, prefix: str) -> set[str]:
    return set(srv.value(f"SELECT order_no FROM ds_shop.orders WHERE order_no LIKE '{prefix}%'").split())
