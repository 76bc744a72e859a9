"""HA lab: the stack's topology as namespaces, with the REAL keepalived and nginx in the web hosts.

One lab host = one network namespace (from :mod:`webha.testbed.netns`, bridged in a private "switch"
namespace) **plus** its own PID, mount and UTS namespaces, held open by a tiny reaping init:

    ip netns exec <prefix>-web01 unshare --pid --fork --mount-proc --uts --kill-child <init>

Why a PID namespace per host: every namespace-host otherwise shares this machine's process table,
so keepalived's ``vrrp_track_process { process nginx }`` on web01 would count web02's nginx as
"running" and never notice web01's nginx crash (and ``pidof``/``pkill`` in a drill would hit the
wrong host). With ``--mount-proc`` each host sees only its own processes in /proc, exactly like a
VM. The init (PID 1 of the host) reaps orphans, so a killed daemon never lingers as a zombie that
``[ -d /proc/$pid ]`` would still find. The host also gets a private /tmp (keepalived's
``/tmp/keepalived.stats`` dump) and its hostname. Commands enter a host with ``nsenter`` through
the init (:class:`webha.executor.NetnsExecutor`); killing the init kills the whole host.

Configs are rendered by :func:`components.render.render` from the same contexts the Pulumi
components use, with only :class:`components.topology.Paths` rewritten into
``/run/webha-lab/<prefix>/<host>``. ``keepalived -t`` checks every config in the host before it
is started; a rejected config is never started (:class:`ConfigRejected`).

``enable_script_security`` stays on: the scripts live in root-owned 0755 directories, the scripts
run as ``keepalived_script`` (created with ``useradd --system`` when missing), which can read the
nginx pid file and write only the state directory.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Optional

from components.checks import keepalived_test_passed
from components.config import StackConfig
from components.render import render
from components.topology import Paths, host_context, keepalived_context

from . import netns
from ..executor import ExecError, HostLayout, NetnsExecutor
from .netns import LabError
from ..vip import holders

BASE_DIR = netns.STATE_DIR
PREFIX_BASE = "whl"
CLIENT = "client"
LAB_TOOLS = ("ip", "nsenter", "unshare", "setpriv", "prlimit", "keepalived", "nginx", "curl", "nft", "prometheus-node-exporter")
METRICS_PORT = 9100

_INIT = r"""
import os, signal, socket, subprocess, sys, time
socket.sethostname(sys.argv[1])
subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=1777,size=16m", "lab-tmp", "/tmp"], check=True)
signal.signal(signal.SIGTERM, lambda *_: os._exit(0))
print("ready", flush=True)
while True:
    try:
        pid, _ = os.waitpid(-1, os.WNOHANG)
    except ChildProcessError:
        pid = 0
    if not pid:
        time.sleep(0.05)
"""


class ConfigRejected(LabError):
    """``keepalived -t`` (or ``nginx -t``) refused a rendered config: it was not started."""


def ensure_script_user(name: str) -> None:
    """keepalived's ``script_user`` must exist, else ``enable_script_security`` refuses to run."""
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    subprocess.run(
        ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", name],
        check=True, capture_output=True, text=True, timeout=30,
    )


def lab_config(cfg: StackConfig) -> tuple[StackConfig, list[str]]:
    """The stack config the lab can run, and what had to change (the rendering is untouched).

    ``trackProcess`` is switched off: keepalived's ``vrrp_track_process`` needs the kernel's proc
    connector, which only answers in the initial network namespace. In any other netns keepalived
    logs "Failed to set/clear process event listen - errno 111" and the instance stays in FAULT
    ("tracked process ... quorum not achieved") forever - measured with keepalived 2.2.7. On the
    VMs keepalived runs in the initial namespaces and the process tracking works.
    """
    hc = cfg.vrrp.health_check
    if not hc.track_process:
        return cfg, []
    vrrp = cfg.vrrp.model_copy(update={"health_check": hc.model_copy(update={"track_process": False})})
    return cfg.model_copy(update={"vrrp": vrrp}), [
        "vrrp.healthCheck.trackProcess: true -> false (no proc connector outside the initial "
        "network namespace; nginx crashes are caught by the tracked file (trackFile, when on) "
        "and check_nginx)"
    ]


def lab_paths(host_dir: str, script_user: str = "keepalived_script") -> Paths:
    d = host_dir
    return Paths(
        keepalived_dir=f"{d}/keepalived",
        script_dir=f"{d}/keepalived/scripts",
        state_dir=f"{d}/state",
        nginx_pid=f"{d}/run/nginx.pid",
        nginx_site=f"{d}/nginx/sites-enabled/webha-shop.conf",
        app_root=f"{d}/www",
        php_socket=f"{d}/run/php-fpm.sock",
        log_dir=f"{d}/log",
        script_user=script_user,
        keepalived_pid=f"{d}/run/keepalived.pid",
        events_log=f"{d}/log/events.jsonl",
        metrics_dir=f"{d}/metrics",
    )


