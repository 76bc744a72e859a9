"""The web nodes' event logs, streamed: what the drill watches instead of polling ``ip addr``.

Each web node runs the event reader (``templates/keepalived/webha-events.py.j2``), which writes
keepalived's VRRP transitions (from its notify FIFO, in order), VIP add/remove (from the kernel's
address notifications) and check results to a JSON-lines log. :class:`EventStream` opens ONE
long session per node (SSH or ``nsenter``) running ``webha-events.py follow``: a ``hello`` line
with the node's clock and latest state, then every new line as it is written. Nothing is polled,
so a TCG guest whose every new SSH command costs seconds still reports a transition within
milliseconds.

Times: each event carries the node's wall clock. Guests' clocks differ (up to 1 s on an isolated
network), so an event's time on THIS machine's clock is ``wall - offset``. Every line read gives
``wall - arrival`` = clock difference - that line's delay; ``offset`` is the largest of these (the
least delayed line, as NTP keeps its least delayed sample), so it errs late by the smallest
one-way delay seen (milliseconds on an open session). :meth:`EventStream.max_delay` shows how late
events arrived against their estimated time.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Optional


class EventStreamError(RuntimeError):
    pass


@dataclass
class Event:
    node: str
    rec: dict
    arrived: float  # when the line arrived here
    t: float = 0.0  # this machine's clock (see the module docstring), set by EventStream.events()
    replayed: bool = False  # written before the session began (a returned node's lines since boot)

    @property
    def kind(self) -> str:
        return self.rec.get("kind", "?")


@dataclass
class NodeStream:
    node: str
    proc: subprocess.Popen
    hello: Optional[dict] = None
    offset: Optional[float] = None  # node clock - this machine's clock (estimate)
    events: list[Event] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ended_at: Optional[float] = None
    # A stream opened again after the node came back (EventStream.reopen): every line of a reader
    # run not in this set is new (the node rebooted: its reader's lines since the boot count).
    old_runs: Optional[set] = None

    def runs(self) -> set:
        """The reader runs this stream has seen (its hello's and its events')."""
        out = {e.rec.get("run") for e in self.events}
        out.add((self.hello or {}).get("now", {}).get("run"))
        return out - {None}

    def after_hello(self, rec: dict) -> bool:
        """Written after this session's hello, not in its snapshot (``tail`` repeats the last lines)."""
        now = (self.hello or {}).get("now", {})
        if rec.get("run") == now.get("run"):
            return rec.get("seq", 0) > now.get("seq", 0)
        return rec.get("wall", 0) > (self.hello or {}).get("wall", 0)

    def fresh(self, rec: dict) -> bool:
        """A line for the timeline: written after the hello; for a returned node (``old_runs``),
        any line of a reader run the lost session did not see."""
        if self.old_runs is not None:
            return rec.get("run") not in self.old_runs
        return self.after_hello(rec)


