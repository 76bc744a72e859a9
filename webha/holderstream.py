"""Continuous VIP-holder sampling over SSH, for proving "at most one holder at every moment".

Polling each node with a new SSH command costs 0.3-1 s on TCG guests: a two-holder window
shorter than that would slip between samples. Instead one SSH session per node runs a small
loop under ``bash -c`` (whatever the login shell is) that reads the interface's addresses with
``ip`` (:func:`webha.vip.addr_argv`) every ``period`` seconds and, after each read, prints a mark
line with ``ip``'s exit status and the node's own clock (``$EPOCHREALTIME``). The wait is
``read -t`` on a pipe nobody writes to, so ``ip`` is the loop's one fork per sample: a 1-vCPU TCG
guest pays for every fork, and that load is the test's own. Whether a sample holds the VIP is
decided by :func:`webha.vip.output_holds_vip`, the one parser of ``ip -o addr`` output the
detector and the drills use.

Times: a sample's time is when the NODE read its addresses, not when the line reached this
machine. A starved guest's output can arrive 0.2 s late or more; stamped on arrival, a VIP its
node had already released looks still held while the peer already holds it: a false "two
holders" (the suspected cause of CI test_07's 0.18 s and 0.04 s ones). The guests' clocks differ (up to 1 s: no time source reaches them on an
isolated network), so each node gets an offset, the least of (arrival on this machine's
monotonic clock - node stamp) over its samples (the least delayed sample, as NTP and
:mod:`webha.events` do), and a sample's ``t`` is ``stamp + offset``: the reading on this
machine's ``time.monotonic()`` clock, late by that node's smallest one-way delay (milliseconds on
an open session). Samples keep arrival and stamp; ``t`` is recomputed at every read of
:attr:`HolderStream.samples`. This assumes no node's clock steps or drifts noticeably during a run.

What it cannot see: a change shorter than one period; between two samples a node counts as its
last sample said (a handover faster than one period can show as a two-holder window that short).
:meth:`HolderStream.longest_gap` says how long a node went unsampled, :meth:`HolderStream.max_delay`
how late samples arrived.
"""

from __future__ import annotations

import dataclasses
import shlex
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Optional

from .vip import addr_argv

MARK = "--webha-sample--"
# Exit codes of a sampler stopped by stop()'s SIGTERM: ssh's own (255), a signal, a shell's 128+15.
STOPPED = (0, -signal.SIGTERM, 128 + signal.SIGTERM, 255)


@dataclass(frozen=True)
class Sample:
    node: str
    holds: bool
    arrived: float  # this machine's time.monotonic() when the sample's mark line was read
    stamp: float  # the node's clock ($EPOCHREALTIME) just after its `ip` read the addresses
    t: float = 0.0  # the reading on this machine's monotonic clock: set by align()


def align(raw: list[Sample]) -> list[Sample]:
    """``raw`` in time order, each ``t`` = stamp + its node's offset (the module docstring)."""
    offset: dict[str, float] = {}
    for s in raw:
        offset[s.node] = min(offset.get(s.node, s.arrived - s.stamp), s.arrived - s.stamp)
    return sorted((dataclasses.replace(s, t=s.stamp + offset[s.node]) for s in raw), key=lambda s: s.t)


