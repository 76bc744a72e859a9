#!/usr/bin/env python3
"""Soak (a script, not a test): keepalived's settings under CPU and I/O stress on the lab host.

The namespace lab (real keepalived + nginx) with the given settings idles for ``--minutes``
while Debian's ``stress-ng`` loads every CPU and the disk (``--cpu N --io 1 --hdd 1``), an HTTP
client polls the VIP at 50 req/s. Short adverts are
only worth having if they hold: the figures are the VRRP state changes in keepalived's notify
logs (0 required), holder changes, failed requests and the load average (sampled every 10 s).
Then, with the stress still on, the fault series of bench/failover.py (faults at a random phase).
``--reload-every S`` also reloads keepalived (SIGHUP, what `pulumi up` does) on every web node
every S seconds of the soak: the VRRP processes must survive (same pid) and nothing may move.

    sudo .venv/bin/python bench/soak.py                      # webha defaults, 10 min + 10 runs/fault
    sudo .venv/bin/python bench/soak.py --minutes 2 --runs 0 --variant "vrrp.advertInt=0.2"
    sudo .venv/bin/python bench/soak.py --reload-every 30
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from failover import (  # noqa: E402 (bench/ is the script's directory)
    PREFIX_BASE, REPORT, SCENARIOS, _bench_lab, _variant, describe, keep_logs, stable, table,
    transitions, webha_config,
)

from webha.drill import Client, LabCluster  # noqa: E402
from webha.testbed import netns  # noqa: E402
from webha.testbed.lab import HaLab  # noqa: E402


def stress(workers: int, tmp: str) -> subprocess.Popen:
    exe = shutil.which("stress-ng")
    if not exe:
        raise SystemExit("stress-ng is missing: apt-get install stress-ng (scripts/install-deps.sh)")
    return subprocess.Popen(
        [exe, "--cpu", str(workers), "--io", "1", "--hdd", "1", "--hdd-bytes", "256M",
         "--temp-path", tmp, "--metrics-brief"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def vrrp_pids(lab: HaLab) -> dict[str, str]:
    return {n: lab.vrrp_pid(n) for n in lab.web_names}


def reload_all(lab: HaLab) -> None:
    """SIGHUP to keepalived on every web node: what keepalived-apply.sh does on `pulumi up`."""
    for n in lab.web_names:
        lab.reload_keepalived(n)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--runs", type=int, default=10, help="fault runs per class after the soak")
    ap.add_argument("--variant", default="", metavar="key=val,...", help="webha defaults plus these")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2, help="stress-ng --cpu workers")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--reload-every", type=float, default=0, metavar="S",
                    help="SIGHUP keepalived on every web node every S s of the soak (0: never)")
    ap.add_argument("--json", type=Path, default=REPORT / "soak-latest.json")
    args = ap.parse_args()
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 31)
    rng = random.Random(seed)
    name = "soak"
    cfg = _variant(f"{name}:{args.variant}")[1] if args.variant else webha_config()
    print(f"seed {seed}; {describe(cfg)}", flush=True)
    netns.cleanup_stale(PREFIX_BASE)
    report: dict = {"seed": seed, "settings": describe(cfg), "minutes": args.minutes,
                    "reload_every_s": args.reload_every,
                    "stress": f"stress-ng --cpu {args.workers} --io 1 --hdd 1 --hdd-bytes 256M"}
    adv = float(cfg.vrrp.advert_int)
    hc = cfg.vrrp.health_check
    with tempfile.TemporaryDirectory(prefix="webha-soak-", dir="/var/tmp") as tmp, \
            HaLab(cfg, prefix=netns.new_prefix(PREFIX_BASE)) as lab:
        cluster = LabCluster(lab)
        holder, _ = stable(cluster, 4 * adv + 1.0)
        load0 = os.getloadavg()
        proc = stress(args.workers, tmp)
        loads: list[float] = []
        try:
            time.sleep(2)
            if proc.poll() is not None:
                raise SystemExit(f"stress-ng ended at once: {proc.stdout.read()}")
            client = Client(cluster)
            client.wait_first()
            t0 = time.time()
            vrrp0 = vrrp_pids(lab)
            reloads, next_reload, next_sample = 0, t0 + (args.reload_every or float("inf")), t0 + 10
            print(f"soak: {args.minutes} min on holder {holder}, stress-ng pid {proc.pid}, "
                  f"reload every {args.reload_every or '-'} s", flush=True)
            while time.time() - t0 < args.minutes * 60:
                time.sleep(max(0.0, min(next_reload, next_sample) - time.time()))
                if time.time() >= next_reload:
                    reload_all(lab)
                    reloads += 1
                    next_reload += args.reload_every
                if time.time() >= next_sample:
                    next_sample += 10
                    loads.append(os.getloadavg()[0])
                    print(f"  {time.time() - t0:5.0f} s  load {loads[-1]:.2f}  reloads {reloads}  "
                          f"transitions {len(transitions(cluster, t0, time.time()))}", flush=True)
            t1 = time.time()
            vrrp1 = vrrp_pids(lab)
            requests = client.stop()
            changes = transitions(cluster, t0, t1)
            report["soak"] = {
                "seconds": round(t1 - t0, 1), "holder": holder,
                "transitions": [[round(t - t0, 3), n, s] for t, n, s in changes],
                # VIP moves: MASTER entries in the notify logs (the soak's holder).
                "holder_changes": [[round(t - t0, 3), n] for t, n, st in changes if st == "MASTER"],
                "requests": len(requests), "failed": sum(1 for r in requests if not r["ok"]),
                "reloads": reloads,
                # A VRRP process that died (e.g. SIGKILLed by RLIMIT_RTTIME) has a new pid.
                "vrrp_process_restarts": sum(vrrp0[n] != vrrp1[n] for n in vrrp0),
                "vrrp_process_kills_logged": sum(lab.log(n).count("exited due to signal") for n in lab.web_names),
                "loadavg_1min": {"before": load0[0], "median": statistics.median(loads),
                                 "max": max(loads)},
            }
            s = report["soak"]
            print(f"soak done: {s['seconds']} s, VRRP transitions {len(changes)}, holder changes "
                  f"{len(s['holder_changes'])}, failed requests {s['failed']}/{s['requests']}, "
                  f"reloads {reloads}, VRRP process restarts {s['vrrp_process_restarts']} "
                  f"(kills logged {s['vrrp_process_kills_logged']}), "
                  f"load average (1 min) before {load0[0]:.2f}, median {s['loadavg_1min']['median']:.2f}, "
                  f"max {s['loadavg_1min']['max']:.2f}", flush=True)
            if args.runs:
                observe = max(2.5, 3 * adv + float(hc.interval) * (hc.fall + 1) + 1.5)
                l0 = os.getloadavg()[0]
                results = {name: _bench_lab(lab, name, cfg, list(SCENARIOS), args.runs, rng, observe,
                                            4 * adv + 1.0)}
                report["faults_under_stress"] = {"loadavg_1min": [l0, os.getloadavg()[0]],
                                                 "runs_detail": results}
                print()
                print(table(results))
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, 15)
            try:
                out, _ = proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                out, _ = proc.communicate(timeout=10)
            report["stress_output"] = out[-2000:]
            keep_logs(lab, name)
            # Also after a failure: what was measured up to it.
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(report, indent=1) + "\n")
            print(f"\nseed {seed}; report: {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
