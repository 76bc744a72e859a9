"""The pinning of `python -m webha.hostkeys install` (the HostKey step) against a real SSH server.

The server is paramiko's (an SSH-2 implementation; OpenSSH's sshd is not installed on the test
machines, and installing it would start a system sshd). It answers with one ed25519 host key and
runs nothing: an exec request exits 0. What is under test is this machine's OpenSSH client with
the known_hosts the tool makes: the pinned key is accepted, the previous key of a rotation too, any
other key stops the tool before it sends anything, naming the host.
"""

from __future__ import annotations

import io
import os
import socket
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import paramiko
import pytest

from components.hostkeys import fingerprint, generate, public_key
from tests.conftest import ROOT
from webha.hostkeys import HostKeyMismatch, _run_pinned

pytestmark = pytest.mark.lab


class _Server(paramiko.ServerInterface):
    def __init__(self):
        self.execs: list[bytes] = []
        self.aborted = 0

    def get_allowed_auths(self, username):
        return "publickey"

    def check_auth_publickey(self, username, key):
        return paramiko.AUTH_SUCCESSFUL

    def check_channel_request(self, kind, chanid):
        return paramiko.OPEN_SUCCEEDED

    def check_channel_exec_request(self, channel, command):
        self.execs.append(command)
        channel.send_exit_status(0)
        channel.close()
        return True


def _serve_one(listener, host_key, server: _Server, transports: list) -> None:
    """Accept one connection (if one comes within the listener's timeout) and serve it."""
    try:
        conn, _ = listener.accept()
    except socket.timeout:
        return
    t = paramiko.Transport(conn)
    t.add_server_key(host_key)
    transports.append(t)
    try:
        t.start_server(server=server)
    except (paramiko.SSHException, EOFError):  # the client hung up in the key exchange
        server.aborted += 1


@pytest.fixture
def guest():
    """An SSH server on 127.0.0.1 answering with a fresh host key; yields (port, key, server)."""
    private = generate()
    host_key = paramiko.Ed25519Key.from_private_key(io.StringIO(private))
    server = _Server()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.5)
    stop = threading.Event()
    transports = []

    def serve():
        while not stop.is_set():
            _serve_one(listener, host_key, server, transports)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1], private, server
    stop.set()
    thread.join(5)
    for t in transports:
        t.close()
    listener.close()


@pytest.fixture
def identity(tmp_path):
    key = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    return str(key)


def _args(port, identity):
    return SimpleNamespace(name="web02", ip="127.0.0.1", user="root", port=port, identity=identity)


def test_the_pinned_key_is_accepted(guest, identity):
    import time

    port, private, server = guest
    res = _run_pinned(_args(port, identity), [public_key(private)], ["true"], None, time.monotonic() + 20)
    assert res.returncode == 0 and server.execs == [b"true"]


def test_a_rotation_trusts_the_previous_key_too(guest, identity):
    import time

    port, private, server = guest
    pins = [public_key(generate()), public_key(private)]  # the new key, and the one the guest has
    assert _run_pinned(_args(port, identity), pins, ["true"], None, time.monotonic() + 20).returncode == 0


def test_another_key_stops_before_anything_is_sent_naming_the_host(guest, identity):
    import time

    port, private, server = guest
    pinned = public_key(generate())
    t0 = time.monotonic()
    with pytest.raises(HostKeyMismatch) as exc:
        _run_pinned(_args(port, identity), [pinned], ["cat"], "secret-on-stdin", time.monotonic() + 60)
    msg = str(exc.value)
    assert msg.startswith("web02 (127.0.0.1) answered with a host key that is not its pinned key")
    assert fingerprint(pinned) in msg and "Host key verification failed" in msg
    deadline = time.monotonic() + 15  # the server thread sees the hang-up after the client exits
    while server.aborted == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.execs == [] and server.aborted == 1  # dropped in the key exchange: nothing ran
    assert time.monotonic() - t0 < 30, "a wrong key is not retried"


