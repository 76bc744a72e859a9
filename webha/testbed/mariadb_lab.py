"""Real MariaDB servers on lab hosts (network namespaces), for the migration tests and benchmark.

Each server is a plain ``mariadbd`` with its own datadir, socket and config directory under one
base directory, started inside its host's namespace, so it listens on the topology address
(10.1.1.12:3306) without touching the machine's own MariaDB or network. Its config mimics Debian:
``my.cnf`` includes ``conf.d/`` where ``50-server.cnf`` binds 127.0.0.1 and the migration's
target-prepare step drops ``60-webha.cnf``. ``restart.sh`` plays ``systemctl restart mariadb``.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from components.migration_plan import DbRuntime

from .netns import Lab, LabError

SERVER_TOOLS = ("mariadbd", "mariadb", "mariadb-dump", "mariadb-install-db")


def require_mariadb() -> None:
    """Fail (never skip) naming the package when a MariaDB tool is missing."""
    missing = [t for t in SERVER_TOOLS if not shutil.which(t)]
    if missing:
        raise LabError(
            f"missing {', '.join(missing)}: apt-get install mariadb-server mariadb-client "
            "(scripts/install-deps.sh)"
        )


def make_template_datadir(path: Path) -> Path:
    """An initialised, empty datadir (root@localhost by unix_socket) to copy for each server."""
    if (path / "mysql").is_dir():
        return path
    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    res = subprocess.run(
        ["mariadb-install-db", "--no-defaults", f"--datadir={tmp}", "--user=root",
         "--auth-root-authentication-method=socket", "--skip-test-db"],
        capture_output=True, text=True, timeout=300,
    )
    if res.returncode != 0:
        raise LabError(f"mariadb-install-db failed: {res.stderr.strip()[-2000:]}")
    tmp.rename(path)
    return path


@dataclass
class MariaDBHost:
    lab: Lab
    host: str
    base: Path
    template: Path
    buffer_pool: str = "256M"

    @property
    def dir(self) -> Path:
        return self.base / self.host

    @property
    def datadir(self) -> Path:
        return self.dir / "data"

    @property
    def socket(self) -> str:
        return str(self.dir / "mysqld.sock")

    @property
    def pidfile(self) -> Path:
        return self.dir / "mysqld.pid"

    @property
    def conf_dir(self) -> Path:
        return self.dir / "conf.d"

    @property
    def restart_script(self) -> Path:
        return self.dir / "restart.sh"

    @property
    def tmp_dir(self) -> Path:
        return self.dir / "tmp"

    def runtime(self) -> DbRuntime:
        return DbRuntime(
            socket=self.socket,
            conf_dir=str(self.conf_dir),
            restart_command=f"bash {self.restart_script}",
            tmp_dir=str(self.tmp_dir),
            stop_command=f"kill $(cat {self.pidfile})",
            state_dir=str(self.dir / "state"),
            database_php=str(self.database_php),
        )

    @property
    def database_php(self) -> Path:
        """The app's config on this lab host (the course's shop on web01 before the move)."""
        return self.dir / "app" / "application" / "database.php"

    def reset_retired(self) -> None:
        """Undo what a completed move did to a source (moved record, retire drop-in, read_only,
        stopped server, switched app config), so the next test moves it again."""
        shutil.rmtree(self.dir / "state", ignore_errors=True)
        shutil.rmtree(self.dir / "app", ignore_errors=True)
        for name in ("62-webha-retired.cnf",):
            (self.conf_dir / name).unlink(missing_ok=True)
        if self.sql("SELECT 1", check=False).returncode != 0:
            self.start()
        self.sql("SET GLOBAL read_only = 0")

    def init(self) -> "MariaDBHost":
        """A brand-new server: fresh datadir copied from the template, Debian-like config."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
        self.conf_dir.mkdir(parents=True)
        self.tmp_dir.mkdir()
        subprocess.run(["cp", "-a", str(self.template), str(self.datadir)], check=True)
        cnf = self.dir / "my.cnf"
        cnf.write_text(
            "[mysqld]\n"
            "user = root\n"
            f"datadir = {self.datadir}\n"
            f"socket = {self.socket}\n"
            f"pid-file = {self.pidfile}\n"
            f"log-error = {self.dir / 'error.log'}\n"
            "port = 3306\n"
            f"innodb_buffer_pool_size = {self.buffer_pool}\n"
            "max_connections = 60\n"
            f"!includedir {self.conf_dir}\n"
        )
        (self.conf_dir / "50-server.cnf").write_text("[mysqld]\nbind-address = 127.0.0.1\n")
        self.restart_script.write_text(
            "#!/bin/bash\n"
            "# Test stand-in for `systemctl restart mariadb` (webha/mariadb_lab.py).\n"
            f"pid=$(cat {self.pidfile} 2>/dev/null)\n"
            'if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then\n'
            '  kill "$pid"\n'
            '  for _ in $(seq 1 1200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.05; done\n'
            "fi\n"
            f"setsid mariadbd --defaults-file={cnf} </dev/null >>{self.dir / 'mariadbd.out'} 2>&1 &\n"
        )
        return self

    def start(self, timeout: float = 60) -> "MariaDBHost":
        self.lab.run(self.host, "bash", str(self.restart_script))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.sql("SELECT 1", check=False).returncode == 0:
                return self
            time.sleep(0.2)
        log = (self.dir / "error.log").read_text(errors="replace")[-3000:] if (self.dir / "error.log").exists() else ""
        raise LabError(f"mariadbd on {self.host} did not start within {timeout}s:\n{log}")

    def pid(self) -> Optional[int]:
        try:
            return int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 60) -> None:
        pid = self.pid()
        if pid is None:
            return
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)

    def sql(self, query: str, check: bool = True, db: Optional[str] = None,
            timeout: float = 600) -> subprocess.CompletedProcess:
        """Run SQL (on stdin) as root over the socket; batch output without column names."""
        cmd = ["mariadb", f"--socket={self.socket}", "-uroot", "-N", "-B",
               "--default-character-set=utf8mb4"]
        if db:
            cmd.append(db)
        return self.lab.run(self.host, *cmd, input=query, check=check, timeout=timeout)

    def value(self, query: str, db: Optional[str] = None) -> str:
        return self.sql(query, db=db).stdout.strip()