class EventStream:
    """``start()``, then read :meth:`holders_now`, :meth:`holder_changes`, :meth:`states`;
    ``stop()`` at the end. ``cluster``: a :class:`webha.drill.Cluster`."""

    def __init__(self, cluster) -> None:
        self.cluster = cluster
        self.nodes: dict[str, NodeStream] = {}
        self.first: dict[str, NodeStream] = {}  # each node's first stream: the baseline
        self.retired: list[NodeStream] = []  # streams of nodes that were lost (see lose())
        self.lost: list[tuple[float, str]] = []  # (time, node): gone, holds nothing from then
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []

    def script(self, node: str) -> str:
        return f"{self.cluster.layouts[node].paths.script_dir}/webha-events.py"

    def _open(self, node: str, old_runs: Optional[set] = None) -> NodeStream:
        argv = self.cluster.hosts[node].stream_argv([self.script(node), "follow"])
        # stdin stays open: closing it is what ends `follow` on the node (see stop()).
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        ns = NodeStream(node, proc, old_runs=old_runs)
        with self._lock:
            self.nodes[node] = ns
            self.first.setdefault(node, ns)
        th = threading.Thread(target=self._read, args=(ns,), daemon=True)
        th.start()
        self._threads.append(th)
        return ns

    def lose(self, node: str, at: float) -> None:
        """``node`` is gone at ``at`` (its hypervisor lost: the guest no longer exists), so it holds
        nothing from then on. Its session, which would hang on the dead link, is ended here."""
        with self._lock:
            ns = self.nodes.pop(node)
            self.retired.append(ns)
            self.lost.append((at, node))
        _end(ns.proc)

    def reopen(self, node: str, timeout: float = 60) -> None:
        """A new session to ``node`` after it came back (:meth:`lose`): its reader's lines since
        its boot (any run the old session did not see) join the timeline."""
        with self._lock:
            old = set().union(*(r.runs() for r in self.retired if r.node == node))
        deadline = time.monotonic() + timeout
        tries = []
        while True:
            ns = self._open(node, old_runs=old)
            while time.monotonic() < deadline:
                with self._lock:
                    if ns.hello is not None:
                        return
                    if ns.ended_at is not None:
                        break
                time.sleep(0.05)
            tries.append(" ".join(ns.errors) or "no hello line")
            if time.monotonic() >= deadline:  # a booting node's reader may not run yet: retried
                _end(ns.proc)
                raise EventStreamError(f"no event stream from {node} after its return within {timeout:.0f}s "
                                       f"({len(tries)} tries; last: {tries[-1]})")
            time.sleep(1.0)

    def start(self, timeout: float = 30) -> "EventStream":
        for node in self.cluster.web_names:
            self._open(node)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                missing = [n for n, s in self.nodes.items() if s.hello is None]
                dead = [n for n, s in self.nodes.items() if s.ended_at is not None and s.hello is None]
            if not missing:
                return self
            if dead:
                break
            time.sleep(0.05)
        self.stop()
        why = "; ".join(f"{n}: {' '.join(self.nodes[n].errors) or 'no hello line'}" for n in missing)
        raise EventStreamError(f"no event stream from {', '.join(missing)} ({why}); is the "
                               "webha-events reader deployed and running there?")

    def _read(self, ns: NodeStream) -> None:
        assert ns.proc.stdout is not None
        for line in ns.proc.stdout:
            arrived = time.time()
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue  # tail's "file truncated"/"has become accessible" notes go to stderr
            with self._lock:
                if not isinstance(rec, dict) or "wall" not in rec:
                    continue
                if rec.get("kind") == "hello" and ns.hello is None:
                    ns.hello, ns.offset = rec, rec["wall"] - arrived
                    if ns.old_runs is not None:  # a returned node: its state now is an event
                        ns.events.append(Event(ns.node, {**rec, "vip": rec.get("now", {}).get("vip")}, arrived))
                elif ns.hello is not None and ns.fresh(rec):
                    ns.offset = max(ns.offset, rec["wall"] - arrived)
                    ns.events.append(Event(ns.node, rec, arrived, replayed=not ns.after_hello(rec)))
        ns.proc.wait()
        err = ns.proc.stderr.read().strip() if ns.proc.stderr else ""
        with self._lock:
            ns.ended_at = time.time()
            if err or ns.proc.returncode not in (0, -15):
                ns.errors.append(err or f"exited {ns.proc.returncode}")

    def stop(self) -> None:
        for ns in self.nodes.values():
            try:
                ns.proc.stdin.close()  # follow's signal to stop its tail on the node
            except (OSError, AttributeError):
                pass
        for ns in self.nodes.values():
            try:
                ns.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                pass
            _end(ns.proc)
        for th in self._threads:
            th.join(timeout=5)

    # ------------------------------------------------------------------ views
    def events(self) -> list[Event]:
        with self._lock:
            out = []
            for ns in [*self.retired, *self.nodes.values()]:
                for e in ns.events:
                    e.t = e.rec["wall"] - ns.offset
                    out.append(e)
            for at, node in self.lost:
                out.append(Event(node, {"kind": "lost", "vip": False}, at, at))
        return sorted(out, key=lambda e: e.t)

    def baseline(self) -> dict[str, Optional[bool]]:
        """Each node's "holds the VIP" in its hello line (None: the reader had not read it)."""
        with self._lock:
            return {n: (ns.hello or {}).get("now", {}).get("vip") for n, ns in self.first.items()}

    def dead(self) -> list[tuple[float, str, str]]:
        """(time, node, why) for every stream that ended: from then on its node is unknown."""
        with self._lock:
            return [(ns.ended_at, n, "; ".join(ns.errors) or "stream ended")
                    for n, ns in self.nodes.items() if ns.ended_at is not None]

    def holder_changes(self) -> list[tuple[float, tuple[str, ...]]]:
        """(time, holders) from the baseline on, every time the set changed."""
        held = dict(self.baseline())
        t0 = min((ns.hello["wall"] - ns.offset for ns in self.first.values() if ns.hello), default=0.0)
        out = [(t0, tuple(n for n in self.cluster.web_names if held.get(n)))]
        for e in self.events():
            if "vip" in e.rec and e.rec["vip"] is not None:
                held[e.node] = bool(e.rec["vip"])
            now = tuple(n for n in self.cluster.web_names if held.get(n))
            if now != out[-1][1]:
                out.append((e.t, now))
        return out

    def holders_now(self) -> list[str]:
        return list(self.holder_changes()[-1][1])

    def states(self) -> list[tuple[float, str, str]]:
        """(time, node, state) of every VRRP state event (keepalived's notify FIFO order)."""
        return [(e.t, e.node, e.rec["state"]) for e in self.events()
                if e.kind == "vrrp" and e.rec.get("state")]

    def notes(self) -> list[tuple[float, str]]:
        """Other events worth a timeline line: check results, keepalived up/down, VIP changes
        keepalived did not announce, reader restarts."""
        out = []
        for e in self.events():
            r = e.rec
            if e.kind == "check":
                out.append((e.t, f"{e.node}: check {r.get('script')} {r.get('status')}"))
            elif e.kind == "keepalived":
                out.append((e.t, f"{e.node}: keepalived {'running' if r.get('up') else 'NOT running'}"))
            elif e.kind == "vip":
                out.append((e.t, f"{e.node}: VIP {'added' if r.get('held') else 'removed'} (address event)"))
            elif e.kind == "reader":
                out.append((e.t, f"{e.node}: event reader {'started' if r.get('started') else 'stopped'}"))
            elif e.kind == "lost":
                out.append((e.t, f"{e.node}: gone with its hypervisor (holds nothing; its event stream ended here)"))
            elif e.kind == "hello":
                out.append((e.t, f"{e.node}: event stream open again (VIP {'held' if r.get('vip') else 'not held'})"))
            elif e.kind == "vrrp" and not r.get("state"):
                out.append((e.t, f"{e.node}: keepalived {r.get('event')} priority {r.get('priority')}"))
        return out

    def offsets(self) -> dict[str, float]:
        with self._lock:
            return {n: ns.offset for n, ns in self.nodes.items() if ns.offset is not None}

    def max_delay(self) -> Optional[float]:
        """The longest an event took to arrive here after its (estimated) time."""
        delays = [e.arrived - e.t for e in self.events() if not e.replayed]
        return max(delays) if delays else None


def _end(proc: subprocess.Popen) -> None:
    """Terminate a session that has not ended (then kill it)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