# -- a rotation end to end: the install script over SSH, against a server that reloads like sshd --

_SYSTEMCTL = """#!/bin/sh
# systemd's `systemctl reload ssh` is `kill -HUP $MAINPID`: it returns at once and sshd re-executes
# (it stops listening until it has). Here: ask the test's SSH server to reload, return once it has
# stopped listening.
[ "$*" = "reload ssh" ] || { echo "unexpected: systemctl $*" >&2; exit 2; }
[ -z "$GUEST_RELOAD_FAILS" ] || exit 1  # a reload that fails without a word
: > "$GUEST_STATE/reload"
while [ -e "$GUEST_STATE/reload" ]; do sleep 0.05; done
"""

_SSHD = """#!/bin/sh
# `sshd -t [-o HostKey=FILE]`: the config test, which loads the host keys (here: ed25519's only).
[ "$1" = -t ] || { echo "unexpected: sshd $*" >&2; exit 2; }
key=$GUEST_SSH_DIR/ssh_host_ed25519_key
[ "${2:-}" = -o ] && key=${3#HostKey=}
ssh-keygen -y -f "$key" > /dev/null
"""


class _Guest(_Server):
    """Runs each exec request with `sh -c` (as sshd's login shell does), stdin/stdout/stderr
    and the exit status carried over the channel."""

    def __init__(self, env: dict):
        super().__init__()
        self.env = env

    def check_channel_exec_request(self, channel, command):
        self.execs.append(command)
        threading.Thread(target=self._run, args=(channel, command.decode()), daemon=True).start()
        return True

    def _run(self, channel, command):
        proc = subprocess.Popen(["sh", "-c", command], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, env=self.env)

        def feed():
            try:
                while data := channel.recv(65536):
                    proc.stdin.write(data)
                    proc.stdin.flush()
                proc.stdin.close()
            except (OSError, EOFError):
                pass

        def drain(stream, send):
            while data := stream.read1(65536):
                send(data)

        pumps = [threading.Thread(target=feed, daemon=True),
                 threading.Thread(target=drain, args=(proc.stdout, channel.sendall), daemon=True),
                 threading.Thread(target=drain, args=(proc.stderr, channel.sendall_stderr), daemon=True)]
        for p in pumps:
            p.start()
        rc = proc.wait()
        pumps[1].join(10)
        pumps[2].join(10)
        channel.send_exit_status(rc)
        channel.close()


@pytest.fixture
def sshd_guest(tmp_path):
    """A guest for the install script: host keys in ``ssh_dir`` (it starts with ``old`` and an
    RSA key), `systemctl` and `sshd` on PATH acting on an SSH server that, like sshd, reads its
    ed25519 key at start and on a reload, and does not listen for ``down`` s while it reloads (a
    TCG guest's sshd re-executing). Yields a namespace: port, ssh_dir, old (private key), env,
    reloads (count)."""
    ssh_dir, state, bin_dir = tmp_path / "etc-ssh", tmp_path / "state", tmp_path / "bin"
    for d in (ssh_dir, state, bin_dir):
        d.mkdir()
    old = generate()
    (ssh_dir / "ssh_host_ed25519_key").write_text(old)
    (ssh_dir / "ssh_host_ed25519_key.pub").write_text(public_key(old) + "\n")
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-f",
                    str(ssh_dir / "ssh_host_rsa_key")], check=True)
    for name, text in (("systemctl", _SYSTEMCTL), ("sshd", _SSHD)):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
    g = SimpleNamespace(ssh_dir=ssh_dir, old=old, reloads=0, down=3.0,
                        env={"PATH": f"{bin_dir}:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": str(tmp_path),
                             "GUEST_STATE": str(state), "GUEST_SSH_DIR": str(ssh_dir)})
    server = _Guest(g.env)
    stop = threading.Event()
    transports = []

    def listen(port=0):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))
        s.listen(8)
        s.settimeout(0.05)
        return s

    listener = listen()
    g.port = listener.getsockname()[1]

    def serve():
        nonlocal listener
        key = paramiko.Ed25519Key.from_private_key_file(str(ssh_dir / "ssh_host_ed25519_key"))
        while not stop.is_set():
            if (state / "reload").exists():
                listener.close()
                (state / "reload").unlink()  # systemctl returns: sshd is re-executing
                time.sleep(g.down)
                key = paramiko.Ed25519Key.from_private_key_file(str(ssh_dir / "ssh_host_ed25519_key"))
                listener = listen(g.port)
                g.reloads += 1
                continue
            _serve_one(listener, key, server, transports)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield g
    stop.set()
    thread.join(5)
    for t in transports:
        t.close()
    listener.close()