def client(lab: Lab, host: str, server_ip: str, user: str, password: str, query: str,
           cnf_dir: Path, db: Optional[str] = None, timeout: float = 60) -> subprocess.CompletedProcess:
    """Connect from ``host`` to ``server_ip`` as ``user`` like the app would (password in a 0600
    option file, never on the command line)."""
    cnf_dir.mkdir(parents=True, exist_ok=True)
    cnf = cnf_dir / f"client-{host}-{user}.cnf"
    old = os.umask(0o077)
    try:
        cnf.write_text(f"[client]\nuser={user}\npassword={password}\nhost={server_ip}\n"
                       "port=3306\nprotocol=tcp\nconnect-timeout=5\n")
    finally:
        os.umask(old)
    cmd = ["mariadb", f"--defaults-extra-file={cnf}", "-N", "-B", "--default-character-set=utf8mb4"]
    if db:
        cmd.append(db)
    return lab.run(host, *cmd, input=query, check=False, timeout=timeout)


@dataclass
class StepResult:
    step: str
    host: str
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    def __str__(self) -> str:
        return (f"step {self.step} on {self.host}: exit {self.returncode} in {self.seconds:.1f}s\n"
                f"--- stdout\n{self.stdout}--- stderr\n{self.stderr}")


class MigrationLab:
    """The stack's source, target and other web hosts plus a ``stranger`` as namespaces, with
    real MariaDB servers on the source and the target; runs the plan's steps exactly as the
    component does (render, run with bash on the step's host, secrets on stdin)."""

    def __init__(self, cfg, base: Path, seed_rows: int = 1500, stranger_ip: Optional[str] = None,
                 prefix_base: str = "whm", buffer_pool: str = "256M"):
        import ipaddress

        from .netns import cleanup_stale, new_prefix

        self.cfg = cfg
        self.base = Path(base)
        self.seed_rows = seed_rows
        db = cfg.database
        self.source, self.target = db.source_host, db.target_host
        hosts = {h.name: str(h.ip) for h in cfg.hosts}
        if stranger_ip is None:
            taken = set(hosts.values()) | {str(cfg.network.gateway), str(cfg.vrrp.vip)}
            stranger_ip = next(str(ip) for ip in list(cfg.network.cidr.hosts())[60:]
                               if str(ip) not in taken)
        hosts["stranger"] = stranger_ip
        self.hosts = hosts
        cleanup_stale(prefix_base)
        self.lab = Lab(new_prefix(prefix_base), hosts, str(cfg.network.cidr))
        self.servers: dict[str, MariaDBHost] = {}
        # What steps printed for later ones (step.outputs), as the component passes it along.
        self.produced: dict[str, tuple] = {}
        self._buffer_pool = buffer_pool
        self._ipaddress = ipaddress

    def start(self) -> "MigrationLab":
        from .netns import require_tools

        require_tools("ip", "bash")
        require_mariadb()
        self.base.mkdir(parents=True, exist_ok=True)
        template = make_template_datadir(self.base / "template-datadir")
        self.lab.start(interface=self.cfg.network.interface)
        try:
            for name in (self.source, self.target):
                self.servers[name] = MariaDBHost(self.lab, name, self.base, template,
                                                 self._buffer_pool).init().start()
        except Exception:
            self.close()
            raise
        return self

    @property
    def src(self) -> MariaDBHost:
        return self.servers[self.source]

    @property
    def tgt(self) -> MariaDBHost:
        return self.servers[self.target]

    def runtimes(self) -> dict[str, DbRuntime]:
        return {name: srv.runtime() for name, srv in self.servers.items()}

    def steps(self, **settings):
        from components.migration_plan import migration_steps

        return migration_steps(self.cfg, self.runtimes(), seed_rows=self.seed_rows, **settings)

    def step(self, name: str, **settings):
        for s in self.steps(**settings):
            if s.name == name:
                return s
        raise KeyError(f"no step {name} in the plan")

    def stdin_for(self, step, secrets=None, mode: str = "file") -> str:
        """``secrets`` replaces the config's secrets; earlier steps' outputs are added."""
        from components.migration_plan import render_step, secret_values, step_stdin, step_values

        secrets = secret_values(self.cfg) if secrets is None else secrets
        values = step_values(secrets, list(self.produced.values()), strict=False)
        script = render_step(self.cfg, step) if mode == "stdin" else ""
        return step_stdin(script, step, values)

    def _command(self, step, mode: str) -> list[str]:
        """``file``: as components/remote.py does (script copied, ``bash <path>``, only the
        secrets on stdin); ``stdin``: ``bash -s`` with the script then the secrets on stdin."""
        from components.migration_plan import render_step

        if mode == "stdin":
            return ["bash", "-s"]
        path = self.base / step.host / "steps" / f"{step.name}.sh"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_step(self.cfg, step))
        return ["bash", str(path)]

    def _spawn(self, step, mode: str) -> subprocess.Popen:
        """The step's process on its host, in its own process group (a test can kill it whole)."""
        return self.lab.popen(step.host, self._command(step, mode), stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              start_new_session=True)

    def popen_step(self, step, secrets=None, mode: str = "file") -> subprocess.Popen:
        """Start a step; stdin already sent."""
        proc = self._spawn(step, mode)
        assert proc.stdin is not None
        proc.stdin.write(self.stdin_for(step, secrets, mode))
        proc.stdin.close()
        return proc

    def run_step(self, step, secrets=None, timeout: float = 1800, stdin: Optional[str] = None,
                 mode: str = "file") -> StepResult:
        """Run one step to its end; ``stdin`` replaces what is sent (malformed-input tests)."""
        t0 = time.monotonic()
        proc = self._spawn(step, mode)
        try:
            out, err = proc.communicate(self.stdin_for(step, secrets, mode) if stdin is None
                                        else stdin, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            err += f"\n[test harness] killed after {timeout}s"
        if step.outputs and proc.returncode == 0:
            self.produced[step.name] = (step, out)
        return StepResult(step.name, step.host, proc.returncode, out, err, time.monotonic() - t0)

    def credential(self) -> str:
        """The migration account's password the credential step left on the source host."""
        return (Path(self.src.tmp_dir) / "webha-migrate.credential").read_text().strip()

    def run_plan(self, mode: str = "file", **settings) -> list[StepResult]:
        results = []
        for s in self.steps(**settings):
            res = self.run_step(s, mode=mode)
            results.append(res)
            if res.returncode != 0:
                break
        return results

    def close(self) -> None:
        for srv in self.servers.values():
            try:
                srv.stop(timeout=20)
            except Exception:
                pass
        self.lab.close()

    def __enter__(self) -> "MigrationLab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()
