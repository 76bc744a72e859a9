"""Operator side of the pinned SSH host keys (components/hostkeys.py says why they are pinned).

    python -m webha.hostkeys generate                # a new private key on stdout (pipe it into
                                                     #   pulumi config set --secret --path sshHostKeys.HOST)
    python -m webha.hostkeys hosts STACK_FILE        # the host names (scripts/local-env.sh)
    python -m webha.hostkeys known-hosts OUT         # known_hosts from `pulumi stack output --json` on stdin
    python -m webha.hostkeys install --name ... ...  # the HostKey step (components/hostkey_step.py)

``install`` is what makes a rotation safe. It runs on the machine that runs Pulumi, as the
``command:local:Command`` of each host's HostKey step, with the host's private key on stdin:

1. connect with ``StrictHostKeyChecking=yes`` and a known_hosts that holds only the host's pinned
   keys: the key it must have now, and on an update the key the step installed last time (the
   engine hands the previous stdout over as ``PULUMI_COMMAND_STDOUT``). Any other key fails at once,
   naming the host; nothing has been sent;
2. run the install script (templates/scripts/host-key-install.sh.j2) with the key on stdin: it
   checks the key and sshd's config before it replaces the old key, reloads sshd and waits until
   sshd answers with the new key (it does not listen while it re-executes). A failure names the
   failing command with the guest's stderr, never a line of the key;
3. connect again, trusting the new key only, and print it (the step's stdout).

A failure anywhere leaves the guest on the old or the new key, and both stay pinned until a
step succeeds: the next ``pulumi up`` picks up from either.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from components.hostkeys import (HostKeyError, fingerprint, generate, known_hosts_lines, public_key,
                                stack_known_hosts)

from .executor import ExecError, SshExecutor

MISMATCH = "Host key verification failed"


class HostKeyMismatch(RuntimeError):
    pass


def _executor(args, known_hosts: str) -> SshExecutor:
    return SshExecutor(args.name, args.ip, args.identity, args.user, args.port).pin(known_hosts)


def _redact(text: str, secret: str | None) -> str:
    """``text`` without any line of ``secret`` (the private key on stdin): what goes into an error
    message is the guest's output, and nothing there may quote the key."""
    for line in (secret or "").splitlines():
        line = line.strip()
        if len(line) >= 8 and not line.startswith("-----"):
            text = text.replace(line, "[private key]")
    return text


def _failure(args, what: str, res, secret: str | None) -> str:
    """Why a command on the guest failed: its exit status, stderr and the end of stdout (the
    install script names its failing command on stderr), never empty, never the key."""
    err, out = (res.stderr or "").strip(), (res.stdout or "").strip()
    parts = [f"stderr: {err[-2000:]}" if err else "no stderr"]
    if out:
        parts.append(f"stdout: {out[-1000:]}")
    elif not err:
        parts.append("no stdout")
    return _redact(f"[{args.name}] {what} on the guest -> exit {res.returncode}; {'; '.join(parts)}", secret)


def _run_pinned(args, pins: list[str], argv: list[str], stdin: str | None, deadline: float,
                what: str | None = None, timeout: float = 60):
    """Run ``argv`` on the host, trusting only ``pins``; retried while the guest does not answer
    (a booting TCG guest), never after a wrong key. ``what`` names the command in errors."""
    with tempfile.TemporaryDirectory(prefix="webha-hostkey-") as tmp:
        kh = Path(tmp) / "known_hosts"
        kh.write_text(known_hosts_lines(([args.ip], p) for p in pins))
        ex = _executor(args, str(kh))
        while True:
            try:
                res = ex.run(argv, timeout=timeout, input=stdin)
            except ExecError as exc:  # ssh itself failed (exit 255) or timed out: not the command
                if MISMATCH in str(exc):
                    raise HostKeyMismatch(
                        f"{args.name} ({args.ip}) answered with a host key that is not its pinned key "
                        f"({' or '.join(fingerprint(p) for p in pins)}); nothing was sent. "
                        f"ssh: {exc}") from None
                if time.monotonic() > deadline:
                    raise ExecError(_redact(str(exc), stdin)) from None
            else:
                if res.returncode != 0:
                    raise ExecError(_failure(args, what or shlex.join(argv), res, stdin))
                return res
            time.sleep(5)


def install(args) -> int:
    private = sys.stdin.read()
    try:
        new = public_key(private)
    except HostKeyError as exc:
        print(f"webha hostkey {args.name}: the key on stdin: {exc}", file=sys.stderr)
        return 2
    if new != os.environ.get("WEBHA_HOST_KEY"):
        print(f"webha hostkey {args.name}: WEBHA_HOST_KEY is not the public half of the key on stdin",
              file=sys.stderr)
        return 2
    script = os.environ["WEBHA_HOST_KEY_SCRIPT"]
    prev = (os.environ.get("PULUMI_COMMAND_STDOUT") or "").strip()
    pins = [new] + ([prev] if prev.startswith("ssh-ed25519 ") and prev != new else [])
    deadline = time.monotonic() + args.wait
    try:
        # the script waits up to 90 s for sshd's reload (TCG guests are slow): room for it
        res = _run_pinned(args, pins, ["bash", "-c", script], private, deadline,
                          what="the install script (templates/scripts/host-key-install.sh.j2)", timeout=180)
        print(res.stdout.strip(), file=sys.stderr)
        _run_pinned(args, [new], ["true"], None, time.monotonic() + 60)
    except (HostKeyMismatch, ExecError) as exc:
        print(f"webha hostkey: {exc}", file=sys.stderr)
        return 1
    print(new)
    return 0


def known_hosts(args) -> int:
    try:
        text = stack_known_hosts(json.load(sys.stdin))
    except (ValueError, HostKeyError) as exc:
        print(f"webha hostkeys known-hosts: {exc}", file=sys.stderr)
        return 1
    out = Path(args.out)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, out)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m webha.hostkeys")
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("generate", help="print a new ed25519 private key (OpenSSH format)")
    hs = sub.add_parser("hosts", help="the host names of a stack file, one a line")
    hs.add_argument("stack_file")
    kh = sub.add_parser("known-hosts", help="write known_hosts from `pulumi stack output --json` (stdin)")
    kh.add_argument("out")
    ins = sub.add_parser("install", help="the HostKey step: make the guest answer with the key on stdin")
    ins.add_argument("--name", required=True)
    ins.add_argument("--ip", required=True)
    ins.add_argument("--user", default="root")
    ins.add_argument("--port", type=int, default=22)
    ins.add_argument("--identity", required=True, help="the SSH private key to log in with (a path)")
    ins.add_argument("--wait", type=float, default=900, help="seconds to wait for the guest's sshd")
    args = ap.parse_args(argv)
    if args.cmd == "generate":
        sys.stdout.write(generate())
        return 0
    if args.cmd == "hosts":
        from .stackfile import read_stack_values

        print("\n".join(h["name"] for h in read_stack_values(args.stack_file).get("hosts") or []))
        return 0
    return known_hosts(args) if args.cmd == "known-hosts" else install(args)


if __name__ == "__main__":
    sys.exit(main())
