"""The post-condition of `pulumi up`: is the deployed tier healthy, seen from outside?

``python -m webha verify --config-json FILE_OR_- [--known-hosts PATH] [--deadline SECONDS]``
(the tier check, components/tiercheck.py, runs it). Every check, each naming the node and what is
wrong when it fails:

1. **holder** - exactly one web node holds the VIP (:func:`webha.vip.holders`; an unreadable
   node fails the check: it may hold the VIP too). With ``vrrp.preempt`` it must be the
   highest-priority web node; without, any single holder is fine;
2. **state** - the holder's keepalived state file says MASTER, every other web node's says
   BACKUP (missing or unreadable = failure);
3. **adverts** - every backup receives VRRP adverts (the split-brain detector's stats check);
4. **http** - ``GET http://VIP:httpPort/`` from where the clients are is answered by the holder
   and reads the database: a body ``node=<holder> db=<db host> goods=<int>``.

Checks are retried until they all pass or ``deadline`` seconds have passed; the report of the
last attempt is returned. The database part of the HTTP check is skipped only when the caller
says ``check_db=False`` (the namespace lab, which has no PHP or MariaDB); the report says so.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from components.config import StackConfig

from .splitbrain import advert_findings, gather_all, states_from
from .vip import VipUnreadable

ROOT = Path(__file__).resolve().parent.parent
BODY = re.compile(r"^node=(\S+) db=(\S+) goods=(-?\d+)\s*$")


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    skipped: bool = False

    def line(self) -> str:
        mark = "skipped" if self.skipped else ("ok" if self.ok else "FAIL")
        return f"  [{mark}] {self.name}: {self.detail}"


@dataclass
class VerifyReport:
    vip: str
    checks: list[Check] = field(default_factory=list)
    holder: Optional[str] = None
    attempts: int = 0
    elapsed: float = 0.0

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[Check]:
        return [c for c in self.checks if not c.ok]

    def text(self) -> str:
        if self.ok:
            head = f"ok: tier healthy, VIP {self.vip} on {self.holder}"
        else:
            head = (f"FAILED: tier not healthy: "
                    + "; ".join(f"{c.name}: {c.detail}" for c in self.failures))
        head += f" (attempt {self.attempts}, {self.elapsed:.1f}s)"
        return "\n".join([head, *(c.line() for c in self.checks)])

    def as_dict(self) -> dict:
        return {"ok": self.ok, "vip": self.vip, "holder": self.holder, "attempts": self.attempts,
                "elapsed": round(self.elapsed, 3), "checks": [c.__dict__ for c in self.checks]}


def http_get(cluster, url: str, timeout: float = 3.0) -> dict:
    """One GET from where the clients are (``cluster.client_prefix``): :mod:`webha.poller` --once."""
    argv = [*cluster.client_prefix, sys.executable, "-m", "webha.poller", url, "--once",
            "--timeout", str(timeout)]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 10, cwd=str(ROOT),
                             env={"PYTHONPATH": str(ROOT), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        return json.loads(res.stdout.strip().splitlines()[-1])
    except (subprocess.TimeoutExpired, json.JSONDecodeError, IndexError) as exc:
        return {"status": None, "by": None, "body": None, "err": f"HTTP client failed: {exc}"}


def _holder_checks(cfg: StackConfig, cluster) -> tuple[Optional[str], list[Check]]:
    try:
        holders = cluster.holders()
    except VipUnreadable as exc:
        return None, [Check("holder", False, f"{n}: cannot read its addresses, may hold the VIP ({why})")
                      for n, why in exc.problems.items()]
    if len(holders) > 1:
        return None, [Check("holder", False, f"split brain: the VIP is on {', '.join(holders)}")]
    if not holders:
        return None, [Check("holder", False, "no web node holds the VIP")]
    holder = holders[0]
    if cfg.vrrp.preempt:
        top = cfg.web_hosts[0].name
        if holder != top:
            return holder, [Check("holder", False,
                                  f"{holder} holds the VIP; with preempt the highest priority node {top} must")]
        return holder, [Check("holder", True, f"{holder} only (highest priority, preempt)")]
    return holder, [Check("holder", True, f"{holder} only (nopreempt: any single holder)")]


def _state_checks(cluster, holder: Optional[str], states: dict[str, str]) -> list[Check]:
    out = []
    for node, state in states.items():
        want = "MASTER" if node == holder else "BACKUP"
        if holder is None:
            want = "MASTER or BACKUP"
            ok = state in ("MASTER", "BACKUP")
        else:
            ok = state == want
        detail = f"{node}: {state}" if ok else f"{node}: state file says {state}, expected {want}"
        out.append(Check("state", ok, detail))
    return out


def _http_checks(cfg: StackConfig, cluster, holder: Optional[str], check_db: bool) -> list[Check]:
    url = f"http://{cfg.vrrp.vip}:{cfg.app.http_port}/"
    res = http_get(cluster, url)
    if res.get("status") != 200:
        body = (res.get("body") or "").strip().splitlines()[:1]
        return [Check("http", False, f"GET {url}: {res.get('err') or res.get('status')}"
                      + (f" ({body[0]})" if body else ""))]
    by = res.get("by")
    if not check_db:
        ok = holder is not None and by == holder
        return [
            Check("http", ok, f"GET {url} answered by {by or '(no X-Served-By)'}"
                  + ("" if ok else f", but the VIP holder is {holder or 'unknown'}")),
            Check("database", True, "not checked (check_db=False: this cluster has no database)",
                  skipped=True),
        ]
    m = BODY.match((res.get("body") or "").strip())
    if not m:
        return [Check("http", False, f"GET {url}: unexpected body {(res.get('body') or '')[:120]!r}")]
    node, db, goods = m.group(1), m.group(2), m.group(3)
    out = []
    served_ok = holder is not None and node == holder and by in (None, holder)
    out.append(Check("http", served_ok, f"GET {url} answered by {node}"
                     + ("" if served_ok else f", but the VIP holder is {holder or 'unknown'}")))
    dbh = cfg.db_host
    db_ok = db in (dbh.name, dbh.fqdn)
    out.append(Check("database", db_ok, f"the app read {goods} goods from {db}"
                     + ("" if db_ok else f", expected the db host {dbh.fqdn}")))
    return out


def verify_once(cfg: StackConfig, cluster, check_db: bool = True) -> VerifyReport:
    report = VerifyReport(str(cfg.vrrp.vip))
    holder, checks = _holder_checks(cfg, cluster)
    report.holder = holder
    report.checks += checks
    gathered = gather_all(cluster)  # one session per node, all at once
    states = states_from(gathered)
    report.checks += _state_checks(cluster, holder, states)
    report.checks += [Check("adverts", f.ok, f.detail) for f in advert_findings(gathered, states)]
    report.checks += _http_checks(cfg, cluster, holder, check_db)
    return report


def verify(cfg: StackConfig, cluster, deadline: float = 30.0, check_db: bool = True,
           interval: float = 1.0) -> VerifyReport:
    """Run every check until all pass or ``deadline`` s have passed; the last attempt's report."""
    t0 = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        report = verify_once(cfg, cluster, check_db)
        report.attempts, report.elapsed = attempt, time.monotonic() - t0
        if report.ok or report.elapsed + interval > deadline:
            return report
        time.sleep(interval)
