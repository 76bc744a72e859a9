#!/usr/bin/env python3
"""Failover benchmark (a script, not a test): takeover time per fault class and keepalived
settings, on the namespace lab with the real keepalived and nginx, faults at a random phase.

For each settings column and fault class: N runs of ``webha.drill.run_drill`` (a fault on the VIP
holder, an HTTP client polling the VIP at 50 req/s with a 1 s timeout). Before each fault the
drill waits a random ``lead`` (seeded RNG, seed printed) drawn uniformly over the longest of the
advert and check cycles: takeover is 3 adverts + skew after the *last advert received*, which may
be up to one interval before the fault, so a fault at a fixed offset hides the spread.

Reported per row: p50 / p99 / max of the time from the fault to the first HTTP answer from the
new holder through the VIP (p99 interpolated: with 30 runs it lies between the two largest),
failed requests, flaps (MASTER entries beyond the expected one between the fault and the
recovery), and false transitions during the idle part (any VRRP state change in keepalived's
notify log while the tier was quiet before the fault). A table on stdout, a JSON report, and
optionally a plot (PNG, matplotlib) of the distributions.

    sudo .venv/bin/python bench/failover.py                 # 30 runs x 3 faults x 3 settings
    sudo .venv/bin/python bench/failover.py --runs 5 --only webha --scenario nginx-kill
    ... --variant "adv0.2:vrrp.advertInt=0.2"               # an extra column
    ... --seed 1234 --json /tmp/f.json --plot docs/failover.png

Settings:

* ``course`` - the seed course: VRRPv2, advert_int 1, check script every 2 s with weight -20,
  priorities 100/90, preempt (web01 MASTER), PASS auth, unicast; no process or exit tracking.
* ``dev-before`` - stacks/Pulumi.dev.yaml as committed before issue 13 (4065feb): VRRPv2,
  advert_int 1, PASS, check every 1 s fall 1, FAULT, trackProcess (which the lab cannot run).
* ``webha`` - components/config.py's defaults (the vrrp block reduced to vip + router id); the
  dev stack ships these (``dev`` runs the stack file as it is).

The lab cannot run ``vrrp_track_process`` (no proc connector outside the initial network
namespace, see webha/testbed/lab.py): columns without ``trackFile`` catch an nginx crash with the
check script; ``trackFile`` works in the lab (its stand-in for nginx.service runs nginx-exit.sh).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from components.config import parse_config  # noqa: E402
from webha.drill import INJECTED, DrillError, LabCluster, run_drill, single_holder  # noqa: E402
from webha.testbed import netns  # noqa: E402
from webha.testbed.lab import HaLab  # noqa: E402
from webha.stackfile import FAKE_SECRETS, _merge, parse_overrides, read_stack_values  # noqa: E402

DEV = ROOT / "stacks" / "Pulumi.dev.yaml"
SCENARIOS = ("nginx-kill", "keepalived-kill", "link-down")
# Its own lab prefix: a long benchmark is not in the way of the lab tier's stale-lab cleanups.
PREFIX_BASE = "whb"
# Runs made void because an event reader had died (kept in the JSON report with its log).
READER_RESTARTS: list = []
REPORT = Path(os.environ.get("WEBHA_CACHE", Path.home() / ".cache" / "webha")) / "reports"


def _parse(raw: dict):
    secrets = {"dbPassword"} | ({"vrrpAuthPass"} if raw["vrrp"].get("authType") == "PASS" else set())
    raw.update({k: FAKE_SECRETS[k] for k in secrets})
    return parse_config(raw, secrets)


def _dev_with(vrrp: dict | None, extra: dict | None = None):
    raw = read_stack_values(DEV)
    if vrrp is not None:
        raw["vrrp"] = {"vip": raw["vrrp"]["vip"], "virtualRouterId": raw["vrrp"]["virtualRouterId"], **vrrp}
    if extra:
        raw = _merge(raw, extra)
    raw.pop("vrrpAuthPass", None)
    return _parse(raw)


def course_config():
    raw = read_stack_values(DEV)
    hosts = copy.deepcopy(raw["hosts"])
    for h in hosts:
        if h["role"] == "web":
            h["priority"] = {"web01": 100, "web02": 90}[h["name"]]
    return _dev_with({
        "version": 2, "advertInt": 1, "preempt": True, "unicast": True, "authType": "PASS",
        "realtime": False,
        "healthCheck": {"interval": 2, "timeout": 1, "fall": 1, "rise": 1, "weight": -20,
                        "trackProcess": False, "trackFile": False},
    }, {"hosts": hosts})


def dev_before_config():
    return _dev_with({
        "version": 2, "advertInt": 1, "preempt": False, "unicast": True, "strict": False,
        "authType": "PASS", "realtime": False,
        "healthCheck": {"interval": 1, "timeout": 1, "fall": 1, "rise": 2, "weight": 0,
                        "trackProcess": True, "trackFile": False},
    })


def webha_config(extra: dict | None = None):
    return _dev_with({}, extra)


SETTINGS = {
    "course": course_config,
    "dev-before": dev_before_config,
    "webha": webha_config,
    "dev": lambda: _dev_with(None),
}
DEFAULT_SETTINGS = ("course", "dev-before", "webha")


def _variant(spec: str):
    name, _, pairs = spec.partition(":")
    return name, webha_config(parse_overrides(list(filter(None, pairs.split(",")))))


def describe(cfg) -> str:
    v, hc = cfg.vrrp, cfg.vrrp.health_check
    prios = "/".join(str(h.priority) for h in cfg.web_hosts)
    return (f"VRRPv{v.version} advert_int {v.advert_int} prio {prios} "
            f"{'preempt' if v.preempt else 'nopreempt'} {'unicast' if v.unicast else 'multicast'} "
            f"auth {v.auth_type} realtime {v.realtime}; check every {hc.interval}s fall {hc.fall} "
            f"rise {hc.rise} weight {hc.weight}{' (FAULT)' if hc.weight == 0 else ''}; "
            f"trackProcess {hc.track_process} trackFile {hc.track_file}")


def state_log(cluster, node: str) -> list[tuple[float, str, str]]:
    """(time, node, state) lines that notify.sh appends to ``<state_dir>/vrrp.log``."""
    res = cluster.hosts[node].run(["cat", f"{cluster.layouts[node].paths.state_dir}/vrrp.log"], timeout=5)
    out = []
    for line in res.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 5:
            out.append((float(parts[0]), parts[1], parts[4]))
    return out


def last_states(cluster) -> dict[str, str]:
    """Each node's last notified VRRP state (notify scripts may run out of order: a hint only)."""
    out = {}
    for node in cluster.web_names:
        log = state_log(cluster, node)
        out[node] = log[-1][2] if log else "?"
    return out


