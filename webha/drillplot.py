"""A drill as a picture (PNG, matplotlib) and as a timeline file (JSON).

The picture, on one time axis (seconds from the fault):

* top: who holds the VIP, one band per web node (from the nodes' event logs), keepalived's
  state changes as labelled markers, the fault and the recovery as vertical lines;
* bottom: every client request at the time it was sent, its duration on the y axis, coloured by
  the node that answered it; failed requests as red crosses.
"""

from __future__ import annotations

import json
from pathlib import Path

NODE_COLOURS = ("tab:blue", "tab:orange", "tab:green", "tab:purple")


def timeline(res) -> dict:
    """Everything the drill saw, times in seconds from the fault (this machine's clock)."""
    f0 = res.fault_at
    return {
        "scenario": res.scenario,
        "description": res.description,
        "before": res.before,
        "expected": res.expected,
        "after": res.after,
        "fault_at_epoch": f0,
        "vip_moved_s": res.vip_moved_s,
        "http_moved_s": res.http_moved_s,
        "requests_sent": res.sent,
        "requests_failed": res.failed,
        "flaps": res.flaps,
        "clock_offsets_s": res.offsets,
        "max_event_delay_s": res.max_delay,
        "holders": [[round(t - f0, 4), list(w)] for t, w in res.holders],
        "states": [[round(t - f0, 4), n, s] for t, n, s in res.states],
        "events": [[round(t - f0, 4), what] for t, what in sorted(res.events)],
        "requests": [{"t": round(r["t"] - f0, 4), "d": round(r["d"] - f0, 4), "ok": r["ok"],
                      "by": r["by"], "err": r["err"]} for r in res.requests],
        "recovery_at_s": None if res.recovery_at is None else round(res.recovery_at - f0, 4),
    }


def write(res, out_dir: Path, title: str = "") -> tuple[Path, Path]:
    """``<out_dir>/drill-<scenario>.json`` and ``.png``; returns both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    data = timeline(res)
    js = out_dir / f"drill-{res.scenario}.json"
    js.write_text(json.dumps(data, indent=1) + "\n")
    png = out_dir / f"drill-{res.scenario}.png"
    plot(data, png, nodes=list(res_nodes(res)), title=title)
    return js, png


def res_nodes(res) -> list[str]:
    seen: list[str] = []
    for _, who in res.holders:
        seen += [n for n in who if n not in seen]
    for _, n, _ in res.states:
        if n not in seen:
            seen.append(n)
    for n in (res.before, res.expected):
        if n not in seen:
            seen.append(n)
    return sorted(seen)


def plot(data: dict, path: Path, nodes: list[str], title: str = "") -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colour = {n: NODE_COLOURS[i % len(NODE_COLOURS)] for i, n in enumerate(nodes)}
    reqs = data["requests"]
    end = max([r["d"] for r in reqs] + [t for t, _ in data["holders"]] + [1.0])
    start = min([r["t"] for r in reqs] + [t for t, _ in data["holders"]] + [-0.5])
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(10, 5.5),
                                      gridspec_kw={"height_ratios": [1, 1.6]})

    # Holder bands: one row per node, filled while it holds the VIP.
    rows = {n: i for i, n in enumerate(nodes)}
    spans = data["holders"] + [[end, []]]
    for (t, who), (t_next, _) in zip(spans, spans[1:]):
        for n in who:
            top.broken_barh([(t, t_next - t)], (rows[n] - 0.35, 0.7), color=colour[n], alpha=0.75)
    for t, n, s in data["states"]:
        top.plot([t], [rows[n]], marker="|", color="black", markersize=14)
        top.annotate(s, (t, rows[n] + 0.38), fontsize=7, ha="left", va="bottom")
    top.set_yticks(range(len(nodes)), [f"{n}\nholds VIP" for n in nodes])
    top.set_ylim(-0.6, len(nodes) - 0.2)

    ok = [r for r in reqs if r["ok"]]
    for n in nodes:
        mine = [r for r in ok if r["by"] == n]
        bottom.scatter([r["t"] for r in mine], [1000 * (r["d"] - r["t"]) for r in mine], s=6,
                       color=colour[n], label=f"answered by {n} ({len(mine)})")
    other = [r for r in ok if r["by"] not in colour]
    if other:
        bottom.scatter([r["t"] for r in other], [1000 * (r["d"] - r["t"]) for r in other], s=6,
                       color="grey", label=f"answered, no X-Served-By ({len(other)})")
    bad = [r for r in reqs if not r["ok"]]
    if bad:
        bottom.scatter([r["t"] for r in bad], [1000 * (r["d"] - r["t"]) for r in bad], s=14,
                       marker="x", color="red", label=f"failed ({len(bad)})")
    bottom.set_ylabel("request duration (ms)")
    bottom.set_xlabel("seconds from the fault")
    bottom.legend(loc="upper right", fontsize=8)

    for ax in (top, bottom):
        ax.axvline(0, color="red", linewidth=1.5)
        if data.get("recovery_at_s") is not None:
            ax.axvline(data["recovery_at_s"], color="grey", linestyle="--", linewidth=1)
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlim(start, end)
    top.annotate("fault", (0, len(nodes) - 0.3), color="red", fontsize=8, xytext=(3, 0),
                 textcoords="offset points")
    if data.get("recovery_at_s") is not None:
        top.annotate("recovery", (data["recovery_at_s"], len(nodes) - 0.3), color="grey", fontsize=8,
                     xytext=(3, 0), textcoords="offset points")
    moved = data.get("vip_moved_s")
    http = data.get("http_moved_s")
    head = title or f"drill {data['scenario']}: {data['description']}"
    sub = (f"VIP on {data['expected']} after {moved:.3f} s (event logs), HTTP answered by it after "
           f"{http:.3f} s (client); {data['requests_failed']} of {data['requests_sent']} requests failed"
           if moved is not None and http is not None else
           f"{data['requests_failed']} of {data['requests_sent']} requests failed")
    fig.suptitle(head + "\n" + sub, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
