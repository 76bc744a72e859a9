"""Network namespaces as lab hosts: one namespace per host, joined by a bridge in its own namespace.

The bridge lives in a private "switch" namespace, not in the root namespace, so a lab never adds a
route or an address to the machine it runs on (the libvirt stack may use the very same subnet at
the same time). Reach a host with :meth:`Lab.run` / :meth:`Lab.popen` (``ip netns exec``).

Everything created is named ``<prefix>-...`` and removed by :meth:`Lab.close` (also on ``with``
exit and by :func:`cleanup_stale` for labs left by a killed run).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional


STATE_DIR = Path("/run/webha-lab")  # <prefix>/owner of every lab (HA lab, migration lab)


class LabError(RuntimeError):
    pass


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True, text=True)


def require_tools(*tools: str) -> None:
    """Fail (never skip) with the package to install when a real tool is missing."""
    missing = [t for t in tools if not shutil.which(t) and not os.path.exists(t)]
    if missing:
        raise LabError(
            f"missing {', '.join(missing)}: run scripts/install-deps.sh "
            "(apt-get install iproute2 keepalived nginx-light mariadb-server nftables curl)"
        )
    if os.geteuid() != 0:
        raise LabError("network namespaces need root")


@dataclass
class Lab:
    """A set of hosts ``{name: ip}`` on one /prefix, each in its own namespace."""

    prefix: str
    hosts: dict[str, str]
    cidr: str
    created: list[str] = field(default_factory=list)
    state_dir: Path = STATE_DIR

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    @property
    def switch(self) -> str:
        return f"{self.prefix}-sw"

    def veth(self, host: str) -> tuple[str, str]:
        """(port on the bridge, interface in the host) names, both <= 15 chars."""
        idx = list(self.hosts).index(host)
        tag = self.prefix[-6:]
        return f"p{tag}{idx}", f"h{tag}{idx}"

    def start(self, interface: str = "eth0") -> "Lab":
        require_tools("ip")
        net = ipaddress.IPv4Network(self.cidr)
        lab_dir = self.state_dir / self.prefix
        lab_dir.mkdir(parents=True, exist_ok=True)
        owner = lab_dir / "owner"
        if not owner.exists():
            owner.write_text(f"{os.getpid()}\n")  # cleanup_stale leaves a live owner's lab alone
        try:
            _ip("netns", "add", self.switch)
            self.created.append(self.switch)
            self.exec_ns(self.switch, "ip", "link", "add", "br0", "type", "bridge")
            self.exec_ns(self.switch, "ip", "link", "set", "br0", "up")
            self.exec_ns(self.switch, "ip", "link", "set", "lo", "up")
            for host, ip in self.hosts.items():
                self.add_host(host, ip, net.prefixlen, interface)
        except Exception:
            self.close()
            raise
        return self

    def add_host(self, host: str, ip: str, prefixlen: int, interface: str = "eth0") -> None:
        ns = self.ns(host)
        port, inner = self.veth(host)
        _ip("netns", "add", ns)
        self.created.append(ns)
        _ip("link", "add", port, "netns", self.switch, "type", "veth", "peer", "name", inner, "netns", ns)
        self.exec_ns(self.switch, "ip", "link", "set", port, "master", "br0", "up")
        self.exec_ns(ns, "ip", "link", "set", inner, "name", interface)
        self.exec_ns(ns, "ip", "addr", "add", f"{ip}/{prefixlen}", "dev", interface)
        self.exec_ns(ns, "ip", "link", "set", interface, "up")
        self.exec_ns(ns, "ip", "link", "set", "lo", "up")

    def link(self, host: str, up: bool) -> None:
        """Pull or plug a host's cable (the bridge port), as a switch port failure would."""
        port, _ = self.veth(host)
        self.exec_ns(self.switch, "ip", "link", "set", port, "up" if up else "down")

    def exec_ns(self, ns: str, *cmd: str, check: bool = True, timeout: float = 60, **kw):
        res = subprocess.run(
            ["ip", "netns", "exec", ns, *cmd], capture_output=True, text=True, timeout=timeout, **kw
        )
        if check and res.returncode != 0:
            raise LabError(f"[{ns}] {' '.join(cmd)} -> {res.returncode}: {res.stderr.strip()}")
        return res

    def run(self, host: str, *cmd: str, **kw) -> subprocess.CompletedProcess:
        return self.exec_ns(self.ns(host), *cmd, **kw)

    def popen(self, host: str, cmd: Iterable[str], **kw) -> subprocess.Popen:
        return subprocess.Popen(["ip", "netns", "exec", self.ns(host), *cmd], **kw)

    def close(self) -> None:
        for ns in reversed(self.created):
            _kill_and_delete(ns)
        self.created.clear()
        owner = self.state_dir / self.prefix / "owner"
        try:
            if owner.read_text().strip() == str(os.getpid()):
                owner.unlink()
                (self.state_dir / self.prefix).rmdir()  # only when nothing else is kept there
        except OSError:
            pass

    def __enter__(self) -> "Lab":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def cleanup_stale(
    prefix_base: str,
    state_dir: Path = STATE_DIR,
    everything: bool = False,
    only: Optional[str] = None,
    kept: bool = False,
) -> list[str]:
    """Remove labs named ``<prefix_base><5 digits>`` whose owner process is gone; also kept ones
    (``webha lab up``) with ``kept``, the one lab ``only``, or every lab with ``everything``.

    Why the owner check: the HA lab, the migration lab and the benchmarks run concurrently
    (two pytest runs, a benchmark beside a test); a cleanup that removes every lab of its kind
    kills namespaces a live run still uses. The owner is the pid in ``<state_dir>/<prefix>/owner``
    (written by :meth:`Lab.start`), ``keep`` for a lab kept on purpose, or - for a lab that died
    before writing it - the pid the prefix was made from.
    """
    pattern = re.compile(rf"^({re.escape(prefix_base)}\d{{5}})-")
    out = _ip("netns", "list", check=False).stdout
    names = [line.split(" ")[0] for line in out.splitlines() if line.strip()]
    prefixes = {m.group(1) for name in names if (m := pattern.match(name))}
    if Path(state_dir).is_dir():
        prefixes |= {p.name for p in Path(state_dir).iterdir()
                     if re.fullmatch(rf"{re.escape(prefix_base)}\d{{5}}", p.name)}
    gone = []
    for prefix in sorted(prefixes):
        forced = everything
        if only is not None:
            if prefix != only:
                continue
            forced = True
        try:
            text = (Path(state_dir) / prefix / "owner").read_text().strip()
        except OSError:
            text = ""
        if text == "keep":
            if not (forced or kept):
                continue  # made by `webha lab up`: removed by `webha lab down`
        elif not forced:
            try:
                owner = int(text)
            except ValueError:
                owner = int(prefix[len(prefix_base):])  # the prefix is the creator's pid % 100000
            if owner == os.getpid() or _pid_alive(owner):
                continue
        for name in names:
            if name.startswith(prefix + "-"):
                _kill_and_delete(name)
        shutil.rmtree(Path(state_dir) / prefix, ignore_errors=True)
        gone.append(prefix)
    return gone


def _kill_and_delete(ns: str) -> None:
    for pid in _ip("netns", "pids", ns, check=False).stdout.split():
        try:
            os.kill(int(pid), 9)
        except (ProcessLookupError, ValueError):
            pass
    _ip("netns", "del", ns, check=False)


def new_prefix(base: str = "whl", pid: Optional[int] = None) -> str:
    """A short unique prefix: namespaces and veths of concurrent labs never collide."""
    return f"{base}{(pid or os.getpid()) % 100000:05d}"
