"""The sample shop generator: deterministic, and it has what a migration can get wrong."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys

import pytest

from webha.testbed import shopdata

pytestmark = pytest.mark.unit


def _sql(rows: int, seed: int = 1) -> str:
    buf = io.StringIO()
    shopdata.generate(buf, rows, seed=seed, database="ds_shop", blob_kb=4)
    return buf.getvalue()


def test_deterministic_and_seeded():
    a, b = _sql(50), _sql(50)
    assert hashlib.sha256(a.encode()).digest() == hashlib.sha256(b.encode()).digest()
    assert _sql(50, seed=2) != a
    assert len(_sql(100)) > len(a)


def test_covers_the_hard_cases():
    sql = _sql(200)
    for needle in ("CREATE TABLE order_items", "FOREIGN KEY", "CREATE TRIGGER", "CREATE FUNCTION",
                   "CREATE PROCEDURE", "CREATE EVENT", "CREATE VIEW", "NULL", "X'", "🙂", "王",
                   "utf8mb4", "CREATE DATABASE `ds_shop`"):
        assert needle in sql, needle
    assert shopdata.counts(200)["orders"] == 400


def test_cli_writes_sql_to_stdout():
    out = subprocess.run([sys.executable, "-m", "webha.testbed.shopdata", "--rows", "20", "--blob-kb", "2"],
                         capture_output=True, text=True, check=True).stdout
    assert out.startswith("-- webha sample shop") and "INSERT INTO users" in out