@dataclass
class HolderStream:
    """Start with :meth:`start`, stop with :meth:`stop`; then read :meth:`max_holders` and
    :attr:`errors` (a sampler that failed or ended early: the stream went blind there)."""

    argv_for: Mapping[str, list[str]]  # node -> ssh argv prefix (SshExecutor.ssh_argv())
    interface: str
    holds: Callable[[str], bool]  # ip -o addr output -> holds the VIP
    period: float = 0.1
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not 0 < self.period <= 60:
            raise ValueError(f"holder stream: period {self.period!r} is not within (0, 60] s")
        self._raw: list[Sample] = []
        self._tail: dict[str, str] = {}  # a node's output after its last mark, once it ended
        self._procs: dict[str, subprocess.Popen] = {}
        self._threads: dict[str, threading.Thread] = {}
        self._lock = threading.Lock()
        self._stopped: Optional[float] = None

    def command(self) -> str:
        """The one remote command: a loop bounded to about an hour; ``read -t`` on fd 3, a pipe
        only this shell holds, is the fork-free wait (any other outcome than its timeout ends the
        loop rather than spin); LC_ALL=C keeps the stamp's decimal point a dot."""
        loop = ("LC_ALL=C; exec 3<> <(:); "
                f"for ((i = 0; i < {int(3600 / self.period)}; i++)); do "
                f"{shlex.join(addr_argv(self.interface))} 2>&1; "
                f'echo "{MARK} $? $EPOCHREALTIME"; '
                f"read -t {self.period} -u 3; (($? > 128)) || exit 3; done")
        return shlex.join(["bash", "-c", loop])

    def _error(self, message: str) -> None:
        with self._lock:
            if message not in self.errors:
                self.errors.append(message)

    def _read(self, node: str, proc: subprocess.Popen) -> None:
        block: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            arrived = time.monotonic()
            if MARK not in line:
                block.append(line)
                continue
            before, mark = line.split(MARK, 1)  # output without a last newline ends before it
            text, block = "".join(block) + before, []
            try:
                status, stamp = mark.split()
                code, guest_t = int(status), float(stamp)
            except ValueError:
                self._error(f"{node}: unreadable sample mark {mark.strip()!r}")
                continue
            if code != 0:
                self._error(f"{node}: {shlex.join(addr_argv(self.interface))} exited {code}: "
                            f"{text.strip()[-300:]}")
                continue
            sample = Sample(node, self.holds(text), arrived, guest_t)
            with self._lock:
                self._raw.append(sample)
        with self._lock:
            self._tail[node] = "".join(block).strip()[-300:]

    def start(self, warmup: float = 30) -> None:
        for node, prefix in self.argv_for.items():
            proc = subprocess.Popen([*prefix, "--", self.command()], stdin=subprocess.DEVNULL,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            self._procs[node] = proc
            thread = threading.Thread(target=self._read, args=(node, proc), daemon=True)
            thread.start()
            self._threads[node] = thread
        missing = set(self.argv_for)
        deadline = time.monotonic() + warmup
        while time.monotonic() < deadline:
            with self._lock:
                missing = set(self.argv_for) - {s.node for s in self._raw}
            if not missing or any(self._procs[n].poll() is not None for n in missing):
                break
            time.sleep(0.1)
        if missing:
            self.stop()
            raise RuntimeError(f"holder stream: no sample from {sorted(missing)} within {warmup} s: "
                               f"{self.errors}")

    def stop(self) -> None:
        if self._stopped is not None:
            return
        self._stopped = time.monotonic()
        for node, proc in self._procs.items():
            ended = proc.poll()  # before stop(): the stream went blind there
            if ended is None:
                proc.terminate()  # ssh's end: the remote loop dies on its next write
                try:
                    proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=5)
            self._threads[node].join(timeout=5)
            if self._threads[node].is_alive():
                self._error(f"{node}: sampler output still open 5 s after stop()")
            tail = self._tail.get(node, "")
            if ended is not None:
                self._error(f"{node}: sampler ended before stop() (exit {ended}): {tail!r}")
            elif proc.returncode not in STOPPED:
                self._error(f"{node}: sampler exited {proc.returncode}: {tail!r}")

    @property
    def samples(self) -> list[Sample]:
        """Every sample so far, in time order, ``t`` on this machine's monotonic clock."""
        with self._lock:
            raw = list(self._raw)
        return align(raw)

    def max_delay(self) -> float:
        """How late a sample arrived at most, after its reading (s)."""
        return max((s.arrived - s.t for s in self.samples), default=0.0)

    def timeline(self) -> list[tuple[float, dict[str, bool]]]:
        """Every sample time with each node's latest known state (a node unseen yet: absent)."""
        state: dict[str, bool] = {}
        out = []
        for s in self.samples:
            state[s.node] = s.holds
            out.append((s.t, dict(state)))
        return out

    def max_holders(self) -> int:
        return max((sum(v.values()) for _, v in self.timeline()), default=0)

    def longest_gap(self) -> float:
        """The longest time one node went without a sample, until stop() (or now): how blind the
        stream ever was."""
        end = self._stopped if self._stopped is not None else time.monotonic()
        samples = self.samples
        gaps = [0.0]
        for node in self.argv_for:
            ts = [s.t for s in samples if s.node == node]
            gaps += [b - a for a, b in zip(ts, ts[1:] + [end])]
        return max(gaps)

    def holder_changes(self) -> list[tuple[float, list[str]]]:
        """(time, holders) every time the set of holders changed."""
        out: list[tuple[float, list[str]]] = []
        for t, state in self.timeline():
            holders = sorted(n for n, h in state.items() if h)
            if not out or out[-1][1] != holders:
                out.append((t, holders))
        return out
