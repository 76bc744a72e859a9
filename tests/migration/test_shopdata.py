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


def test_the_item_the_order_path_sells_is_stocked_for_every_test():
    """shop_order.php orders goods 1: the sample has stock for any load (the e2e load sold a
    random 0-500 out, and every later order failed with error 1690)."""
    goods = _sql(50).split("INSERT INTO goods (", 1)[1].split(") VALUES\n", 1)
    cols = goods[0].split(", ")
    first = goods[1].split("\n", 1)[0]
    assert first.startswith(f"({shopdata.ORDER_GOODS_ID},")
    values = first.strip("(),").split(",")
    # counted from the end: the columns after stock (on_sale, image, created_at, updated_at) hold no comma
    from_end = len(cols) - cols.index("stock")
    assert int(values[-from_end]) == shopdata.ORDER_GOODS_STOCK >= 10_000_000, (cols, first[:200])
