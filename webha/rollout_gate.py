"""The rollout gate: before a changed VRRP instance is applied, exactly one web node runs keepalived,
and it holds the VIP.

Why: a node that reloads into a new ``virtual_router_id``, version or password while a peer still
runs the old instance does not hear that peer, and both may hold the VIP. ``keepalived-quiesce``
stops every node that does not hold the VIP, but it runs on each node on its own, one after the
other: when the VIP moves while those steps run (a false failover on a starved node, seen in CI),
one node may keep running because it held the VIP when it looked, and another because it held it
when *it* looked. The tier then entered the change with two nodes running: two holders, and a
`pulumi up` that succeeded anyway. The gate looks at every web node at once, from the machine that
runs Pulumi (as the tier check does), and stands down whatever runs next to the current holder;
it passes only when it has seen one holder, running, and nothing else running. No config has been
changed before it passes, so a failing gate leaves the old instance in place.

``python -m webha rollout-gate --config-json FILE_OR_- [--deadline SECONDS]``;
components/web.py runs it between the quiesce steps and the first keepalived-apply.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

from components.config import StackConfig
from components.render import render
from components.topology import keepalived_context

from .executor import ExecError, Executor
from .vip import VipUnreadable, holders as vip_holders


class GateError(RuntimeError):
    """The tier is not in a state a VRRP instance change may be applied to (yet)."""


@dataclass(frozen=True)
class NodeView:
    name: str
    active: bool  # keepalived runs
    change: bool  # keepalived-quiesce marked an instance change that keepalived-start has not ended
    holds: bool  # the VIP is on its interface


@dataclass(frozen=True)
class Plan:
    holder: Optional[str]  # None: no instance change in progress, nothing to do
    stand_down: tuple[str, ...]  # running nodes other than the holder

    @property
    def done(self) -> bool:
        return not self.stand_down


def plan(views: Sequence[NodeView]) -> Plan:
    """What must happen before the change is applied, from one look at every web node.

    Raises :class:`GateError` when no plan makes the change safe: two holders (a split brain
    already), no holder (a failover may be under way: look again), or a holder whose keepalived is
    stopped (the VIP would stay there with no VRRP behind it)."""
    if not any(v.change for v in views):
        return Plan(None, ())
    holding = [v for v in views if v.holds]
    if len(holding) > 1:
        raise GateError("two nodes hold the VIP: " + ", ".join(v.name for v in holding)
                        + " (a split brain before the change; nothing applied)")
    if not holding:
        running = [v.name for v in views if v.active]
        raise GateError("no node holds the VIP (keepalived running on: "
                        + (", ".join(running) or "none") + ")")
    holder = holding[0]
    if not holder.active:
        raise GateError(f"{holder.name} holds the VIP but its keepalived is stopped")
    return Plan(holder.name, tuple(v.name for v in views if v.active and v.name != holder.name))


def node_script(cfg: StackConfig, name: str) -> str:
    return render("scripts/keepalived-gate-node.sh.j2", **keepalived_context(cfg, name))


def _node(ex: Executor, script: str, action: str, timeout: float):
    return ex.run(["bash", "-s", "--", action], input=script, timeout=timeout)


def read_views(cfg: StackConfig, hosts: Mapping[str, Executor], timeout: float = 30) -> list[NodeView]:
    """One look at every web node, in parallel (a TCG guest takes seconds per SSH session)."""
    names = [h.name for h in cfg.web_hosts]
    iface, vip = cfg.network.interface, str(cfg.vrrp.vip)

    def one(name: str) -> tuple[bool, bool]:
        res = _node(hosts[name], node_script(cfg, name), "read", timeout)
        words = dict(w.split("=", 1) for w in res.stdout.split() if "=" in w)
        if res.returncode != 0 or set(words) != {"active", "change"}:
            raise ExecError(f"[{name}] gate read exited {res.returncode}: {(res.stderr or res.stdout).strip()}")
        return words["active"] == "yes", words["change"] == "yes"

    with ThreadPoolExecutor(max_workers=len(names) + 1) as pool:
        held = pool.submit(vip_holders, {n: hosts[n] for n in names}, vip, iface, timeout)
        states = {n: pool.submit(one, n) for n in names}
        holding = set(held.result())  # VipUnreadable: unknown is never "not a holder"
        return [NodeView(n, *states[n].result(), holds=n in holding) for n in names]


def run_gate(cfg: StackConfig, hosts: Mapping[str, Executor], deadline: float = 120,
             log: Callable[[str], None] = print, interval: float = 2.0) -> str:
    """Look, stand down what runs next to the holder, look again; until one look finds nothing to
    do, or ``deadline`` seconds passed (then :class:`GateError` with the last reason)."""
    t0 = time.monotonic()
    last = "not looked yet"
    while True:
        try:
            views = read_views(cfg, hosts)
            p = plan(views)
            if p.holder is None:
                return "no VRRP instance change in progress: nothing to gate"
            if p.done:
                return f"{p.holder} holds the VIP and is the only node running keepalived: the change may go on"
            for name in p.stand_down:
                res = _node(hosts[name], node_script(cfg, name), "stand-down", 60)
                log(f"rollout gate: {name} runs keepalived next to the holder {p.holder}: "
                    + (res.stdout.strip() if res.returncode == 0
                       else f"not stopped (exit {res.returncode}: {res.stderr.strip()})"))
            last = f"stood down {', '.join(p.stand_down)}; looking again"
        except (GateError, VipUnreadable, ExecError) as exc:
            last = str(exc)
        if time.monotonic() - t0 > deadline:
            raise GateError(f"after {deadline:.0f} s: {last}")
        log(f"rollout gate: {last}")
        time.sleep(interval)
