"""The committed stack files hold settings only; this machine's salt and secrets stay in its copy."""

import subprocess

import pytest
import yaml

from tests.conftest import ROOT
from webha.localstack import StackFileError, machine_specific, merge, write

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("name", ["dev", "local"])
def test_committed_stack_files_carry_no_salt_or_secret(name):
    """What git has (the index), not the working tree a local run may have touched."""
    text = subprocess.run(["git", "show", f":stacks/Pulumi.{name}.yaml"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    assert machine_specific(yaml.safe_load(text)) == []


def test_merge_keeps_this_machines_secrets_and_takes_every_setting_from_the_commit():
    committed = {"config": {"webha:vrrp": {"advertInt": 2}}}
    runtime = {"encryptionsalt": "v1:salt", "config": {
        "webha:vrrp": {"advertInt": 1}, "webha:dbPassword": {"secure": "v1:abc"}}}
    out = merge(committed, runtime)
    assert out == {"encryptionsalt": "v1:salt", "config": {
        "webha:vrrp": {"advertInt": 2}, "webha:dbPassword": {"secure": "v1:abc"}}}


def test_a_committed_secret_or_salt_is_refused():
    for doc in ({"encryptionsalt": "v1:x", "config": {}},
                {"config": {"webha:dbPassword": {"secure": "v1:abc"}}}):
        with pytest.raises(StackFileError, match="machine-specific"):
            merge(doc, {})


def test_write_round_trip_is_private(tmp_path):
    committed = tmp_path / "Pulumi.local.yaml"
    committed.write_text(yaml.safe_dump({"config": {"webha:app": {"serverName": "商店.itcast.cn"}}}))
    runtime = tmp_path / "state" / "Pulumi.local.yaml"
    write(committed, runtime)
    runtime.write_text(runtime.read_text() + "encryptionsalt: v1:s\n")
    write(committed, runtime)
    doc = yaml.safe_load(runtime.read_text())
    assert doc["encryptionsalt"] == "v1:s" and doc["config"]["webha:app"]["serverName"] == "商店.itcast.cn"
    assert runtime.stat().st_mode & 0o077 == 0
