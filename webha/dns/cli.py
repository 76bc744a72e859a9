"""``python -m webha dns``: the stack's ``dns`` output in the format a DNS tool reads.

    pulumi stack output --json | python -m webha dns --format octodns
    python -m webha dns --format bind --input outputs.json --zone 1.1.10.in-addr.arpa
    python -m webha dns --format powerdns --input outputs.json --output-dir zones/

Without ``--output-dir`` one document goes to stdout (per-zone formats: the forward zone, or
``--zone``); with it, every zone's file is written there (atomically: a reader never sees half a
zone) and the paths are printed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from .contract import ContractError, from_stack_outputs, zone_of
from .formats import FORMATS, PER_ZONE, file_name, render


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", required=True, choices=FORMATS)
    p.add_argument("--input", default="-", metavar="FILE",
                   help="`pulumi stack output --json` (or the dns document); default: stdin")
    p.add_argument("--zone", help="the zone a per-zone format writes to stdout (default: the forward zone)")
    p.add_argument("--output-dir", metavar="DIR", help="write every zone's file here instead of stdout")
    p.add_argument("--name", help="external-dns: the DNSEndpoint's name (default: from the owner)")
    p.add_argument("--namespace", help="external-dns: the DNSEndpoint's namespace")


def _write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run(args) -> int:
    try:
        text = sys.stdin.read() if args.input == "-" else Path(args.input).read_text()
        doc = from_stack_outputs(text)
        opts = {"name": args.name, "namespace": args.namespace}
        if args.output_dir is None:
            sys.stdout.write(render(args.format, doc, zone_of(doc, args.zone), **opts))
            return 0
        out = Path(args.output_dir)
        out.mkdir(parents=True, exist_ok=True)
        zones = [zone_of(doc, args.zone)] if args.zone else doc["zones"]
        if args.format not in PER_ZONE:
            zones = zones[:1]
        for zone in zones:
            path = out / file_name(args.format, zone["zone"])
            _write_atomic(path, render(args.format, doc, zone, **opts))
            print(path)
        return 0
    except (OSError, ContractError) as exc:
        print(f"webha dns: {exc}", file=sys.stderr)
        return 2
