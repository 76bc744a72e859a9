"""The migration of a hostile dataset (tests/migration/hostile.py), and the mutation table: after a
verified copy, one change on the target; the verifier must notice it and name the table or object."""

from __future__ import annotations

import pytest

from . import hostile
from .helpers import migrating, stack_config

pytestmark = pytest.mark.migration

PLAN = ("db-migrate-credential", "db-target-prepare", "db-migrate", "db-target-finish")


@pytest.fixture(scope="module")
def hostile_cfg():
    return stack_config(name=hostile.DB, seedSample=False)


@pytest.fixture(scope="module")
def hostile_source(mlab):
    mlab.src.sql(hostile.sql(), timeout=300)
    return mlab


@pytest.fixture
def hostile_copy(hostile_source, hostile_cfg):
    """mysql01 with a complete, verified copy of ds_hostile (a new one after any mutation)."""
    lab = hostile_source
    with migrating(lab, hostile_cfg):
        if getattr(lab, "state", None) != "hostile-clean":
            lab.tgt.init().start()
            for name in PLAN:
                res = lab.run_step(lab.step(name))
                assert res.returncode == 0, str(res)
            lab.state = "hostile-clean"
        yield lab


def verify_again(lab):
    """The plan again: the migrate step finds the copy complete and only compares the sides."""
    for name in PLAN[:2]:
        res = lab.run_step(lab.step(name))
        assert res.returncode == 0, str(res)
    return lab.run_step(lab.step("db-migrate"))


def test_hostile_dataset_copied_and_verified(hostile_copy):
    lab = hostile_copy
    # Every name survived; the row total counts `order line` (a name with a space) too.
    q = (f"SELECT rows_n, tables_n FROM webha_meta.migration WHERE db_name = '{hostile.DB}'")
    assert lab.tgt.value(q).split("\t") == [str(hostile.row_total()), "8"]
    res = verify_again(lab)
    assert res.returncode == 0, str(res)
    assert "target identical to the source: 8 tables, %d rows" % hostile.row_total() in res.stdout, str(res)
    assert "1 triggers, 2 routines, 1 events, 1 views" in res.stdout
    # Byte-exact where the verifier could be lenient: blobs, edges, the table without a key.
    for q in ("SELECT MD5(GROUP_CONCAT(MD5(`data`) ORDER BY `id`)), SUM(LENGTH(`data`)) FROM `blobs`",
              "SELECT GROUP_CONCAT(CONCAT_WS('|', `id`, `d`, `dt`, `ts`, `f`, HEX(`bits`), QUOTE(`s`)) ORDER BY `id`) FROM `edges`",
              "SELECT GROUP_CONCAT(CONCAT_WS('|', QUOTE(`a`), QUOTE(`b`), `n`) ORDER BY 1) FROM `no key`"):
        assert lab.tgt.value("SET time_zone = '+00:00'; " + q, db=hostile.DB) == \
            lab.src.value("SET time_zone = '+00:00'; " + q, db=hostile.DB)
    # The copied objects work, owned by the role (never root, never the dropped account).
    assert lab.tgt.value("SELECT `总价`(7) = (SELECT `总价`(7))", db=hostile.DB) == "1"
    definers = lab.tgt.value(
        "SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA = 'ds_hostile' UNION "
        "SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = 'ds_hostile' UNION "
        "SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA = 'ds_hostile' UNION "
        "SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA = 'ds_hostile'").split("\n")
    assert {d.rstrip("@") for d in definers} == {hostile.OWNER}


@pytest.mark.parametrize("mutation", hostile.MUTATIONS, ids=str)
def test_mutation_is_noticed_and_named(hostile_copy, mutation):
    lab = hostile_copy
    lab.state = "hostile-dirty"
    lab.tgt.sql(mutation.sql, db=hostile.DB)
    res = verify_again(lab)
    assert "identical" not in res.stdout, f"{mutation}: the verifier was fooled\n{res}"
    assert "has changed since the migration" in res.stdout, str(res)
    report = [line.strip() for line in res.stderr.splitlines()]
    assert any(line.startswith(mutation.names) for line in report), f"{mutation}:\n{res.stderr}"
