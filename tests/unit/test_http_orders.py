"""The e2e tier's order client (webha.testbed.orders.HttpOrders) against a shop stand-in on
loopback: a retried order backs off (a slow node is not flooded with retries of requests it is
still running), is acknowledged once, and the report says what the failed attempts got."""

from __future__ import annotations

import http.server
import threading
import time

import pytest

from webha.testbed.orders import HttpOrders

pytestmark = pytest.mark.unit


class _Shop:
    """order.php's answers: 503 "err <no> node=web01 1213 mysqli_sql_exception" for the first
    ``fail`` tries of each order, then "ack <no> node=web01 db=10.1.1.12 new"."""

    def __init__(self, fail: int):
        outer = self
        self.tries: dict[str, list[float]] = {}

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                no = body.split("=", 1)[1]
                seen = outer.tries.setdefault(no, [])
                seen.append(time.monotonic())
                if len(seen) <= fail:
                    self.send_response(503)
                    text = f"err {no} node=web01 1213 mysqli_sql_exception\n"
                else:
                    self.send_response(200)
                    text = f"ack {no} node=web01 db=10.1.1.12 new\n"
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def test_retries_back_off_and_the_report_says_what_failed():
    shop = _Shop(fail=4)
    try:
        orders = HttpOrders(shop.url, "T", rate=5, max_seconds=0.4, workers=4).start()
        time.sleep(0.5)
        orders.stop()
    finally:
        shop.close()
    assert orders.acked == {"T00000000", "T00000001"}
    for no, stamps in shop.tries.items():
        waits = [b - a for a, b in zip(stamps, stamps[1:])]
        assert len(waits) == 4, (no, waits)
        # 0.05, 0.1, 0.2, 0.4 s (+ the request itself): each wait longer than the one before
        assert all(b > a * 1.5 for a, b in zip(waits, waits[1:])), (no, waits)
        assert waits[-1] >= 0.4, (no, waits)
    kinds = orders.error_kinds(10.0)
    assert kinds == {"+0": {"503 err 1213 mysqli_sql_exception": 8, "ack web01/10.1.1.12": 2}}
