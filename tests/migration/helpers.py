"""Shared by the migration tests: the test stack config (the local stack + test secrets)."""

from __future__ import annotations

import contextlib
from pathlib import Path

import yaml

from components.config import StackConfig, parse_config

ROOT = Path(__file__).resolve().parents[2]
DB_PASSWORD = "Tst-app-pw-7f3a9c21e5"


def stack_config(**database) -> StackConfig:
    doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())
    raw = {k.split(":", 1)[1]: v for k, v in doc["config"].items()}
    # Snapshot mode unless a test asks for replicate (the stack default): most of the tier proves
    # the copy and its verification, which both modes run; tests/migration/test_replicate.py and
    # bench/db_move.py pass mode="replicate".
    raw["database"] = {**raw.get("database", {}), "seedSample": True, "mode": "snapshot", **database}
    raw["dbPassword"] = DB_PASSWORD
    raw["vrrpAuthPass"] = "vrrp1234"
    return parse_config(raw, {"dbPassword", "vrrpAuthPass"})


@contextlib.contextmanager
def migrating(lab, cfg: StackConfig):
    """Run the lab's steps for another stack config (another database, password) for a while."""
    old = lab.cfg
    lab.cfg = cfg
    try:
        yield lab
    finally:
        lab.cfg = old