def stable(cluster, quiet: float, timeout: float = 60) -> tuple[str, float]:
    """Wait for one holder that does not change, and no VRRP state change in the notify logs,
    for ``quiet`` seconds, with every other node BACKUP (the recovery of the last fault, a node
    leaving FAULT after ``rise`` checks, is over). Returns the holder and the (wall clock) start
    of the quiet window: every state change from then until the fault is a false one."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        holder = single_holder(cluster, 20)
        states = last_states(cluster)
        if any(s != "BACKUP" for n, s in states.items() if n != holder):
            time.sleep(0.2)
            continue
        logged = len(transitions(cluster, 0, float("inf")))
        t0, wall0 = time.monotonic(), time.time()
        while time.monotonic() - t0 < quiet and cluster.holders() == [holder]:
            time.sleep(0.1)
        if time.monotonic() - t0 >= quiet and len(transitions(cluster, 0, float("inf"))) == logged:
            return holder, wall0
    raise RuntimeError(f"the VIP did not settle in {timeout} s: holders {cluster.holders()}, "
                       f"last notified states {last_states(cluster)}")


def transitions(cluster, since: float, until: float) -> list[tuple[float, str, str]]:
    """VRRP state changes (notify log) of every web node in [since, until)."""
    return sorted(s for n in cluster.web_names for s in state_log(cluster, n) if since <= s[0] < until)


def cycle(cfg) -> float:
    """The longest periodic timer a fault can land in: advert interval or check interval."""
    return max(float(cfg.vrrp.advert_int), float(cfg.vrrp.health_check.interval))


def bench(name: str, cfg, scenarios, runs: int, rng: random.Random, idle: float) -> dict:
    adv = float(cfg.vrrp.advert_int)
    hc = cfg.vrrp.health_check
    observe = max(2.5, 3 * adv + float(hc.interval) * (hc.fall + 1) + 1.5)
    quiet = max(4 * adv + 1.0, idle)
    with HaLab(cfg, prefix=netns.new_prefix(PREFIX_BASE)) as lab:
        try:
            return _bench_lab(lab, name, cfg, scenarios, runs, rng, observe, quiet)
        finally:
            keep_logs(lab, name)


def keep_logs(lab, name: str) -> None:
    """The lab's logs (keepalived, notify, nginx service) outlive it, next to the JSON report."""
    dest = REPORT / f"failover-logs-{name}"
    shutil.rmtree(dest, ignore_errors=True)
    for node in lab.web_names:
        for src in (Path(lab.paths(node).log_dir), Path(lab.paths(node).state_dir)):
            if src.is_dir():
                # Regular files only (the state dir also holds keepalived's notify FIFO).
                shutil.copytree(src, dest / node / src.name, dirs_exist_ok=True,
                                ignore=lambda d, names: [n for n in names if not (Path(d) / n).is_file()
                                                         and not (Path(d) / n).is_dir()])


