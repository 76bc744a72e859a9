"""How the drills and the split-brain detector reach a host: one small interface, two transports.

* :class:`NetnsExecutor` - a lab host: a network + mount + PID + UTS namespace set, entered with
  ``nsenter`` through the host's init process (see :mod:`webha.testbed.lab`).
* :class:`SshExecutor` - a real host: ``ssh -i KEY root@IP``.

Both take an argv list (never a shell string assembled by the caller), so the same drill code runs
against the lab and against the libvirt stack.
"""

from __future__ import annotations

import shlex
import subprocess
from dataclasses import dataclass, field
from typing import Optional, Protocol, Sequence, runtime_checkable

from components.topology import Paths


class ExecError(RuntimeError):
    pass


@dataclass(frozen=True)
class HostLayout:
    """Where a web node keeps what the drills and the detector look at.

    Real hosts: :class:`Paths` defaults and keepalived's default pid files. The lab moves all of it
    into a per-host directory (only the paths change, never the config values).
    """

    paths: Paths = field(default_factory=Paths)
    keepalived_pid: str = "/run/keepalived.pid"
    vrrp_pid: str = "/run/vrrp.pid"
    checkers_pid: str = "/run/checkers.pid"
    interface: str = "eth0"

    @property
    def keepalived_conf(self) -> str:
        return f"{self.paths.keepalived_dir}/keepalived.conf"


@runtime_checkable
class Executor(Protocol):
    """Run a command on one host."""

    name: str

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float = 10,
        check: bool = False,
        input: Optional[str] = None,
    ) -> subprocess.CompletedProcess: ...

    def spawn(self, argv: Sequence[str], log: str) -> None:
        """Start a long-running command detached on the host, output appended to ``log``."""
        ...

    def stream_argv(self, argv: Sequence[str]) -> list[str]:
        """The local argv that runs ``argv`` on the host with its stdin/stdout connected here:
        for one long session (an event stream, the detector's gathered script)."""
        ...


def _run_local(name: str, label: str, local_argv: list[str], timeout: float, input) -> subprocess.CompletedProcess:
    """Run the local argv that reaches the host (nsenter or ssh); a timeout is an ExecError."""
    try:
        return subprocess.run(local_argv, capture_output=True, text=True, timeout=timeout, input=input)
    except subprocess.TimeoutExpired as exc:
        raise ExecError(f"[{name}] {label}: timed out after {timeout}s") from exc


def _finish(name: str, argv: Sequence[str], res: subprocess.CompletedProcess, check: bool):
    if check and res.returncode != 0:
        raise ExecError(
            f"[{name}] {shlex.join(argv)} -> {res.returncode}: {(res.stderr or res.stdout).strip()}"
        )
    return res


def _spawn_argv(argv: Sequence[str], log: str) -> list[str]:
    # The shell exits at once; the daemon is re-parented to the host's init (or systemd/PID 1).
    return ["sh", "-c", 'log=$1; shift; "$@" >>"$log" 2>&1 </dev/null & exit 0', "sh", log, *argv]


@dataclass
class NetnsExecutor:
    """A lab host: commands run inside the namespaces of the host's init process ``init_pid``."""

    name: str
    init_pid: int

    def prefix(self, network_only: bool = False) -> list[str]:
        """nsenter into the host; ``network_only`` keeps this machine's files, PIDs and /tmp
        (for this project's own Python, e.g. the drill's HTTP poller)."""
        if network_only:
            return ["nsenter", "-t", str(self.init_pid), "-n"]
        return ["nsenter", "-t", str(self.init_pid), "-n", "-m", "-p", "-u", "--wd=/"]

    def run(self, argv, *, timeout=10, check=False, input=None):
        res = _run_local(self.name, shlex.join(argv), self.stream_argv(argv), timeout, input)
        return _finish(self.name, argv, res, check)

    def spawn(self, argv, log):
        self.run(_spawn_argv(argv, log), timeout=10, check=True)

    def stream_argv(self, argv):
        return [*self.prefix(), *argv]


@dataclass
class SshExecutor:
    """A real host over SSH (BatchMode: never prompts). Its host key must be in the known_hosts
    given with ``-o UserKnownHostsFile=`` (``StrictHostKeyChecking=yes``: no trust on first use)."""

    name: str
    ip: str
    key: str
    user: str = "root"
    port: int = 22
    options: list[str] = field(
        default_factory=lambda: [
            "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=5",
            "-o", "StrictHostKeyChecking=yes",
            "-o", "ServerAliveInterval=5",
        ]
    )

    def pin(self, known_hosts: str) -> "SshExecutor":
        """Trust only the host keys in ``known_hosts`` (no other file is read)."""
        self.options += ["-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null"]
        return self

    def ssh_argv(self) -> list[str]:
        return ["ssh", "-i", self.key, "-p", str(self.port), *self.options, f"{self.user}@{self.ip}"]

    def run(self, argv, *, timeout=10, check=False, input=None):
        # ssh hands the remote side one string to a shell: quote every word ourselves.
        res = _run_local(self.name, f"ssh {shlex.join(argv)}", self.stream_argv(argv), timeout, input)
        if res.returncode == 255:
            raise ExecError(f"[{self.name}] ssh to {self.user}@{self.ip} failed: {res.stderr.strip()}")
        return _finish(self.name, argv, res, check)

    def spawn(self, argv, log):
        self.run(_spawn_argv(argv, log), timeout=15, check=True)

    def stream_argv(self, argv):
        return [*self.ssh_argv(), "--", shlex.join(argv)]


def ssh_executors(cfg, known_hosts: str, names: Optional[Sequence[str]] = None) -> dict[str, SshExecutor]:
    """Executors for a deployed stack's hosts (``cfg``: a StackConfig); ``known_hosts``: the
    stack's pinned host keys (``python -m webha.hostkeys known-hosts``); no other file is read."""
    hosts = [h for h in cfg.hosts if names is None or h.name in names]
    out = {}
    for h in hosts:
        ex = SshExecutor(h.name, str(h.ip), cfg.ssh.private_key_path, cfg.ssh.user, cfg.ssh.port)
        out[h.name] = ex.pin(known_hosts)
    return out
