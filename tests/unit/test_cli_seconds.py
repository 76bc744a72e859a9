"""Options that take seconds refuse what is not a positive, finite number, naming the option.

Why: `--max-no-holder nan` made the drill's no-holder bound compare False against everything, so
the check it sets could never fail; a negative bound or deadline is a typo, not a setting.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.unit

CASES = [
    ("drill", "--max-no-holder"), ("drill", "--observe"), ("splitbrain", "--skew-limit"),
    ("verify", "--deadline"), ("rollout-gate", "--deadline"),
]


@pytest.mark.parametrize("value", ["nan", "inf", "-1", "0", "abc", "1,5"])
@pytest.mark.parametrize("cmd,option", CASES)
def test_bad_seconds_are_refused_naming_the_option(cmd, option, value):
    res = subprocess.run([sys.executable, "-m", "webha", cmd, f"{option}={value}"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"argument {option}:" in res.stderr and "seconds" in res.stderr, res.stderr


@pytest.mark.parametrize("cmd,option", CASES)
def test_good_seconds_pass_the_option(cmd, option):
    res = subprocess.run([sys.executable, "-m", "webha", cmd, f"{option}=1.5", "--help"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