def _bench_lab(lab, name, cfg, scenarios, runs, rng, observe, quiet) -> dict:
    out: dict = {}
    cluster = LabCluster(lab)
    print(f"[{name}] lab {lab.prefix}: {describe(lab.cfg)}", flush=True)
    for note in lab.adjustments:
        print(f"[{name}] lab adjustment: {note}", flush=True)
    restarts: list = []
    for scen in scenarios:
        rows = []
        for i in range(runs):
            _, idle_from = stable(cluster, quiet)
            lead = 0.5 + rng.uniform(0, cycle(cfg))
            res = _drill_with_reader(lab, cluster, scen, observe, lead, name, restarts)
            false = transitions(cluster, idle_from, res.fault_at)
            row = {
                "run": i + 1, "lead_s": round(lead, 4), "before": res.before,
                "expected": res.expected, "http_s": res.http_moved_s, "vip_s": res.vip_moved_s,
                "failed": res.failed, "sent": res.sent, "flaps": res.flaps,
                "idle_s": round(res.fault_at - idle_from, 3),
                # How long the fault command itself took (the fault lies inside this window).
                "inject_s": round(next(t for t, e in res.events if e == INJECTED) - res.fault_at, 4),
                "idle_transitions": [[round(t, 3), n, s] for t, n, s in false],
                "verdict": res.failures(),
            }
            rows.append(row)
            print(f"[{name}] {scen} #{i + 1}: {res.before}->{res.expected} lead {lead:.3f} "
                  f"http {fmt(res.http_moved_s)} vip {fmt(res.vip_moved_s)} "
                  f"failed {res.failed}/{res.sent} flaps {res.flaps} idle-transitions {len(false)}"
                  + (f" FAILED: {'; '.join(row['verdict'])}" if row["verdict"] else ""), flush=True)
        out[scen] = rows
    READER_RESTARTS.extend({"settings": name, **r} for r in restarts)
    return out


def _drill_with_reader(lab, cluster, scen, observe, lead, name, restarts):
    """run_drill; a run the drill refused because a node's event reader (webha-events.py) had
    died is void: the reader's log is kept in the report, the reader restarted, the run
    repeated (at most 3 times)."""
    for attempt in range(4):
        try:
            return run_drill(cluster, scen, observe=observe, lead=lead)
        except DrillError as exc:
            if "no live reader" not in str(exc) or attempt == 3:
                raise
            for node in lab.web_names:
                if not os.path.exists(f"{lab.paths(node).state_dir}/events.now.json"):
                    log = lab.log(node, "webha-events.log")[-3000:]
                    restarts.append({"scenario": scen, "node": node, "error": str(exc), "log": log})
                    print(f"[{name}] {scen}: event reader on {node} died, run void, restarted; its log:\n"
                          f"{log}", flush=True)
                    lab.start_events(node)
            stable(cluster, 1.0)


def fmt(v) -> str:
    return f"{v:.2f}" if v is not None else "-"


def p99(values: list[float]) -> float:
    if len(values) < 2:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[98]


def summary(rows: list[dict]) -> dict:
    t = sorted(r["http_s"] for r in rows if r["http_s"] is not None)
    f = [r["failed"] for r in rows]
    return {
        "runs": len(rows), "never_moved": len(rows) - len(t),
        "p50_s": statistics.median(t) if t else None, "p99_s": p99(t) if t else None,
        "max_s": max(t) if t else None,
        "failed_p50": statistics.median(f), "failed_max": max(f),
        "flaps": sum(r["flaps"] for r in rows),
        "idle_transitions": sum(len(r["idle_transitions"]) for r in rows),
        "idle_total_s": round(sum(r["idle_s"] for r in rows), 1),
        "failed_verdicts": sum(1 for r in rows if r["verdict"]),
        "inject_max_s": max((r.get("inject_s", 0) for r in rows), default=None),
    }


def table(results: dict[str, dict]) -> str:
    lines = [
        "| fault | settings | runs | fault -> HTTP on new holder p50 / p99 / max (s) "
        "| failed requests (50 req/s) p50 / max | flaps | false transitions idle (s idle) |",
        "|---|---|---|---|---|---|---|",
    ]
    for scen in SCENARIOS:
        for name, by_scen in results.items():
            rows = by_scen.get(scen)
            if not rows:
                continue
            s = summary(rows)
            miss = f" ({s['never_moved']} never moved)" if s["never_moved"] else ""
            lines.append(
                f"| {scen} | {name} | {s['runs']}{miss} "
                f"| {fmt(s['p50_s'])} / {fmt(s['p99_s'])} / {fmt(s['max_s'])} "
                f"| {s['failed_p50']:g} / {s['failed_max']} | {s['flaps']} "
                f"| {s['idle_transitions']} ({s['idle_total_s']:.0f} s) |"
            )
    return "\n".join(lines)


