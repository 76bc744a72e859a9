"""This machine's copy of a stack file: the committed settings plus this machine's secrets.

Why: a Pulumi stack file that carries ``encryptionsalt`` and ``secure:`` values opens only with the
passphrase that wrote them, so a committed one breaks every other machine (`could not create
secrets manager for new stack: incorrect passphrase`). The committed ``stacks/Pulumi.<stack>.yaml``
therefore holds settings only; ``scripts/local-env.sh`` keeps the salt and the secrets that this
machine generated in a file next to its own state backend, and before every run rebuilds it as
"committed settings + this machine's salt and secrets". Every ``pulumi`` call of the scripts passes
it with ``--config-file``.

    python -m webha.localstack COMMITTED RUNTIME   # (re)write RUNTIME; refuse a committed secret
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import yaml

MACHINE_KEYS = ("encryptionsalt", "secretsprovider", "encryptedkey")


class StackFileError(ValueError):
    pass


def has_secure(value) -> bool:
    """A ``secure:`` value, at the top or anywhere inside (``config set --secret --path a.b``)."""
    if isinstance(value, dict):
        return "secure" in value or any(has_secure(v) for v in value.values())
    if isinstance(value, list):
        return any(has_secure(v) for v in value)
    return False


def machine_specific(doc: dict) -> list[str]:
    """Keys of a stack document that only one machine's passphrase opens."""
    found = [k for k in MACHINE_KEYS if k in doc]
    for key, value in (doc.get("config") or {}).items():
        if has_secure(value):
            found.append(key)
    return found


def merge(committed: dict, runtime: dict) -> dict:
    """The committed settings, with the runtime file's salt and secure values kept."""
    bad = machine_specific(committed)
    if bad:
        raise StackFileError(
            "the committed stack file carries machine-specific secrets or salt "
            f"({', '.join(bad)}): remove them; this machine's secrets live in the runtime copy")
    out = dict(committed)
    config = dict(committed.get("config") or {})
    for key, value in (runtime.get("config") or {}).items():
        if has_secure(value) and key not in config:
            config[key] = value
    out["config"] = config
    for key in MACHINE_KEYS:
        if key in runtime:
            out[key] = runtime[key]
    return out


def write(committed_path: Path, runtime_path: Path) -> None:
    committed = yaml.safe_load(committed_path.read_text()) or {}
    runtime = (yaml.safe_load(runtime_path.read_text()) or {}) if runtime_path.exists() else {}
    doc = merge(committed, runtime)
    runtime_path.parent.mkdir(parents=True, exist_ok=True)
    tmp = runtime_path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(f"# Made by webha/localstack.py from {committed_path}: edit that file, not this one.\n")
        yaml.safe_dump(doc, fh, sort_keys=False, allow_unicode=True)
    os.replace(tmp, runtime_path)


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m webha.localstack COMMITTED RUNTIME", file=sys.stderr)
        return 2
    try:
        write(Path(argv[0]), Path(argv[1]))
    except StackFileError as exc:
        print(f"{argv[0]}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
