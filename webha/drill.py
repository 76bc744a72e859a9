"""Failover drills: inject a fault on the VIP holder, watch the VIP move, count what clients saw.

A drill runs against a :class:`Cluster`: the web hosts as :class:`~webha.executor.Executor`\\ s,
where their files are (:class:`~webha.executor.HostLayout`), and where clients sit. The lab
(:class:`LabCluster`) and real hosts over SSH (:class:`SshCluster`) differ only in how a link is
pulled and how a daemon is started again.

Measured per drill:

* the holder before the fault: a fresh read of every node's addresses (:func:`webha.vip.holders`);
* from then on, the web nodes' event logs, streamed (:class:`webha.events.EventStream`, one
  session per node): keepalived's state changes in its notify-FIFO order, VIP added/removed on
  each node (a node "holds" the VIP when the address is on its interface; two at once is a split
  brain), check results, keepalived up/down. Nothing is polled over SSH, so the timeline is as
  exact on slow guests as in the lab; the holder at the end is read fresh again;
* an HTTP client polling ``http://VIP/healthz`` (50 req/s, new connection each, 1 s timeout):
  failed requests, and the time from the fault to the first answer from the new holder
  (the ``X-Served-By`` header).
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional

from components.config import StackConfig

from .events import EventStream, EventStreamError
from .executor import ExecError, Executor, HostLayout, ssh_executors
from .vip import VipUnreadable
from .vip import holders as vip_holders

ROOT = Path(__file__).resolve().parent.parent
SCENARIOS = ("nginx-kill", "keepalived-kill", "keepalived-stop", "link-down", "vrrp-block", "hypervisor-loss")
DESCRIPTIONS = {
    "nginx-kill": "nginx master and workers on the holder killed with SIGKILL (crash)",
    "keepalived-kill": "keepalived on the holder killed with SIGKILL (silent death, no advert)",
    "keepalived-stop": "keepalived on the holder stopped cleanly (priority-0 advert)",
    "link-down": "the holder's link pulled (switch port down)",
    "vrrp-block": "nftables on every web node drops VRRP (IP protocol 112), as an unopened "
    "firewall does: split-brain drill",
    "hypervisor-loss": "the holder's whole hypervisor lost: every guest's QEMU SIGKILLed and its "
    "link to the LAN cut; on return `pulumi up --refresh` starts the guests again",
}
NFT_TABLE = "webha_drill"
INJECTED = "fault command returned"
# The hypervisor-loss drill fails when the tier has no VIP holder for longer than the expected
# node's master-down interval plus this (the failover itself takes up to that interval).
NO_HOLDER_MARGIN = 2.0


def master_down_s(cfg: StackConfig, node: str) -> float:
    """keepalived's master-down interval for ``node`` as backup: 3 adverts + its skew
    ((256 - priority) / 256 s in VRRPv2; scaled by the advert interval in VRRPv3)."""
    adv = float(cfg.vrrp.advert_int)
    skew = (256 - cfg.host(node).priority) / 256 * (adv if cfg.vrrp.version == 3 else 1.0)
    return 3 * adv + skew


class DrillError(RuntimeError):
    pass


# --------------------------------------------------------------------------- clusters
@dataclass
class Cluster:
    """The web nodes of one stack, reached through executors."""

    cfg: StackConfig
    hosts: dict[str, Executor]
    layouts: dict[str, HostLayout]
    client_prefix: list[str] = field(default_factory=list)

    @property
    def web_names(self) -> list[str]:
        return [h.name for h in self.cfg.web_hosts]

    @property
    def vip(self) -> str:
        return str(self.cfg.vrrp.vip)

    def holders(self) -> list[str]:
        """Web nodes holding the VIP; raises :class:`webha.vip.VipUnreadable` if a node cannot be
        read (unknown is never "not a holder")."""
        return vip_holders({n: self.hosts[n] for n in self.web_names}, self.vip, self._interface())

    def _interface(self) -> str:
        names = {self.layouts[n].interface for n in self.web_names}
        if len(names) != 1:
            raise DrillError(f"web nodes use different interfaces: {sorted(names)}")
        return names.pop()

    # faults ---------------------------------------------------------------
    # The kills print the node's clock just before the signal: the drill's fault time, exact
    # even when starting the command (a new SSH session) took seconds.
    def kill_nginx(self, node: str) -> Optional[float]:
        pidfile = self.layouts[node].paths.nginx_pid
        res = self.hosts[node].run(
            # Master first: a master that outlives a worker by a microsecond forks a new one.
            ["sh", "-c", 'm=$(cat "$1") || exit 1; w=$(pgrep -P "$m"); date +%s.%N; kill -KILL "$m" || exit 1; '
             'for p in $w; do kill -KILL "$p" 2>/dev/null; done; exit 0', "sh", pidfile],
            check=True,
        )
        return _clock(res.stdout)

    def kill_keepalived(self, node: str, sig: str = "KILL") -> Optional[float]:
        lay = self.layouts[node]
        # One kill(1) for VRRP child and parent, the child first: killed one by one, the child
        # gets the parent's death signal, shuts down cleanly and sends a priority-0 advert (not
        # silent); a child on SCHED_RR (vrrp_rt_priority) even runs between two kill(2) calls.
        script = ('for f in "$@"; do shift; p=$(cat "$f" 2>/dev/null) && set -- "$@" "$p"; done; '
                  '[ $# -gt 0 ] && date +%%s.%%N && kill -%s "$@"' % sig)
        res = self.hosts[node].run(
            ["sh", "-c", script, "sh", lay.vrrp_pid, lay.keepalived_pid] if sig == "KILL"
            else ["sh", "-c", script, "sh", lay.keepalived_pid],
            check=True,
        )
        return _clock(res.stdout)

    def block_vrrp(self, node: str) -> None:
        """Drop incoming VRRP on ``node`` (the seed's "firewall not opened" cause of split brain)."""
        rules = (
            f"table inet {NFT_TABLE} {{\n"
            "  chain input {\n"
            "    type filter hook input priority -10; policy accept;\n"
            "    ip protocol 112 counter drop\n"
            "  }\n"
            "}\n"
        )
        self.hosts[node].run(["nft", "-f", "-"], input=rules, check=True)

    def unblock_vrrp(self, node: str) -> None:
        self.hosts[node].run(["nft", "delete", "table", "inet", NFT_TABLE])

    def link(self, node: str, up: bool) -> None:
        raise NotImplementedError

    def start_nginx(self, node: str) -> None:
        raise NotImplementedError

    def start_keepalived(self, node: str) -> None:
        raise NotImplementedError

    def lose_hypervisor(self, hv: str) -> None:
        raise DrillError("this target cannot take a hypervisor away")

    def restore_hypervisor(self, hv: str) -> None:
        raise NotImplementedError


class LabCluster(Cluster):
    def __init__(self, lab) -> None:
        super().__init__(lab.cfg, {n: lab.hosts[n] for n in lab.web_names}, lab.layouts, lab.client_argv())
        self.lab = lab

    def link(self, node: str, up: bool) -> None:
        self.lab.link(node, up)

    def start_nginx(self, node: str) -> None:
        self.lab.start_nginx(node)

    def start_keepalived(self, node: str) -> None:
        self.lab.start_keepalived(node)


# The hypervisor-loss recovery (`up-local.sh --refresh`: hypervisors-up.sh, then `pulumi up
# --refresh`) takes 10-30 s on this machine; far longer means it hangs.
RECOVERY_TIMEOUT = 900.0


def run_recovery(argv: list[str], timeout: float, grace: float = 30.0, out=None) -> None:
    """Runs ``argv`` (output to ``out``, default our stderr) in a process group of its own; fails
    when it exits non-zero or has not finished after ``timeout`` s. Then the whole group ends
    (SIGTERM: pulumi cancels; after ``grace`` s SIGKILL): killing only the script left its
    `pulumi up` running, holding the stack's lock and our stderr, so whoever waits for the drill's
    output waited on it too (the twohv run of 2026-12-04 16:54)."""
    out = sys.stderr if out is None else out
    proc = subprocess.Popen(argv, cwd=str(ROOT), stdout=out, stderr=out, start_new_session=True)
    try:
        rc = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        left = end_process_group(proc, grace)
        raise DrillError(f"recovery `{shlex.join(argv)}` did not finish in {timeout:.0f} s; ended its process group"
                         + (f" (SIGKILL after {grace:.0f} s: the stack may stay locked; once no pulumi runs for it, "
                            "`pulumi cancel --yes` on that stack removes the lock, e.g. "
                            "`WEBHA_STACK=twohv scripts/pulumi-local.sh cancel --yes`)" if left else "")
                         ) from None
    if rc != 0:
        raise DrillError(f"recovery `{shlex.join(argv)}` exited {rc}")


def end_process_group(proc: subprocess.Popen, grace: float) -> bool:
    """SIGTERM to ``proc``'s process group (its own session), SIGKILL to what is left after
    ``grace`` s; returns whether anything had to be SIGKILLed. Waits for the group to go."""
    pgid = proc.pid

    def alive() -> bool:  # a live member: zombies do not count (their parent or init reaps them)
        proc.poll()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(") ", 1)[1].split()
            except (OSError, IndexError):
                continue
            if fields[0] != "Z" and fields[2] == str(pgid):
                return True
        return False

    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + grace
    while alive() and time.monotonic() < deadline:
        time.sleep(0.1)
    killed = alive()
    if killed:
        os.killpg(pgid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while alive() and time.monotonic() < deadline:
            time.sleep(0.05)
    proc.wait()
    return killed


class SshCluster(Cluster):
    """A deployed stack (systemd units ``nginx`` and ``keepalived``), clients on this machine.

    ``hypervisors`` (a :class:`webha.testbed.hypervisors.LocalHypervisors`) and ``recover`` (the
    argv that brings a returned hypervisor's guests back, ``pulumi up --refresh``) enable the
    hypervisor-loss scenario."""

    def __init__(self, cfg: StackConfig, known_hosts: str,
                 hypervisors=None, recover: Optional[list[str]] = None) -> None:
        names = [h.name for h in cfg.web_hosts]
        iface = cfg.network.interface
        super().__init__(
            cfg, dict(ssh_executors(cfg, known_hosts, names)), {n: HostLayout(interface=iface) for n in names}, []
        )
        self.hypervisors, self.recover = hypervisors, recover

    def lose_hypervisor(self, hv: str) -> None:
        if self.hypervisors is None or self.recover is None:
            raise DrillError("hypervisor-loss needs this machine's hypervisors (scripts/hypervisors-up.sh) "
                             "and a recovery command")
        self.hypervisors.lose(hv)

    def restore_hypervisor(self, hv: str) -> None:
        """The host is back: link up, then `pulumi up --refresh` (its output goes to our stderr)."""
        self.hypervisors.restore(hv)
        run_recovery(self.recover, RECOVERY_TIMEOUT)

    def link(self, node: str, up: bool) -> None:
        # Over SSH the link cannot be plugged back from here: the host restores it itself.
        if not up:
            iface = self.layouts[node].interface
            self.hosts[node].spawn(
                ["sh", "-c", f"ip link set {iface} down; sleep 20; ip link set {iface} up"],
                "/var/log/webha/drill.log",
            )

    def start_nginx(self, node: str) -> None:
        self.hosts[node].run(["systemctl", "start", "nginx"], timeout=30, check=True)

    def start_keepalived(self, node: str) -> None:
        self.hosts[node].run(["systemctl", "start", "keepalived"], timeout=30, check=True)


# --------------------------------------------------------------------------- observers
class Client:
    """The HTTP poller (:mod:`webha.poller`) running where the clients are."""

    def __init__(self, cluster: Cluster, rate: float = 50, timeout: float = 1.0, path: str = "/healthz"):
        url = f"http://{cluster.vip}:{cluster.cfg.app.http_port}{path}"
        argv = [*cluster.client_prefix, sys.executable, "-m", "webha.poller", url,
                "--rate", str(rate), "--timeout", str(timeout)]
        self.proc = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            cwd=str(ROOT), env={"PYTHONPATH": str(ROOT), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        self.records: list[dict] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                rec = json.loads(line)
            except json.JSONDecodeError:
                continue
            if "t" in rec:
                self.records.append(rec)

    def wait_first(self, timeout: float = 5) -> None:
        t0 = time.monotonic()
        while not self.records:
            if self.proc.poll() is not None:
                raise DrillError(f"HTTP poller died: {self.proc.stderr.read().strip()}")
            if time.monotonic() - t0 > timeout:
                raise DrillError("HTTP poller produced nothing")
            time.sleep(0.02)

    def stop(self, grace: float = 1.2) -> list[dict]:
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=grace + 5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=5)
        self._reader.join(timeout=5)
        return list(self.records)


# --------------------------------------------------------------------------- report
@dataclass
class DrillResult:
    scenario: str
    description: str
    before: str
    expected: str
    fault_at: float
    holders: list[tuple[float, tuple[str, ...]]]
    states: list[tuple[float, str, str]]
    requests: list[dict]
    after: list[str]
    events: list[tuple[float, str]] = field(default_factory=list)
    detector: Optional[str] = None
    recovery_at: Optional[float] = None
    unreadable: list[tuple[float, tuple[str, ...]]] = field(default_factory=list)
    # node -> its clock minus this machine's (from its event stream's hello line)
    offsets: dict[str, float] = field(default_factory=dict)
    max_delay: Optional[float] = None  # the longest an event took to arrive here
    victim: Optional[str] = None
    rejoined_at: Optional[float] = None
    # No VIP holder for longer than this (s) during the scenario fails the drill (None: reported only).
    max_no_holder: Optional[float] = None
    observed_until: Optional[float] = None  # when the event streams stopped

    def no_holder(self) -> list[tuple[float, float]]:
        """(start, end) of every time after the fault when no node held the VIP, by the event
        streams (a node lost with its hypervisor holds nothing); one still open at the end of
        the observation ends there."""
        end = self.observed_until if self.observed_until is not None else max(
            [t for t, _ in self.holders] + [self.fault_at])
        out = []
        for i, (t, who) in enumerate(self.holders):
            if who:
                continue
            stop = self.holders[i + 1][0] if i + 1 < len(self.holders) else end
            a, b = max(t, self.fault_at), min(stop, end)
            if b > a:
                out.append((a, b))
        return out

    @property
    def longest_no_holder(self) -> Optional[tuple[float, float]]:
        gaps = self.no_holder()
        return max(gaps, key=lambda g: g[1] - g[0]) if gaps else None

    @property
    def rejoin_s(self) -> Optional[float]:
        """From the start of the recovery to the victim reporting BACKUP again."""
        if self.rejoined_at is None or self.recovery_at is None:
            return None
        return self.rejoined_at - self.recovery_at

    def failures(self) -> list[str]:
        """What the scenario expected and did not see (empty = the drill passed)."""
        out = []
        if self.scenario == "vrrp-block":
            if len(self.max_holders) < 2:
                out.append("no second VIP holder appeared while VRRP was blocked (expected split brain)")
        else:
            if self.vip_moved_s is None:
                out.append(f"the VIP never reached {self.expected}")
            if self.http_moved_s is None:
                out.append(f"HTTP via the VIP was never answered by {self.expected}")
        if len(self.after) != 1:
            out.append(f"{len(self.after)} VIP holders at the end ({', '.join(self.after) or 'none'})")
        if self.scenario == "hypervisor-loss" and self.recovery_at is not None:
            if self.rejoined_at is None:
                out.append(f"{self.victim} did not rejoin as BACKUP")
            if self.after != [self.expected]:
                out.append(f"the VIP moved back to {', '.join(self.after)} when {self.victim} returned")
        if self.max_no_holder is not None and self.scenario != "vrrp-block":
            f0 = self.fault_at
            for a, b in self.no_holder():
                if b - a > self.max_no_holder:
                    out.append(f"no VIP holder for {b - a:.1f} s, from {a - f0:+.1f} s to {b - f0:+.1f} s "
                               f"after the fault (bound {self.max_no_holder:.1f} s)")
            for t, who in self.unreadable:
                if who and (self.observed_until is None or t < self.observed_until):
                    # unknown is not "no holder": a gap from there on could not be seen
                    out.append(f"event stream of {', '.join(who)} lost at {t - f0:+.1f} s: whether the tier "
                               "had a VIP holder from then on is unknown")
        return out

    @property
    def max_holders(self) -> list[str]:
        """The largest set of simultaneous VIP holders seen after the fault."""
        sets = [w for t, w in self.holders if t >= self.fault_at]
        return list(max(sets, key=len)) if sets else []

    @property
    def vip_moved_s(self) -> Optional[float]:
        if self.scenario == "vrrp-block":
            return None
        for t, who in self.holders:
            if t >= self.fault_at and self.expected in who:
                return t - self.fault_at
        return None

    @property
    def http_moved_s(self) -> Optional[float]:
        if self.scenario == "vrrp-block":
            return None
        done = [r["d"] for r in self.requests if r["ok"] and r["by"] == self.expected and r["d"] >= self.fault_at]
        return (min(done) - self.fault_at) if done else None

    @property
    def failed(self) -> int:
        return sum(1 for r in self.requests if not r["ok"])

    @property
    def sent(self) -> int:
        return len(self.requests)

    @property
    def flaps(self) -> int:
        """MASTER entries after the first one on the new holder (0 = the VIP moved once)."""
        end = self.recovery_at or float("inf")
        masters = [(t, n) for t, n, s in self.states if s == "MASTER" and self.fault_at <= t < end]
        return max(0, len(masters) - 1)

    def text(self) -> str:
        f0 = self.fault_at
        lines = [f"== drill {self.scenario}: {self.description}",
                 f"   VIP holder before: {self.before}; expected after: {self.expected}"]
        tl: list[tuple[float, str]] = [(f0, f"FAULT injected on {self.before}")]
        tl += [(t, f"VIP held by: {', '.join(w) if w else '(nobody)'}") for t, w in self.holders]
        tl += [(t, f"keepalived {n} -> {s}") for t, n, s in self.states]
        tl += [(t, f"event stream of {', '.join(w)} lost (holder unknown from here)" if w else
                "every node readable again") for t, w in self.unreadable]
        tl += self.events
        if self.offsets:
            lines.append("   event times from the nodes' logs; node clock - this machine's: "
                         + ", ".join(f"{n} {o:+.3f} s" for n, o in sorted(self.offsets.items()))
                         + (f"; events arrived here at most {self.max_delay:.3f} s after" if self.max_delay is not None else ""))
        lines.append("   timeline (s from fault):")
        for t, what in sorted(tl):
            lines.append(f"   {t - f0:+8.3f}  {what}")
        fmt = lambda v: f"{v:.3f} s" if v is not None else "never"  # noqa: E731
        if self.scenario != "vrrp-block":
            lines.append(f"   VIP on {self.expected} after: {fmt(self.vip_moved_s)}")
            lines.append(f"   HTTP via VIP answered by {self.expected} after: {fmt(self.http_moved_s)}")
            gap = self.longest_no_holder
            bound = f" (bound {self.max_no_holder:.1f} s)" if self.max_no_holder is not None else ""
            lines.append("   longest time without a VIP holder: "
                         + (f"{gap[1] - gap[0]:.3f} s, {gap[0] - f0:+.3f} s to {gap[1] - f0:+.3f} s"
                            if gap else "0 s") + bound)
        most = self.max_holders
        if len(most) > 1:
            lines.append(f"   VIP on several nodes at once during the drill: {', '.join(most)}")
        lines.append(f"   client requests: {self.sent} sent, {self.failed} failed")
        if self.scenario == "hypervisor-loss":
            lines.append(f"   {self.victim} back as BACKUP after the recovery started: {fmt(self.rejoin_s)}")
        lines.append(f"   flaps after the move (before recovery): {self.flaps}")
        lines.append(f"   VIP holder(s) at the end: {', '.join(self.after) or '(nobody)'}")
        if self.detector:
            lines.append("   split-brain detector during the fault:")
            lines += ["     " + l for l in self.detector.splitlines()]
        fails = self.failures()
        lines.append("   verdict: " + ("FAILED: " + "; ".join(fails) if fails else "ok"))
        return "\n".join(lines)


def wait_until(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``pred``; a node that cannot be read counts as "not yet", and is named on timeout."""
    t0 = time.monotonic()
    unknown: Optional[VipUnreadable] = None
    while True:
        try:
            if pred():
                return
            unknown = None
        except VipUnreadable as exc:
            unknown = exc
        if time.monotonic() - t0 > timeout:
            raise DrillError(f"timed out after {timeout:.1f}s waiting for {what}"
                             + (f" ({unknown})" if unknown else ""))
        time.sleep(interval)


def single_holder(cluster: Cluster, timeout: float = 15) -> str:
    got: list[str] = []

    def one() -> bool:
        got[:] = cluster.holders()
        return len(got) == 1

    try:
        wait_until(one, timeout, "exactly one VIP holder")
    except DrillError as exc:
        raise DrillError(f"{exc}; last seen: {', '.join(got) or 'no holder'}") from None
    return got[0]


def run_drill(
    cluster: Cluster,
    scenario: str,
    observe: float = 4.0,
    recover: bool = True,
    rate: float = 50,
    timeout: float = 1.0,
    rejoin_timeout: float = 600,
    lead: float = 0.5,
    max_no_holder: Optional[float] = None,
) -> DrillResult:
    """One fault on the current VIP holder; returns what happened. Leaves one holder behind.

    ``lead``: seconds of normal traffic before the fault; bench/failover.py draws it at random so
    that faults land at a random phase of the advert and check cycles.
    ``max_no_holder``: a time without any VIP holder longer than this fails the drill; the
    hypervisor-loss scenario defaults to the new holder's master-down interval + NO_HOLDER_MARGIN
    (the failover, then nothing more: the tier keeps its holder while the lost host returns)."""
    if scenario not in SCENARIOS:
        raise DrillError(f"unknown scenario {scenario!r}; one of {', '.join(SCENARIOS)}")
    before = single_holder(cluster)
    others = [n for n in cluster.web_names if n != before]
    lost_hv = None
    if scenario == "hypervisor-loss":
        lost_hv = cluster.cfg.hypervisor_of(cluster.cfg.host(before)).name
        others = [n for n in others if cluster.cfg.hypervisor_of(cluster.cfg.host(n)).name != lost_hv]
        if not others:
            raise DrillError(f"every web node is on {lost_hv}: losing it leaves no one to take the VIP")
    expected = max(others, key=lambda n: cluster.cfg.host(n).priority)
    if scenario == "hypervisor-loss" and max_no_holder is None:
        max_no_holder = master_down_s(cluster.cfg, expected) + NO_HOLDER_MARGIN
    victim = before
    if scenario == "vrrp-block":
        # Once VRRP flows again the highest priority master wins and the other one yields.
        expected = cluster.web_names[0]
    try:
        stream = EventStream(cluster).start()
    except EventStreamError as exc:
        raise DrillError(str(exc)) from None
    client: Optional[Client] = None
    events: list[tuple[float, str]] = []
    detector_text = None
    restore: Callable[[], None] = lambda: None  # noqa: E731
    recovery_at = None
    rejoined_at = None
    node_clock: Optional[float] = None
    try:
        _agree(stream, before)
        client = Client(cluster, rate=rate, timeout=timeout)
        client.wait_first()
        time.sleep(lead)
        fault_at = time.time()
        if scenario == "nginx-kill":
            node_clock = cluster.kill_nginx(victim)
            restore = lambda: cluster.start_nginx(victim)  # noqa: E731
        elif scenario == "keepalived-kill":
            node_clock = cluster.kill_keepalived(victim, "KILL")
            restore = lambda: cluster.start_keepalived(victim)  # noqa: E731
        elif scenario == "keepalived-stop":
            node_clock = cluster.kill_keepalived(victim, "TERM")
            restore = lambda: (wait_until(lambda: not _alive(cluster, victim), 10, "keepalived to stop"),  # noqa: E731
                               cluster.start_keepalived(victim))
        elif scenario == "link-down":
            cluster.link(victim, False)
            restore = lambda: cluster.link(victim, True)  # noqa: E731
        elif scenario == "hypervisor-loss":
            cluster.lose_hypervisor(lost_hv)
            lost_at = time.time()
            events.append((lost_at, f"{lost_hv} lost (guests killed, link cut)"))
            for node in cluster.web_names:
                if cluster.cfg.hypervisor_of(cluster.cfg.host(node)).name == lost_hv:
                    stream.lose(node, lost_at)
            restore = lambda: cluster.restore_hypervisor(lost_hv)  # noqa: E731
        elif scenario == "vrrp-block":
            for node in cluster.web_names:
                cluster.block_vrrp(node)
            restore = lambda: [cluster.unblock_vrrp(n) for n in cluster.web_names]  # noqa: E731
        # When the fault command returned (the fault lies between the send and this).
        events.append((time.time(), INJECTED))
        offset = stream.offsets().get(victim)
        if node_clock is not None and offset is not None:
            sent, fault_at = fault_at, node_clock - offset
            events.append((sent, f"fault command sent to {victim} (the fault itself: {victim}'s clock)"))
        if scenario == "vrrp-block":
            try:
                wait_until(lambda: len(stream.holders_now()) > 1, observe + 5, "a second VIP holder")
            except DrillError as exc:
                # Not swallowed: the result's failures() says so (the stream saw no second one).
                events.append((time.time(), f"no second holder appeared: {exc}"))
            from .splitbrain import detect

            detector_text = detect(cluster).text()
            time.sleep(0.3)
        else:
            time.sleep(observe)
        if recover:
            where = "all web nodes" if scenario == "vrrp-block" else victim
            recovery_at = time.time()
            events.append((recovery_at, f"recovery started on {where}"))
            restore()
            events.append((time.time(), f"recovery done on {where}"))
            if scenario == "hypervisor-loss":
                rejoined_at = _wait_rejoin(cluster, victim, rejoin_timeout)
                events.append((rejoined_at, f"{victim} back as BACKUP"))
                try:
                    stream.reopen(victim)  # its events from its boot on, and from now
                except EventStreamError as exc:
                    raise DrillError(str(exc)) from None
                time.sleep(observe)  # the returned node settled: the VIP must stay put
            time.sleep(1.0)
    finally:
        observed_until = time.time()  # streams that end after this were ended by stop()
        requests = client.stop() if client else []
        stream.stop()
    after_holder = single_holder(cluster, 15)
    return DrillResult(
        scenario, DESCRIPTIONS[scenario], before, expected,
        fault_at, stream.holder_changes(), stream.states(), requests, [after_holder],
        events + stream.notes(), detector_text, recovery_at,
        [(t, (n,)) for t, n, _ in stream.dead()], stream.offsets(), stream.max_delay(),
        victim=victim, rejoined_at=rejoined_at, max_no_holder=max_no_holder, observed_until=observed_until,
    )


def _clock(text: str) -> Optional[float]:
    try:
        return float(text.split()[0])
    except (IndexError, ValueError):
        return None


def _agree(stream: EventStream, before: str, timeout: float = 5) -> None:
    """The event logs must say what the fresh read of the addresses said (an event in flight gets
    ``timeout`` s); a disagreement is an error, never a timeline starting from a wrong holder."""
    t0 = time.monotonic()
    while True:
        seen = stream.holders_now()
        if seen == [before]:
            return
        if time.monotonic() - t0 > timeout:
            raise DrillError(f"the nodes' event logs say the VIP is held by {', '.join(seen) or 'nobody'}, "
                             f"their addresses said {before}: is webha-events running on every web node?")
        time.sleep(0.05)


def _wait_rejoin(cluster: Cluster, node: str, timeout: float) -> float:
    """Until ``node`` answers again and reports BACKUP; returns when. A node that cannot be read
    yet (booting) is "not yet"; any other state at the deadline fails the drill."""
    t0, last = time.monotonic(), "unknown"
    path = f"{cluster.layouts[node].paths.state_dir}/vrrp.state"
    while time.monotonic() - t0 < timeout:
        try:
            last = cluster.hosts[node].run(["cat", path], timeout=15).stdout.strip() or "empty"
        except ExecError as exc:
            last = f"unreadable ({exc})"
        if last == "BACKUP":
            return time.time()
        time.sleep(1.0)
    raise DrillError(f"{node} did not rejoin as BACKUP within {timeout:.0f}s (last state: {last})")


def _alive(cluster: Cluster, node: str) -> bool:
    pid = cluster.layouts[node].keepalived_pid
    res = cluster.hosts[node].run(["sh", "-c", 'kill -0 "$(cat "$1")" 2>/dev/null', "sh", pid])
    return res.returncode == 0


def summarize(values: list[Optional[float]]) -> tuple[Optional[float], Optional[float], int]:
    got = [v for v in values if v is not None]
    if not got:
        return None, None, len(values)
    return statistics.median(got), max(got), len(values) - len(got)
