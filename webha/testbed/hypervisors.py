"""This machine's extra hypervisors (``scripts/hypervisors-up.sh``), as the hypervisor-loss drill
takes one away and gives it back.

Hypervisor ``hvN`` is a libvirtd in network namespace ``webha-hvN``; its guests' QEMU processes
live in that namespace; its bridge reaches the LAN (the host's ``webha-lan``) through the veth
``webha-hvN-lan``. Losing it = that link down and every QEMU process in the namespace SIGKILLed
at once (the host lost power: no shutdown, no last advert). Giving it back = the link up; the
guests stay dead until ``pulumi up --refresh`` starts them, as after a real host's return.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from typing import Sequence

from components.config import StackConfig

_SOCKET = re.compile(r"^qemu\+unix:///system\?socket=/run/webha-(hv[1-9])/libvirt/libvirt-sock$")


class HypervisorControlError(RuntimeError):
    pass


def local_hypervisors(cfg: StackConfig) -> dict[str, str]:
    """{stack's hypervisor name: this machine's hvN} when every hypervisor of the stack is one of
    scripts/hypervisors-up.sh's (else {}: the drill cannot take a remote host away)."""
    out = {}
    for hv in cfg.used_hypervisors():
        m = _SOCKET.match(hv.uri) if hv.named else None
        if not m:
            return {}
        out[hv.name] = m.group(1)
    return out


def _run(argv: Sequence[str]) -> str:
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=30)
    if res.returncode != 0:
        raise HypervisorControlError(f"{' '.join(argv)}: exit {res.returncode}: {res.stderr.strip()}")
    return res.stdout


class LocalHypervisors:
    """Loss and return of this machine's extra hypervisors."""

    def __init__(self, mapping: dict[str, str]) -> None:
        self.mapping = mapping

    def _ns(self, hv: str) -> str:
        return f"webha-{self.mapping[hv]}"

    def qemu_pids(self, hv: str) -> list[int]:
        """The QEMU processes of ``hv``'s guests (every qemu-system-* in its namespace)."""
        pids = []
        for pid in _run(["ip", "netns", "pids", self._ns(hv)]).split():
            try:
                with open(f"/proc/{pid}/comm") as fh:
                    comm = fh.read().strip()
            except FileNotFoundError:
                continue
            if comm.startswith("qemu-system"):
                pids.append(int(pid))
        return pids

    def link(self, hv: str, up: bool) -> None:
        _run(["ip", "link", "set", f"{self._ns(hv)}-lan", "up" if up else "down"])

    def lose(self, hv: str) -> list[int]:
        """Cut the link and kill every guest of ``hv``; returns the killed PIDs (none = error:
        a drill that kills nothing proves nothing)."""
        pids = self.qemu_pids(hv)
        if not pids:
            raise HypervisorControlError(f"{hv}: no QEMU process in {self._ns(hv)}: no guest to lose")
        self.link(hv, False)
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        return pids

    def restore(self, hv: str) -> None:
        self.link(hv, True)
