"""The guests' SSH host keys: one ed25519 pair per host and stack, pinned on every connection.

Why pinned keys and not trust on first use: every step of the tier runs as root over SSH with
secrets on stdin; whoever answers on a guest's address would get them. The private halves live in
the stack config as one Pulumi secret (``webha:sshHostKeys``, a map host -> OpenSSH private key,
set with ``pulumi config set --secret --path sshHostKeys.HOST`` from stdin), so they are made once
per stack, never derivable, never in plaintext state, and a config change rotates one host's key.
cloud-init installs a key at first boot (``ssh_keys``); the public half is what every connection
expects (pulumi-command's ``host_key``, OpenSSH's ``StrictHostKeyChecking=yes`` with a known_hosts
made by :func:`known_hosts_lines`).

The key work is done by ``cryptography`` (what paramiko and friends use), never by hand.
"""

from __future__ import annotations

from typing import Iterable, Mapping

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

KEY_TYPE = "ssh-ed25519"


class HostKeyError(ValueError):
    pass


def generate() -> str:
    """A new ed25519 private key in OpenSSH format (unencrypted: sshd reads it at start)."""
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


def public_key(private_openssh: str) -> str:
    """``ssh-ed25519 AAAA...`` (no comment) of an OpenSSH private key; refuses anything else."""
    try:
        key = serialization.load_ssh_private_key(private_openssh.encode(), password=None)
    except (ValueError, TypeError) as exc:
        # The message never quotes the key.
        raise HostKeyError(f"not an unencrypted OpenSSH private key ({type(exc).__name__})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise HostKeyError(f"must be an ed25519 key, not {type(key).__name__}")
    return key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def fingerprint(public: str) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint of a public key line (what ``ssh`` prints)."""
    import base64
    import hashlib

    blob = base64.b64decode(public.split()[1])
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def known_hosts_lines(hosts: Iterable[tuple[Iterable[str], str]]) -> str:
    """known_hosts text: one line per (names, public key); names are IPs and/or host names."""
    out = []
    for names, pub in hosts:
        if not pub.startswith(KEY_TYPE + " "):
            raise HostKeyError(f"{','.join(names)}: not an {KEY_TYPE} public key")
        out.append(f"{','.join(names)} {pub}")
    return "".join(line + "\n" for line in out)


def stack_known_hosts(outputs: Mapping) -> str:
    """known_hosts from a stack's outputs (``pulumi stack output --json``): each host by IP."""
    keys, ips = outputs.get("sshHostKeys"), outputs.get("hosts")
    if not isinstance(keys, dict) or not isinstance(ips, dict) or set(keys) != set(ips):
        raise HostKeyError("the stack outputs lack `sshHostKeys` for every host of `hosts`")
    return known_hosts_lines(([ips[name]], keys[name]) for name in sorted(keys))
