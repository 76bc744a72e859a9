"""The `dns` tier: the exporters' documents, read by the real DNS tools. A missing tool fails the
test naming its package (scripts/install-deps.sh installs them); nothing is skipped."""

from __future__ import annotations

import importlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from components.config import parse_config
from components.outputs import stack_outputs
from tests.conftest import ROOT
from webha.stackfile import read_stack_values, secrets_for


def need_tool(name: str, package: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin")
    if not path:
        pytest.fail(f"{name} not found: install the Debian package {package} (scripts/install-deps.sh)", pytrace=False)
    return path


def need_module(module: str, package: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pytest.fail(f"{module}: {exc}; install the PyPI package {package} (requirements.txt)", pytrace=False)


def outputs_json(stack: str = "dev", **change) -> str:
    """What `pulumi stack output --json` prints for the stack (``change`` deep-merges into the
    stack's webha:* values, e.g. vrrp={"vip": ...})."""
    raw = read_stack_values(ROOT / "stacks" / f"Pulumi.{stack}.yaml")
    secrets = secrets_for(raw)  # the dev stack carries no VRRP password
    raw.update(secrets)
    for key, fields in change.items():
        raw[key] = {**raw.get(key, {}), **fields}
    return json.dumps(stack_outputs(parse_config(raw, set(secrets)), "webha", stack))


def export(fmt: str, outputs: str, out: Path | None = None, *args: str) -> subprocess.CompletedProcess:
    """``python -m webha dns`` as an operator runs it (stdin = the stack outputs)."""
    argv = [sys.executable, "-m", "webha", "dns", "--format", fmt, *args]
    if out is not None:
        argv += ["--output-dir", str(out)]
    res = subprocess.run(argv, cwd=ROOT, input=outputs, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return res


def contract_records(outputs: str, zone: str | None = None) -> set[tuple]:
    """(fqdn, type, ttl, values) of every record of the contract (one zone, or all)."""
    doc = json.loads(outputs)["dns"]
    return {(r["fqdn"], r["type"], r["ttl"], tuple(sorted(r["values"])))
            for z in doc["zones"] if zone in (None, z["zone"]) for r in z["records"]}


def zones_of(outputs: str) -> list[str]:
    return [z["zone"] for z in json.loads(outputs)["dns"]["zones"]]


def load_octodns(directory: Path, zone_name: str):
    """The zone as octoDNS's YamlProvider reads it: strict (not lenient), key order enforced."""
    need_module("octodns", "octodns")
    from octodns.provider.yaml import YamlProvider
    from octodns.zone import Zone

    zone = Zone(zone_name + ".", [])
    # escaped_semicolons: octoDNS 2.0's default; the contract's TXT values hold no ';' (its schema).
    YamlProvider("webha", str(directory), escaped_semicolons=False).populate(zone, lenient=False)
    return zone


def octodns_plan(deployed: Path, desired: Path, zone_names: list[str]) -> list:
    """octoDNS's own plan: ``deployed`` as a YamlProvider target, ``desired``'s zones as the wish."""
    need_module("octodns", "octodns")
    from octodns.provider.yaml import YamlProvider

    target = YamlProvider("deployed", str(deployed), escaped_semicolons=False)
    changes = []
    for name in zone_names:
        plan = target.plan(load_octodns(desired, name))
        changes += plan.changes if plan else []
    return changes
