"""webha.holderstream against fake nodes: local processes behind a stand-in for ssh
(tests/unit/fakenode: `ssh HOST -- COMMAND` runs COMMAND with sh; the node's `ip` prints a file
the test replaces; its output can be held back on the way, as a starved guest's is)."""

import contextlib
import os
import sys
import time
from pathlib import Path

import pytest

from webha.holderstream import HolderStream, Sample, align
from webha.vip import output_holds_vip

pytestmark = pytest.mark.unit

FAKE = Path(__file__).resolve().parent / "fakenode"
VIP = "192.0.2.100"
OWN = "2: eth0    inet 192.0.2.11/24 brd 192.0.2.255 scope global eth0\n"


class Node:
    """A fake node: a directory the fake ssh and ip read (tests/unit/fakenode)."""

    def __init__(self, root: Path, name: str, holds: bool = False):
        self.name = name
        self.dir = root / name
        self.dir.mkdir()
        self.set(holds)

    def write(self, name: str, text: str) -> None:
        (self.dir / f".{name}").write_text(text)
        os.replace(self.dir / f".{name}", self.dir / name)  # whole, never half written

    def set(self, holds: bool) -> None:
        self.write("addr", OWN + (f"2: eth0    inet {VIP}/32 scope global eth0\n" if holds else ""))

    def consumed(self, fault: str) -> bool:
        return not (self.dir / fault).exists()

    def prefix(self) -> list[str]:
        return ["env", f"FAKE_NODE={self.dir}", f"FAKE_PYTHON={sys.executable}",
                f"PATH={FAKE}:{os.environ['PATH']}", str(FAKE / "ssh"), self.name]


def stream(*nodes: Node) -> HolderStream:
    return HolderStream({n.name: n.prefix() for n in nodes}, "eth0",
                        lambda text: output_holds_vip(text, VIP), period=0.1)


@contextlib.contextmanager
def running(*nodes: Node):
    """A started stream with 3 samples of each node (offsets learnt while nothing is late);
    stopped at the end."""
    s = stream(*nodes)
    s.start(warmup=10)
    try:
        wait(lambda: warmed(s), "3 samples of each node")
        yield s
    finally:
        s.stop()


def wait(cond, what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout} s: {what}")
        time.sleep(0.02)


def sampled(s: HolderStream, node: str, holds: bool, after: float) -> bool:
    """A sample of ``node`` read after ``after`` (this machine's monotonic clock) says ``holds``."""
    return any(x.node == node and x.holds == holds and x.t > after for x in s.samples)


def warmed(s: HolderStream, n: int = 3) -> bool:
    samples = s.samples
    return all(sum(x.node == node for x in samples) >= n for node in s.argv_for)


def test_late_output_of_a_released_vip_is_not_a_second_holder(tmp_path):
    a, b = Node(tmp_path, "a", holds=True), Node(tmp_path, "b")
    begun = time.monotonic()
    with running(a, b) as s:
        a.write("delay", "1.2")  # from now on a's lines arrive 1.2 s late
        time.sleep(0.3)  # its last samples holding the VIP among them
        released = time.monotonic()
        a.set(holds=False)
        time.sleep(0.5)  # nobody holds the VIP for 0.5 s
        acquired = time.monotonic()
        b.set(holds=True)
        wait(lambda: sampled(s, "a", False, released) and sampled(s, "b", True, acquired),
             "the release and the takeover sampled")
    ended = time.monotonic()
    assert not s.errors
    assert s.max_holders() == 1, s.holder_changes()
    assert [h for _, h in s.holder_changes()][-3:] == [["a"], [], ["b"]]
    # t is this machine's monotonic clock, never after the arrival; a's late samples show it.
    assert all(x.arrived - 5 < x.t <= x.arrived + 1e-3 for x in s.samples)
    assert s.max_delay() >= 1.0
    # The loop waits between samples (a wait that returned at once would give hundreds a second).
    assert len(s.samples) <= 2 * 3 * (ended - begun) / s.period