def plot(results: dict[str, dict], path: Path, title: str) -> None:
    """Takeover times per fault class, one strip of dots + box per settings column."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results)
    fig, axes = plt.subplots(1, len(SCENARIOS), figsize=(4 * len(SCENARIOS), 4), sharey=True)
    for ax, scen in zip(axes, SCENARIOS):
        data = [[r["http_s"] for r in results[n].get(scen, []) if r["http_s"] is not None] for n in names]
        ax.boxplot(data, whis=(0, 100), widths=0.5)
        jitter = random.Random(0)
        for i, d in enumerate(data, start=1):
            ax.plot([i + jitter.uniform(-0.12, 0.12) for _ in d], d, ".", alpha=0.5)
        ax.axhline(0.5, color="red", linestyle="--", linewidth=1)
        ax.set_xticks(range(1, len(names) + 1), names)
        ax.set_title(scen)
        ax.set_yscale("log")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("fault -> first HTTP answer from the new holder (s)")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def merge(paths: list[Path], plot_path: Path | None) -> int:
    """Reports of separate runs (e.g. one process per settings column) as one table and plot."""
    results: dict = {}
    notes = []
    for path in paths:
        rep = json.loads(path.read_text())
        results.update(rep["runs_detail"])
        for name, desc in rep["settings"].items():
            print(f"{name}: {desc}")
        notes.append(f"{'/'.join(rep['settings'])}: seed {rep['seed']}, {rep['runs']} runs, load "
                     f"{rep['loadavg_before'][0]:.1f}->{rep['loadavg_after'][0]:.1f}")
    print()
    print(table(results))
    print("\n" + "; ".join(notes))
    if plot_path:
        plot(results, plot_path, "; ".join(notes) + f"; {os.cpu_count()} CPUs")
        print(f"plot: {plot_path}")
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--scenario", action="append", choices=SCENARIOS)
    ap.add_argument("--only", choices=tuple(SETTINGS), action="append",
                    help=f"settings columns (default: {', '.join(DEFAULT_SETTINGS)})")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME:key=val,...",
                    help="an extra column: webha defaults plus these stack values")
    ap.add_argument("--seed", type=int, default=None, help="RNG seed of the fault phases (default: random)")
    ap.add_argument("--idle", type=float, default=0.0,
                    help="at least this many quiet seconds before each fault (false-transition watch)")
    ap.add_argument("--json", type=Path, default=REPORT / "failover-latest.json")
    ap.add_argument("--plot", type=Path, default=None, help="write a PNG of the distributions")
    ap.add_argument("--merge", type=Path, nargs="+", metavar="REPORT",
                    help="no runs: the table (and --plot) of these JSON reports together")
    args = ap.parse_args()
    if args.merge:
        return merge(args.merge, args.plot)
    if args.runs < 1:
        ap.error("--runs must be at least 1")
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    print(f"seed {seed}", flush=True)
    scenarios = args.scenario or list(SCENARIOS)
    configs = {name: SETTINGS[name]() for name in (args.only or DEFAULT_SETTINGS)}
    for spec in args.variant:
        name, cfg = _variant(spec)
        configs[name] = cfg
    netns.cleanup_stale(PREFIX_BASE)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    results = {name: bench(name, cfg, scenarios, args.runs, rng, args.idle) for name, cfg in configs.items()}
    load_after = os.getloadavg()
    print()
    for name, cfg in configs.items():
        print(f"{name}: {describe(cfg)}")
    print()
    print(table(results))
    elapsed = time.monotonic() - t0
    loads = f"load average before {load_before[0]:.2f} / after {load_after[0]:.2f} (1 min), {os.cpu_count()} CPUs"
    print(f"\nseed {seed}; {args.runs} runs per row; {loads}; total {elapsed:.0f} s")
    report = {
        "seed": seed, "runs": args.runs, "elapsed_s": round(elapsed, 1),
        "loadavg_before": load_before, "loadavg_after": load_after, "cpus": os.cpu_count(),
        "settings": {n: describe(c) for n, c in configs.items()},
        "summary": {n: {s: summary(rows) for s, rows in r.items()} for n, r in results.items()},
        "runs_detail": results,
        "reader_restarts": READER_RESTARTS,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"report: {args.json}")
    if args.plot:
        plot(results, args.plot, f"seed {seed}, {args.runs} runs per box; {loads}")
        print(f"plot: {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
