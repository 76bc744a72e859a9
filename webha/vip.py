"""Who holds the VIP: the ONE implementation (drills, split-brain detector, lab, verify, e2e).

A node holds the VIP when the address is on its interface (``ip -4 -o addr show dev IF``). A node
whose interface cannot be read is *unknown*, and unknown never means "not a holder": :func:`holders`
raises :class:`VipUnreadable` naming every such node instead of leaving it out of the answer.
"""

from __future__ import annotations

from typing import Mapping

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


def node_holds(ex: Executor, vip: str, interface: str, timeout: float = 5) -> bool:
    """One node; raises :class:`ExecError` when its addresses cannot be read."""
    res = ex.run(addr_argv(interface), timeout=timeout)
    if res.returncode != 0:
        raise ExecError(
            f"`ip addr show dev {interface}` exited {res.returncode}: "
            f"{(res.stderr or res.stdout).strip() or 'no output'}"
        )
    return output_holds_vip(res.stdout, vip)


def holders(executors: Mapping[str, Executor], vip: str, interface: str, timeout: float = 5) -> list[str]:
    """Names of the nodes holding ``vip``, in ``executors`` order.

    Raises :class:`VipUnreadable` if any node cannot be read (every node is still tried, so the
    exception names all of them and carries the holders among the readable ones)."""
    found: list[str] = []
    problems: dict[str, str] = {}
    for name, ex in executors.items():
        try:
            if node_holds(ex, vip, interface, timeout):
                found.append(name)
        except ExecError as exc:
            problems[name] = str(exc)
    if problems:
        raise VipUnreadable(problems, found)
    return found
