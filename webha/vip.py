"""Who holds the VIP: the ONE implementation (drills, split-brain detector, lab, verify, e2e).

A node holds the VIP when the address is on its interface (``ip -4 -o addr show dev IF``). A node
whose interface cannot be read is *unknown*, and unknown never means "not a holder": :func:`holders`
raises :class:`VipUnreadable` naming every such node instead of leaving it out of the answer.
"""

from __future__ import annotations

from typing import Mapping, Optional

from .executor import ExecError, Executor


class VipUnreadable(ExecError):
    """At least one node's addresses could not be read: who holds the VIP is unknown."""

    def __init__(self, problems: Mapping[str, str], holders: list[str]):
        self.problems = dict(problems)
        self.partial = list(holders)  # holders among the nodes that could be read
        super().__init__(
            "cannot tell who holds the VIP: "
            + "; ".join(f"{n}: {why}" for n, why in self.problems.items())
        )


def output_holds_vip(text: str, vip: str) -> bool:
    """Does ``ip -4 -o addr show`` output carry ``vip`` (any prefix length)?"""
    for line in text.splitlines():
        words = line.split()
        if "inet" in words:
            i = words.index("inet")
            if i + 1 < len(words) and words[i + 1].split("/")[0] == vip:
                return True
    return False


def addr_argv(interface: str) -> list[str]:
    return ["ip", "-4", "-o", "addr", "show", "dev", interface]


# One read of ``addr_argv`` on a node: (exit status, stdout, stderr); exit status None = the node
# could not be reached (stderr says why).
AddrRead = tuple[Optional[int], str, str]


def read_addr(ex: Executor, interface: str, timeout: float = 5) -> AddrRead:
    try:
        res = ex.run(addr_argv(interface), timeout=timeout)
    except ExecError as exc:
        return None, "", str(exc)
    return res.returncode, res.stdout, res.stderr


def holders_from(reads: Mapping[str, AddrRead], vip: str, interface: str) -> list[str]:
    """Names of the nodes holding ``vip``, in ``reads`` order, from their ``addr_argv`` output
    (read one by one by :func:`holders`, or in the split-brain detector's one session per node).

    Raises :class:`VipUnreadable` naming every node that could not be read, with the holders
    among the readable ones."""
    found: list[str] = []
    problems: dict[str, str] = {}
    for name, (rc, out, err) in reads.items():
        if rc is None:
            problems[name] = err
        elif rc != 0:
            problems[name] = (f"`ip addr show dev {interface}` exited {rc}: "
                              f"{(err or out).strip() or 'no output'}")
        elif output_holds_vip(out, vip):
            found.append(name)
    if problems:
        raise VipUnreadable(problems, found)
    return found


def holders(executors: Mapping[str, Executor], vip: str, interface: str, timeout: float = 5) -> list[str]:
    """Names of the nodes holding ``vip``, in ``executors`` order (every node is read, so a
    :class:`VipUnreadable` names all the unreadable ones)."""
    return holders_from({n: read_addr(ex, interface, timeout) for n, ex in executors.items()}, vip, interface)