def test_a_real_overlap_is_two_holders(tmp_path):
    a, b = Node(tmp_path, "a", holds=True), Node(tmp_path, "b")
    with running(a, b) as s:
        both = time.monotonic()
        b.set(holds=True)
        wait(lambda: sampled(s, "a", True, both) and sampled(s, "b", True, both), "both holding, sampled")
        time.sleep(0.5)
        released = time.monotonic()
        a.set(holds=False)
        wait(lambda: sampled(s, "a", False, released), "a's release sampled")
    assert not s.errors
    assert s.max_holders() == 2
    assert ["a", "b"] in [h for _, h in s.holder_changes()]


def test_a_stalled_node_is_a_gap(tmp_path):
    a, b = Node(tmp_path, "a", holds=True), Node(tmp_path, "b")
    with running(a, b) as s:
        stalled = time.monotonic()
        b.write("stall", "1.0")  # b's next read takes 1 s; a goes on
        wait(lambda: sampled(s, "b", False, stalled + 1.0), "b sampled after its stall")
    assert not s.errors
    assert s.longest_gap() >= 0.9


def test_a_sampler_killed_is_an_error(tmp_path):
    a, b = Node(tmp_path, "a", holds=True), Node(tmp_path, "b")
    with running(a, b) as s:
        b.write("kill", "KILL")
        wait(lambda: b.consumed("kill"), "b's loop killed")
        time.sleep(0.3)
    assert [e for e in s.errors if e.startswith("b: ")], s.errors
    assert not [e for e in s.errors if e.startswith("a: ")], s.errors


def test_a_sampler_ended_early_with_a_clean_code_is_an_error_and_a_gap(tmp_path):
    a, b = Node(tmp_path, "a", holds=True), Node(tmp_path, "b")
    with running(a, b) as s:
        b.write("kill", "TERM")  # b's loop ends with 143, the code a stopped sampler has too
        wait(lambda: b.consumed("kill"), "b's loop terminated")
        time.sleep(1.0)
    assert [e for e in s.errors if e.startswith("b: ") and "before stop()" in e], s.errors
    assert s.longest_gap() >= 0.9  # b was blind from its end until stop()


def test_a_failed_read_is_an_error_not_a_sample(tmp_path):
    a = Node(tmp_path, "a", holds=True)
    with running(a) as s:
        a.write("fail", 'Device "eth0" does not exist.')  # no last newline: the mark still parses
        wait(lambda: a.consumed("fail"), "a's read failed")
        wait(lambda: s.errors, "the failure reported")
    assert any("exited 1" in e and "does not exist" in e for e in s.errors), s.errors
    assert all(x.holds for x in s.samples)


def test_a_node_that_cannot_be_reached_fails_start_at_once_with_the_reason(tmp_path):
    a = Node(tmp_path, "a", holds=True)
    gone = ["env", f"FAKE_NODE={tmp_path / 'gone'}", str(FAKE / "ssh"), "gone"]
    s = HolderStream({"a": a.prefix(), "gone": gone}, "eth0", lambda text: output_holds_vip(text, VIP))
    begun = time.monotonic()
    with pytest.raises(RuntimeError, match="Connection refused"):
        s.start(warmup=8)
    assert time.monotonic() - begun < 4  # not the whole warmup


def test_align_puts_skewed_clocks_on_this_machines_clock():
    # Readings at 10.0 / 10.5 / 11.0 here; a's clock 0.8 s ahead, b's 1000 s behind; a's second
    # line 0.5 s late, every other one 0.01-0.03 s.
    raw = [Sample("a", True, 10.01, 10.8), Sample("a", True, 11.0, 11.3), Sample("a", False, 11.02, 11.8),
           Sample("b", False, 10.03, -990.0), Sample("b", True, 11.03, -989.0)]
    got = [(x.node, round(x.t, 3)) for x in align(raw)]
    assert got == [("a", 10.01), ("b", 10.03), ("a", 10.51), ("a", 11.01), ("b", 11.03)]
