#!/usr/bin/env python3
"""Failover benchmark (a script, not a test): the seed course's keepalived settings against
webha's defaults, side by side, on the namespace lab with the real keepalived and nginx.

For each scenario and settings: N runs of ``webha.drill.run_drill`` (a fault on the VIP holder,
an HTTP client polling the VIP at 50 req/s with a 1 s timeout), reporting the median and max of
the time from the fault to the first HTTP answer from the new holder through the VIP, failed
requests, and flaps (extra MASTER transitions before recovery).

    sudo .venv/bin/python bench/failover.py            # 10 runs each, ~15 min
    sudo .venv/bin/python bench/failover.py --runs 3 --only webha --scenario nginx-kill
    ... --variant "adv0.2:vrrp.advertInt=0.2"         # an extra column

Settings compared:

* ``seed`` - the course: VRRPv2, advert_int 1, check script every 2 s with weight -20,
  priorities 100/90, preempt (web01 MASTER), no process tracking; PASS auth, unicast.
* ``webha`` - components/config.py defaults (the vrrp block reduced to vip + router id).

The lab cannot run ``vrrp_track_process`` (no proc connector outside the initial network
namespace, see webha/testbed/lab.py), so both columns catch an nginx crash with the check script.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.config import parse_config  # noqa: E402
from webha.drill import LabCluster, run_drill, single_holder  # noqa: E402
from webha.testbed.lab import HaLab, cleanup_stale  # noqa: E402
from webha.stackfile import FAKE_SECRETS, _merge, parse_overrides, read_stack_values  # noqa: E402

DEV = ROOT / "stacks" / "Pulumi.dev.yaml"
SCENARIOS = ("nginx-kill", "keepalived-kill", "link-down")


def seed_config():
    raw = read_stack_values(DEV)
    hosts = copy.deepcopy(raw["hosts"])
    for h in hosts:
        if h["role"] == "web":
            h["priority"] = {"web01": 100, "web02": 90}[h["name"]]
    raw["hosts"] = hosts
    raw["vrrp"] = {
        "vip": raw["vrrp"]["vip"], "virtualRouterId": raw["vrrp"]["virtualRouterId"],
        "version": 2, "advertInt": 1, "preempt": True, "unicast": True, "authType": "PASS",
        "healthCheck": {"interval": 2, "timeout": 1, "fall": 1, "rise": 1, "weight": -20,
                        "trackProcess": False},
    }
    raw.update(FAKE_SECRETS)
    return parse_config(raw, set(FAKE_SECRETS))


def webha_config(extra: dict | None = None):
    raw = read_stack_values(DEV)
    raw["vrrp"] = {"vip": raw["vrrp"]["vip"], "virtualRouterId": raw["vrrp"]["virtualRouterId"]}
    if extra:
        raw = _merge(raw, extra)
    raw["dbPassword"] = FAKE_SECRETS["dbPassword"]
    return parse_config(raw, {"dbPassword"})


def _variant(spec: str):
    name, _, pairs = spec.partition(":")
    return name, webha_config(parse_overrides(list(filter(None, pairs.split(",")))))


def describe(cfg) -> str:
    v, hc = cfg.vrrp, cfg.vrrp.health_check
    prios = "/".join(str(h.priority) for h in cfg.web_hosts)
    return (f"VRRPv{v.version} advert_int {v.advert_int} prio {prios} "
            f"{'preempt' if v.preempt else 'nopreempt'} {'unicast' if v.unicast else 'multicast'}; "
            f"check every {hc.interval}s fall {hc.fall} rise {hc.rise} weight {hc.weight}"
            f"{' (FAULT)' if hc.weight == 0 else ''}; track_process {hc.track_process}")


def stable(cluster, quiet: float, timeout: float = 40) -> str:
    """Wait for one holder that does not change for ``quiet`` seconds (preempt-back included)."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        holder = single_holder(cluster, 20)
        t0 = time.monotonic()
        while time.monotonic() - t0 < quiet and cluster.holders() == [holder]:
            time.sleep(0.1)
        if time.monotonic() - t0 >= quiet:
            return holder
    raise RuntimeError("the VIP did not settle")


def bench(name: str, cfg, scenarios, runs: int) -> dict:
    out: dict = {}
    adv = float(cfg.vrrp.advert_int)
    interval = float(cfg.vrrp.health_check.interval)
    observe = max(2.5, 3 * adv + 2 * interval + 1.5)
    quiet = 4 * adv + 1.0
    with HaLab(cfg) as lab:
        cluster = LabCluster(lab)
        print(f"[{name}] lab {lab.prefix}: {describe(lab.cfg)}", flush=True)
        for scen in scenarios:
            rows = []
            for i in range(runs):
                stable(cluster, quiet)
                res = run_drill(cluster, scen, observe=observe)
                rows.append(res)
                print(f"[{name}] {scen} #{i + 1}: {res.before}->{res.expected} "
                      f"http {fmt(res.http_moved_s)} vip {fmt(res.vip_moved_s)} "
                      f"failed {res.failed}/{res.sent} flaps {res.flaps}", flush=True)
            out[scen] = rows
    return out


def fmt(v) -> str:
    return f"{v:.2f}" if v is not None else "-"


def table(results: dict[str, dict], runs: int) -> str:
    names = list(results)
    lines = [
        "| scenario | settings | runs | fault -> HTTP on new holder: median / max (s) "
        "| failed requests at 50 req/s: median / max | flaps |",
        "|---|---|---|---|---|---|",
    ]
    for scen in SCENARIOS:
        for name in names:
            rows = results[name].get(scen)
            if not rows:
                continue
            t = [r.http_moved_s for r in rows if r.http_moved_s is not None]
            miss = len(rows) - len(t)
            f = [r.failed for r in rows]
            lines.append(
                f"| {scen} | {name} | {len(rows)}{f' ({miss} never moved)' if miss else ''} "
                f"| {fmt(statistics.median(t)) if t else '-'} / {fmt(max(t)) if t else '-'} "
                f"| {statistics.median(f):g} / {max(f)} | {sum(r.flaps for r in rows)} |"
            )
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--scenario", action="append", choices=SCENARIOS)
    ap.add_argument("--only", choices=("seed", "webha"), action="append")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:key=val,...",
                    help="an extra column: webha defaults plus these stack values")
    args = ap.parse_args()
    scenarios = args.scenario or list(SCENARIOS)
    configs = {"seed": seed_config(), "webha": webha_config()}
    if args.only:
        configs = {k: v for k, v in configs.items() if k in args.only}
    for spec in args.variant:
        name, cfg = _variant(spec)
        configs[name] = cfg
    cleanup_stale()
    t0 = time.monotonic()
    results = {name: bench(name, cfg, scenarios, args.runs) for name, cfg in configs.items()}
    print()
    for name, cfg in configs.items():
        print(f"{name}: {describe(cfg)}")
    print()
    print(table(results, args.runs))
    print(f"\n(total {time.monotonic() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