def _write(path: str, text: str, mode: int) -> None:
    os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class HaLab:
    """Start with ``with HaLab(cfg) as lab:``; everything is removed on exit, even on errors."""

    def __init__(
        self,
        cfg: StackConfig,
        auth_pass: Optional[str] = None,
        prefix: Optional[str] = None,
        base_dir: Path = BASE_DIR,
        with_client: bool = True,
    ) -> None:
        self.stack_cfg = cfg
        cfg, self.adjustments = lab_config(cfg)
        self.cfg = cfg
        self.auth_pass = auth_pass or (
            cfg.vrrp_auth_pass.get_secret_value() if cfg.vrrp_auth_pass else None
        )
        self.prefix = prefix or netns.new_prefix(PREFIX_BASE)
        self.dir = Path(base_dir) / self.prefix
        hosts = {h.name: str(h.ip) for h in cfg.hosts}
        if with_client:
            # The client sits where the libvirt host would: on the gateway address.
            hosts[CLIENT] = str(cfg.network.gateway)
        self.net = netns.Lab(self.prefix, hosts, str(cfg.network.cidr), state_dir=Path(base_dir))
        self.interface = cfg.network.interface
        self.inits: dict[str, subprocess.Popen] = {}
        self.hosts: dict[str, NetnsExecutor] = {}
        self.layouts: dict[str, HostLayout] = {}

    # ------------------------------------------------------------------ lifecycle
    def start(self, daemons: bool = True) -> "HaLab":
        netns.require_tools(*LAB_TOOLS)
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            os.chmod(self.dir.parent, 0o755)
            os.chmod(self.dir, 0o755)
            (self.dir / "owner").write_text(f"{os.getpid()}\n")
            self.net.start(self.interface)
            for host in self.net.hosts:
                self._start_init(host)
            for node in self.web_names:
                self.layouts[node] = self._layout(node)
                self.write_node_files(node)
            if daemons:
                for node in self.web_names:
                    self.start_events(node)
                    self.start_node_exporter(node)
                for node in self.web_names:
                    self.start_nginx(node)
                for node in self.web_names:
                    self.start_keepalived(node)
        except BaseException:
            self.close()
            raise
        return self

    def _start_init(self, host: str) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.net.ns(host), "unshare", "--pid", "--fork",
             "--mount-proc", "--uts", "--kill-child", sys.executable, "-c", _INIT, host],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        )
        self.inits[host] = proc
        line = ""
        try:
            # readline blocks; the init prints "ready" within milliseconds or dies.
            line = _readline_timeout(proc, 10)
        finally:
            if line.strip() != "ready":
                err = proc.stderr.read() if proc.poll() is not None else ""
                raise LabError(f"init of lab host {host} did not start: {line!r} {err}")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        if len(children) != 1:
            raise LabError(f"init of lab host {host}: expected one child of unshare, got {children}")
        self.hosts[host] = NetnsExecutor(host, int(children[0]))

    def keep(self, meta: dict) -> None:
        """Mark the lab as kept after this process exits (``webha lab up``); saved for re-attach."""
        import json

        (self.dir / "owner").write_text("keep\n")
        meta = {**meta, "inits": {h: ex.init_pid for h, ex in self.hosts.items()}}
        (self.dir / "lab.json").write_text(json.dumps(meta, indent=2) + "\n")
        self.inits.clear()  # no longer ours to kill on close()

    @classmethod
    def attach(cls, cfg: StackConfig, prefix: str, base_dir: Path = BASE_DIR) -> "HaLab":
        """A handle on a kept lab (created by ``webha lab up``)."""
        import json

        meta = json.loads((Path(base_dir) / prefix / "lab.json").read_text())
        lab = cls(cfg, prefix=prefix, base_dir=base_dir)
        lab.net.created = [lab.net.switch, *(lab.net.ns(h) for h in lab.net.hosts)]
        for host, pid in meta["inits"].items():
            lab.hosts[host] = NetnsExecutor(host, int(pid))
        for node in lab.web_names:
            lab.layouts[node] = lab._layout(node)
        return lab

    def close(self) -> None:
        for proc in self.inits.values():
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for proc in self.inits.values():
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()
        self.inits.clear()
        self.net.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> "HaLab":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ layout and files
    @property
    def web_names(self) -> list[str]:
        return [h.name for h in self.cfg.web_hosts]

    def host_dir(self, host: str) -> str:
        return str(self.dir / host)

    def _layout(self, node: str) -> HostLayout:
        d = self.host_dir(node)
        return HostLayout(
            paths=lab_paths(d),
            keepalived_pid=f"{d}/run/keepalived.pid",
            vrrp_pid=f"{d}/run/vrrp.pid",
            checkers_pid=f"{d}/run/checkers.pid",
            interface=self.interface,
        )

    def paths(self, node: str) -> Paths:
        return self.layouts[node].paths

    def render_node(self, node: str) -> dict[str, tuple[str, int]]:
        """Every file of a web node: ``{path: (text, mode)}``. Only the paths differ from prod."""
        paths = self.paths(node)
        kctx = keepalived_context(self.cfg, node, paths=paths)
        hctx = host_context(self.cfg, self.cfg.host(node), paths)
        kd, sd = paths.keepalived_dir, paths.script_dir
        return {
            f"{kd}/keepalived.conf": (render("keepalived/keepalived.conf.j2", **kctx), 0o600),
            f"{kd}/vrrp-auth.conf": (
                render("keepalived/vrrp-auth.conf.j2", auth_pass=self.auth_pass or ""), 0o600),
            f"{sd}/check_nginx.sh": (render("keepalived/check_nginx.sh.j2", **kctx), 0o755),
            f"{sd}/notify.sh": (render("keepalived/notify.sh.j2", **kctx), 0o755),
            f"{sd}/nginx-exit.sh": (render("keepalived/nginx-exit.sh.j2", **kctx), 0o755),
            self.nginx_service(node): (
                render("lab/nginx-service.sh.j2", **hctx,
                       lab={"dir": self.host_dir(node), "nginx_conf": self.nginx_conf(node)}),
                0o755,
            ),
            f"{sd}/webha-events.py": (render("keepalived/webha-events.py.j2", **kctx), 0o755),
            f"{sd}/vip-held.sh": (render("keepalived/vip-held.sh.j2", **kctx), 0o755),
            paths.nginx_site: (render("nginx/shop.conf.j2", **hctx), 0o644),
            self.nginx_conf(node): (
                render("lab/nginx-main.conf.j2", **hctx, lab={"dir": self.host_dir(node)}),
                0o644,
            ),
            f"{paths.app_root}/public/index.html": (
                f"<html><body><h1>shop on {node}</h1></body></html>\n", 0o644
            ),
        }

    def nginx_conf(self, node: str) -> str:
        return f"{self.host_dir(node)}/nginx/nginx.conf"

    def nginx_service(self, node: str) -> str:
        """The lab's stand-in for nginx.service + webha's drop-in (no systemd in the lab)."""
        return f"{self.host_dir(node)}/nginx/nginx-service.sh"

    def write_node_files(self, node: str, files: Optional[dict[str, tuple[str, int]]] = None) -> None:
        paths = self.paths(node)
        ensure_script_user(paths.script_user)
        d = self.host_dir(node)
        for sub in ("run", "log", "nginx/tmp", "keepalived/scripts", "metrics"):
            os.makedirs(f"{d}/{sub}", mode=0o755, exist_ok=True)
        for path, (text, mode) in (files or self.render_node(node)).items():
            _write(path, text, mode)
        # Relative includes in the site (fastcgi_params) resolve against nginx.conf's directory.
        params = Path(d, "nginx", "fastcgi_params")
        if not params.exists():
            params.symlink_to("/etc/nginx/fastcgi_params")
        user = pwd.getpwnam(paths.script_user)
        os.makedirs(paths.state_dir, mode=0o755, exist_ok=True)
        os.chown(paths.state_dir, user.pw_uid, user.pw_gid)
        # keepalived refuses scripts in directories writable by non-root (script security).
        for p in (self.dir.parent, self.dir, Path(d), Path(d, "keepalived"), Path(paths.script_dir)):
            os.chown(p, 0, 0)
            os.chmod(p, 0o755)

    # ------------------------------------------------------------------ daemons
    def check_keepalived_config(self, node: str, conf: Optional[str] = None) -> subprocess.CompletedProcess:
        conf = conf or self.layouts[node].keepalived_conf
        return self.hosts[node].run(["keepalived", "-t", "-f", conf, "-l"], timeout=15)

    def start_keepalived(self, node: str, conf: Optional[str] = None) -> None:
        """Test the config in the host first; a config ``keepalived -t`` rejects is never started."""
        lay = self.layouts[node]
        conf = conf or lay.keepalived_conf
        res = self.check_keepalived_config(node, conf)
        if not keepalived_test_passed(res.returncode):
            raise ConfigRejected(
                f"keepalived -t rejected {conf} on {node} (exit {res.returncode}), not started:\n"
                + (res.stderr + res.stdout).strip()
            )
        log = f"{lay.paths.log_dir}/keepalived.log"
        ka = keepalived_context(self.cfg, node, paths=self.paths(node))["keepalived"]
        rt = ka["rttime"]
        # What keepalived.service's drop-in (templates/keepalived/systemd-override.conf.j2) gives
        # a real-time keepalived: no CAP_SYS_RESOURCE and the RLIMIT_RTTIME of its VRRP process.
        limits = (["setpriv", "--bounding-set", "-sys_resource", "--inh-caps", "-sys_resource",
                   "prlimit", f"--rttime={rt['soft']}:{rt['hard']}", "--"]
                  if ka["realtime"] else [])
        self.hosts[node].spawn(
            limits + [
             # stdbuf: keepalived's console log is stdio; line-buffered, the log is current when
             # a test reads it (block-buffered, it ended minutes in the past).
             "stdbuf", "-oL", "-eL",
             "keepalived", "-n", "-l", "-D", "-G", "-P", "-f", conf, "-p", lay.keepalived_pid,
             "-r", lay.vrrp_pid, "-c", lay.checkers_pid],
            log,
        )
        self.wait(lambda: self.keepalived_running(node), 10, f"keepalived on {node} to start")

    def start_events(self, node: str) -> None:
        """The event reader (what the ``webha-events`` unit runs on a guest), before keepalived:
        it makes the notify FIFO keepalived writes to."""
        paths = self.paths(node)
        self.hosts[node].spawn([f"{paths.script_dir}/webha-events.py", "run"],
                               f"{paths.log_dir}/webha-events.log")
        now = f"{paths.state_dir}/events.now.json"
        try:
            self.wait(lambda: os.path.exists(now) and os.path.exists(f"{paths.state_dir}/notify.fifo"), 30,
                      f"the event reader on {node}")
        except LabError as exc:
            raise LabError(f"{exc}; its log:\n{self.log(node, 'webha-events.log')[-2000:]}") from None

    def start_node_exporter(self, node: str) -> None:
        """Debian's prometheus-node-exporter, textfile collector only, on the node's address."""
        paths = self.paths(node)
        addr = f"{self.cfg.host(node).ip}:{METRICS_PORT}"
        self.hosts[node].spawn(
            ["prometheus-node-exporter", "--collector.disable-defaults", "--collector.textfile",
             f"--collector.textfile.directory={paths.metrics_dir}", f"--web.listen-address={addr}"],
            f"{paths.log_dir}/node-exporter.log")
        self.wait(lambda: self.hosts[node].run(
            ["curl", "-sf", "--noproxy", "*", "--max-time", "1", f"http://{addr}/metrics"]).returncode == 0,
            30, f"the node exporter on {node}")  # a start takes seconds on a loaded machine

    def metrics(self, node: str) -> str:
        """The node's metrics as a scraper on the client (the libvirt host's place) sees them."""
        res = self.hosts[CLIENT].run(
            ["curl", "-sf", "--noproxy", "*", "--max-time", "2",
             f"http://{self.cfg.host(node).ip}:{METRICS_PORT}/metrics"], timeout=10, check=True)
        return res.stdout

    def reload_keepalived(self, node: str) -> None:
        """SIGHUP to keepalived on ``node``: what keepalived-apply.sh's reload does on `pulumi up`."""
        self.hosts[node].run(["sh", "-c", 'kill -HUP "$(cat "$1")"', "sh",
                              self.layouts[node].keepalived_pid], check=True, timeout=10)

    def vrrp_pid(self, node: str) -> str:
        """The pid of keepalived's VRRP process on ``node`` (a new one after it died)."""
        return Path(self.layouts[node].vrrp_pid).read_text().strip()

    def keepalived_running(self, node: str) -> bool:
        lay = self.layouts[node]
        return self._pid_alive(node, lay.keepalived_pid) and self._pid_alive(node, lay.vrrp_pid)

    def _pid_alive(self, node: str, pidfile: str) -> bool:
        res = self.hosts[node].run(
            ["sh", "-c", 'p=$(cat "$1" 2>/dev/null) && [ -n "$p" ] && kill -0 "$p"', "sh", pidfile]
        )
        return res.returncode == 0

    def stop_keepalived(self, node: str) -> None:
        """A clean stop (SIGTERM): keepalived sends a priority-0 advert and drops the VIP."""
        lay = self.layouts[node]
        self.hosts[node].run(
            ["sh", "-c", 'kill -TERM "$(cat "$1")" 2>/dev/null; true', "sh", lay.keepalived_pid]
        )
        self.wait(lambda: not self.keepalived_running(node), 10, f"keepalived on {node} to stop")

    def start_nginx(self, node: str) -> None:
        conf = self.nginx_conf(node)
        ex = self.hosts[node]
        res = ex.run(["nginx", "-t", "-q", "-c", conf], timeout=15)
        if res.returncode != 0:
            raise ConfigRejected(f"nginx -t rejected {conf} on {node}:\n{res.stderr.strip()}")
        # Like `systemctl start nginx`: the unit runs nginx-exit.sh after the start and at its exit.
        ex.spawn([self.nginx_service(node)], f"{self.paths(node).log_dir}/nginx-service.log")
        self.wait(lambda: self.healthz(node) == f"ok {node}", 10, f"nginx on {node} to answer")

    def healthz(self, node: str, target: Optional[str] = None) -> Optional[str]:
        ip = target or str(self.cfg.host(node).ip)
        res = self.hosts[node].run(
            ["curl", "-sf", "--noproxy", "*", "--max-time", "1",
             f"http://{ip}:{self.cfg.app.http_port}/healthz"],
            timeout=5,
        )
        return res.stdout.strip() if res.returncode == 0 else None

    # ------------------------------------------------------------------ faults and views
    def link(self, host: str, up: bool) -> None:
        self.net.link(host, up)

    def vip_holders(self) -> list[str]:
        """Web nodes holding the VIP (:func:`webha.vip.holders`: raises if a node is unreadable)."""
        return holders({n: self.hosts[n] for n in self.web_names}, str(self.cfg.vrrp.vip), self.interface)

    def client_get(self, path: str = "/healthz", timeout: float = 2) -> tuple[Optional[str], Optional[str]]:
        """(body, X-Served-By) of GET http://VIP/path from the client namespace, (None, None) on failure."""
        res = self.hosts[CLIENT].run(
            ["curl", "-s", "-f", "--noproxy", "*", "--max-time", str(timeout), "-D", "-",
             f"http://{self.cfg.vrrp.vip}:{self.cfg.app.http_port}{path}"],
            timeout=timeout + 5,
        )
        if res.returncode != 0:
            return None, None
        head, _, body = res.stdout.replace("\r\n", "\n").partition("\n\n")
        served = next(
            (l.split(":", 1)[1].strip() for l in head.splitlines() if l.lower().startswith("x-served-by:")),
            None,
        )
        return body.strip(), served

    def client_argv(self) -> list[str]:
        """Prefix that runs a command in the client's network namespace (the drill's HTTP poller).

        The network namespace only: the poller is this project's Python, and the host's private
        /tmp would hide a checkout that lives under /tmp (a CI clone did)."""
        return self.hosts[CLIENT].prefix(network_only=True)

    def log(self, node: str, name: str = "keepalived.log") -> str:
        try:
            return Path(self.paths(node).log_dir, name).read_text()
        except OSError:
            return ""

    @staticmethod
    def wait(pred: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> float:
        """Poll ``pred`` until true; returns the seconds it took, raises LabError on timeout."""
        t0 = time.monotonic()
        while True:
            try:
                if pred():
                    return time.monotonic() - t0
            except ExecError:
                pass
            if time.monotonic() - t0 > timeout:
                raise LabError(f"timed out after {timeout}s waiting for {what}")
            time.sleep(interval)

    def wait_single_holder(self, timeout: float = 10, settle: float = 0.0) -> str:
        """Wait until exactly one web node holds the VIP (and still does after ``settle`` s)."""
        holder: list[str] = []

        def one() -> bool:
            holder[:] = self.vip_holders()
            return len(holder) == 1

        self.wait(one, timeout, "exactly one VIP holder")
        if settle:
            time.sleep(settle)
            self.wait(one, timeout, "exactly one VIP holder (after settling)")
        return holder[0]


def _readline_timeout(proc: subprocess.Popen, timeout: float) -> str:
    import selectors

    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return ""
        return proc.stdout.readline()
    finally:
        sel.close()


def cleanup_stale(base_dir: Path = BASE_DIR, everything: bool = False,
                  only: Optional[str] = None, kept: bool = False) -> list[str]:
    """:func:`webha.testbed.netns.cleanup_stale` for HA labs (prefix ``whl``)."""
    return netns.cleanup_stale(PREFIX_BASE, base_dir, everything=everything, only=only, kept=kept)
