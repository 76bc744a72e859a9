"""Continuous VIP-holder sampling over SSH, for proving "at most one holder at every moment".

Polling each node with a new SSH command costs 0.3-1 s on TCG guests: a two-holder window
shorter than that would slip between samples. Instead one SSH session per node streams the
interface's addresses every ``period`` seconds, and this machine stamps each sample on arrival
with its own monotonic clock (the guests' clocks are up to 1 s apart, so their timestamps cannot
be merged). Whether a sample holds the VIP is decided by :func:`webha.vip.output_holds_vip`, the
one parser of ``ip -o addr`` output the detector and the drills use.
"""

from __future__ import annotations

import shlex
import subprocess
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

from .vip import addr_argv

MARK = "--webha-sample--"


@dataclass
class Sample:
    t: float
    node: str
    holds: bool


@dataclass
class HolderStream:
    """Start with :meth:`start`, stop with :meth:`stop`; then read :meth:`max_holders`."""

    argv_for: Mapping[str, list[str]]  # node -> ssh argv prefix (SshExecutor.ssh_argv())
    interface: str
    holds: Callable[[str], bool]  # ip -o addr output -> holds the VIP
    period: float = 0.1
    samples: list[Sample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._procs: dict[str, subprocess.Popen] = {}
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def _loop_argv(self) -> str:
        # A bounded loop (at most an hour) in the remote shell: sample, mark, sleep.
        return (f"for i in $(seq 1 {int(3600 / self.period)}); do "
                f"{shlex.join(addr_argv(self.interface))}; echo {MARK}; sleep {self.period}; done")

    def _read(self, node: str, proc: subprocess.Popen) -> None:
        block: list[str] = []
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.strip() == MARK:
                sample = Sample(time.monotonic(), node, self.holds("".join(block)))
                with self._lock:
                    self.samples.append(sample)
                block = []
            else:
                block.append(line)

    def start(self, warmup: float = 30) -> None:
        for node, prefix in self.argv_for.items():
            proc = subprocess.Popen([*prefix, "--", self._loop_argv()], stdout=subprocess.PIPE,
                                    stderr=subprocess.DEVNULL, text=True)
            self._procs[node] = proc
            thread = threading.Thread(target=self._read, args=(node, proc), daemon=True)
            thread.start()
            self._threads.append(thread)
        deadline = time.monotonic() + warmup
        while time.monotonic() < deadline:
            with self._lock:
                seen = {s.node for s in self.samples}
            if seen == set(self.argv_for):
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"holder stream: no sample from {sorted(set(self.argv_for) - seen)} "
                           f"within {warmup} s")

    def stop(self) -> None:
        for node, proc in self._procs.items():
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
            if proc.returncode not in (0, -15, 143, 255):
                self.errors.append(f"{node}: sampler exited {proc.returncode}")
        for thread in self._threads:
            thread.join(timeout=5)

    def timeline(self) -> list[tuple[float, dict[str, bool]]]:
        """Every sample time with each node's latest known state (a node unseen yet: absent)."""
        state: dict[str, bool] = {}
        out = []
        for s in sorted(self.samples, key=lambda s: s.t):
            state[s.node] = s.holds
            out.append((s.t, dict(state)))
        return out

    def max_holders(self) -> int:
        return max((sum(v.values()) for _, v in self.timeline()), default=0)

    def longest_gap(self) -> float:
        """The longest time between two samples of one node: how blind the stream ever was."""
        gaps = [0.0]
        for node in self.argv_for:
            ts = sorted(s.t for s in self.samples if s.node == node)
            gaps += [b - a for a, b in zip(ts, ts[1:])]
        return max(gaps)

    def holder_changes(self) -> list[tuple[float, list[str]]]:
        """(time, holders) every time the set of holders changed."""
        out: list[tuple[float, list[str]]] = []
        for t, state in self.timeline():
            holders = sorted(n for n, h in state.items() if h)
            if not out or out[-1][1] != holders:
                out.append((t, holders))
        return out
