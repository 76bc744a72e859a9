"""HTTP client for drills: GET a URL at a fixed rate, one JSON line per request on stdout.

Run where the users are (the lab's client namespace, or the libvirt host):
``python -m webha.poller http://10.1.1.100/healthz --rate 50``. Every request is a new TCP
connection (as a new visitor would make), sent on schedule even while earlier ones hang, so a
failover shows up as failed requests instead of a paused client. Stops on SIGTERM/SIGINT, on
stdin EOF, or after ``--duration`` seconds.

``--once``: one GET, one line ``{"status", "by", "body", "err"}`` (the tier check's HTTP read).

Line: ``{"t": sent, "d": done, "ok": bool, "by": X-Served-By or null, "err": str or null}``
(epoch seconds; all lab namespaces share one clock).
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

_lock = threading.Lock()


def _emit(rec: dict) -> None:
    line = json.dumps(rec, separators=(",", ":"))
    with _lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


def get(host: str, port: int, path: str, timeout: float) -> dict:
    """One GET on a new connection: ``{"status", "by" (X-Served-By), "body", "err"}``."""
    out = {"status": None, "by": None, "body": None, "err": None}
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Connection": "close", "User-Agent": "webha-drill"})
        resp = conn.getresponse()
        out["body"] = resp.read(65536).decode("utf-8", "replace")
        out["status"], out["by"] = resp.status, resp.getheader("X-Served-By")
        if resp.status != 200:
            out["err"] = f"HTTP {resp.status}"
    except Exception as exc:  # any failure is a failed request for the user
        out["err"] = f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()
    return out


def _one(host: str, port: int, path: str, timeout: float) -> None:
    t = time.time()
    res = get(host, port, path, timeout)
    ok = res["status"] == 200
    err = None if ok else (res["err"] or "").split(":")[0]
    _emit({"t": t, "d": time.time(), "ok": ok, "by": res["by"], "err": err})


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m webha.poller")
    ap.add_argument("url")
    ap.add_argument("--rate", type=float, default=50.0, help="requests per second")
    ap.add_argument("--timeout", type=float, default=2.0, help="per-request timeout (s)")
    ap.add_argument("--duration", type=float, default=3600.0)
    ap.add_argument("--once", action="store_true", help="one GET; print its result (with the body)")
    args = ap.parse_args(argv)
    u = urlsplit(args.url)
    host, port, path = u.hostname, u.port or 80, u.path or "/"
    if args.once:
        _emit(get(host, port, path, args.timeout))
        return 0

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()

    period = 1.0 / args.rate
    workers = max(8, int(args.rate * args.timeout * 1.5) + 4)
    _emit({"start": time.time(), "rate": args.rate, "url": args.url})
    with ThreadPoolExecutor(max_workers=workers) as pool:
        t_end = time.monotonic() + args.duration
        nxt = time.monotonic()
        while not stop.is_set() and time.monotonic() < t_end:
            pool.submit(_one, host, port, path, args.timeout)
            nxt += period
            delay = nxt - time.monotonic()
            if delay > 0:
                stop.wait(delay)
            else:
                nxt = time.monotonic()  # fell behind: do not burst
    _emit({"stop": time.time()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
