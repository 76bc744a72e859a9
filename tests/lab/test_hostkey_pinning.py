"""The pinning of `python -m webha.hostkeys install` (the HostKey step) against a real SSH server.

The server is paramiko's (an SSH-2 implementation; OpenSSH's sshd is not installed on the test
machines, and installing it would start a system sshd). It answers with one ed25519 host key and
runs nothing: an exec request exits 0. What is under test is this machine's OpenSSH client with
the known_hosts the tool makes: the pinned key is accepted, the previous key of a rotation too, any
other key stops the tool before it sends anything, naming the host.
"""

from __future__ import annotations

import io
import socket
import subprocess
import threading
from types import SimpleNamespace

import paramiko
import pytest

from components.hostkeys import fingerprint, generate, public_key
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
            try:
                conn, _ = listener.accept()
            except socket.timeout:
                continue
            t = paramiko.Transport(conn)
            t.add_server_key(host_key)
            transports.append(t)
            try:
                t.start_server(server=server)
            except (paramiko.SSHException, EOFError):  # the client hung up in the key exchange
                server.aborted += 1

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
