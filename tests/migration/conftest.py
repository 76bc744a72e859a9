"""Fixtures: one lab per session (web01, mysql01, web02, stranger as network namespaces, real
mariadbd on web01 and mysql01), torn down even when a test fails or the run is interrupted."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from webha.testbed.mariadb_lab import MigrationLab

from .helpers import stack_config

SEED_ROWS = int(os.environ.get("WEBHA_TEST_SEED_ROWS", "1500"))


@pytest.fixture(scope="session")
def cfg():
    return stack_config()


@pytest.fixture(scope="session")
def mlab(cfg):
    """The lab with a seeded source (loaded by the plan's own seed step)."""
    base = Path(tempfile.mkdtemp(prefix="webha-mig-"))
    lab = MigrationLab(cfg, base, seed_rows=SEED_ROWS)
    try:
        lab.start()
        res = lab.run_step(lab.step("db-seed-sample"))
        assert res.returncode == 0, str(res)
        lab.state = "seeded"
        yield lab
    finally:
        lab.close()
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def fresh_target(mlab):
    """A brand-new mysql01 (empty datadir, Debian-like config bound to 127.0.0.1), and a source
    that is not retired (writable, no record of an earlier move)."""
    mlab.src.reset_retired()
    mlab.tgt.init().start()
    mlab.state = "fresh"
    return mlab


@pytest.fixture
def migrated(mlab):
    """mysql01 after a complete, successful plan run (reused while no test changed it)."""
    if getattr(mlab, "state", None) != "migrated":
        mlab.src.reset_retired()
        mlab.tgt.init().start()
        results = mlab.run_plan()
        for res in results:
            assert res.returncode == 0, str(res)
        mlab.state = "migrated"
    return mlab
