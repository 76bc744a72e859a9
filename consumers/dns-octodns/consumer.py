"""A DNS pipeline's side of the hand-off: read a webha stack's ``dns`` output through a
``StackReference`` and write its octoDNS zone files (``<outputDir>/<zone>.yaml``).

The files are written by a ``command:local:Command`` running ``python -m webha dns --format
octodns`` with the output on stdin, so ``pulumi preview`` writes nothing and a changed record set
(a new VIP, say) re-runs the command as an update. The document is checked against
webha.dns/v1 at preview already: a stack publishing anything else fails the preview.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path

import pulumi
from pulumi_command import local

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def zone_files(doc: dict, out_dir: Path) -> list[str]:
    return [str(out_dir / f"{zone['zone']}.yaml") for zone in doc["zones"]]


def build() -> dict:
    from webha.dns.contract import validate

    cfg = pulumi.Config()
    ref = pulumi.StackReference(cfg.require("webhaStack"))
    out_dir = HERE / cfg.get("outputDir", "zones")  # an absolute outputDir stays absolute
    doc = ref.require_output("dns").apply(validate)
    files = doc.apply(lambda d: zone_files(d, out_dir))
    write = shlex.join([sys.executable, "-m", "webha", "dns", "--format", "octodns",
                        "--output-dir", str(out_dir)])
    command = local.Command(
        "octodns-zones",
        create=write,
        stdin=doc.apply(lambda d: json.dumps({"dns": d}, sort_keys=True)),
        delete=files.apply(lambda fs: shlex.join(["rm", "-f", "--", *fs])),
        dir=str(ROOT),
    )
    pulumi.export("zoneFiles", files)
    pulumi.export("owner", doc.apply(lambda d: d["owner"]))
    return {"command": command, "files": files, "doc": doc}