def _install(g, identity, new: str, previous: str) -> subprocess.CompletedProcess:
    """The HostKey step's command as components/hostkey_step.py makes it (stdin: the key)."""
    from components.render import render
    from components.topology import Paths, host_context
    from tests.lab.conftest import stack

    cfg = stack()
    ctx = host_context(cfg, cfg.host("web02"), Paths(ssh_dir=str(g.ssh_dir)))
    script = render("scripts/host-key-install.sh.j2", **ctx, public_key=public_key(new), ssh_port=g.port)
    env = {**os.environ, "WEBHA_HOST_KEY": public_key(new), "WEBHA_HOST_KEY_SCRIPT": script,
           "PULUMI_COMMAND_STDOUT": previous + "\n"}
    return subprocess.run([sys.executable, "-m", "webha.hostkeys", "install", "--name", "web02",
                           "--ip", "127.0.0.1", "--port", str(g.port), "--identity", identity, "--wait", "60"],
                          input=new, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)


def _key_lines(private: str) -> list[str]:
    return [line for line in private.splitlines() if not line.startswith("-----")]


def test_a_rotation_waits_for_sshd_to_answer_again_and_installs_only_the_new_key(sshd_guest, identity):
    """A rotation (previous stdout = the guest's key): the new key replaces it, other key types go,
    sshd's reload (3 s without a listener) is waited for, the step prints the new public key. Then
    an up that changes nothing reloads nothing."""
    g = sshd_guest
    new = generate()
    res = _install(g, identity, new, public_key(g.old))
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == public_key(new)
    assert "host-key web02: ok (changed=1)" in res.stderr
    assert sorted(p.name for p in g.ssh_dir.iterdir()) == ["ssh_host_ed25519_key", "ssh_host_ed25519_key.pub"]
    assert (g.ssh_dir / "ssh_host_ed25519_key").read_text() == new
    assert (g.ssh_dir / "ssh_host_ed25519_key").stat().st_mode & 0o777 == 0o600
    scan = subprocess.run(["ssh-keyscan", "-t", "ed25519", "-p", str(g.port), "127.0.0.1"],
                          capture_output=True, text=True, timeout=30).stdout.split()
    assert " ".join(scan[1:3]) == public_key(new) and g.reloads == 1
    assert not [line for line in _key_lines(new) if line in res.stdout + res.stderr]
    again = _install(g, identity, new, public_key(new))
    assert again.returncode == 0, again.stderr
    assert "ok (changed=0)" in again.stderr and g.reloads == 1


def test_a_failing_install_names_the_failing_command_and_never_the_key(sshd_guest, identity):
    """A step of the script that fails without a word (here: the reload) is named in the error,
    with the exit status; the private key appears nowhere in the output."""
    g = sshd_guest
    g.env["GUEST_RELOAD_FAILS"] = "1"
    new = generate()
    res = _install(g, identity, new, public_key(g.old))
    assert res.returncode == 1
    assert "[web02] the install script (templates/scripts/host-key-install.sh.j2) on the guest -> exit 1" in res.stderr
    assert "`systemctl reload ssh` failed (exit 1)" in res.stderr, res.stderr
    assert not [line for line in _key_lines(new) if line in res.stdout + res.stderr]
