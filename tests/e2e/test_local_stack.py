"""e2e: the real Pulumi engine runs the program on real libvirt guests (TCG), as an operator would.

One module, one stack, in order: preview (no side effects) -> up -> HTTP through the VIP reads
mysql01 -> nginx stopped on the holder moves the VIP (measured) and non-preemptive mode keeps it
there -> a no-op up changes nothing -> an advert_int change reloads keepalived without moving the
VIP -> destroy leaves nothing in libvirt.

The stack is ``local``'s config under the name ``e2e`` with its own libvirt names (``webha-e2e``)
and its own file backend, so it never touches an operator's ``local`` stack state. Timings go to
``$WEBHA_CACHE/reports/e2e-latest.json`` and are printed at the end.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT
from webha.executor import SshExecutor

pytestmark = pytest.mark.e2e
NAME = "webha-e2e"
REPORT: dict = {}
PROJECT_FILES = ("Pulumi.yaml", "__main__.py", "requirements.txt", "components", "templates", "webha")


def sh(cmd, env, cwd=None, timeout=3600, check=True, input=None):
    res = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, input=input)
    if check and res.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} -> {res.returncode}\n{res.stdout[-4000:]}\n{res.stderr[-4000:]}")
    return res


def virsh(env, *args):
    return sh(["virsh", "-c", "qemu:///system", *args], env, check=False).stdout


def libvirt_leftovers(env) -> list[str]:
    names = virsh(env, "list", "--all", "--name").split() + virsh(env, "net-list", "--all", "--name").split()
    for pool in virsh(env, "pool-list", "--all", "--name").split():
        names += virsh(env, "vol-list", pool).split()
    return sorted(n for n in names if NAME in n)


def scrub_libvirt(env):
    """Remove what a killed earlier e2e run left (only names this test owns: webha-e2e*)."""
    for dom in virsh(env, "list", "--all", "--name").split():
        if dom.startswith(NAME):
            virsh(env, "destroy", dom)
            virsh(env, "undefine", dom)
    for net in virsh(env, "net-list", "--all", "--name").split():
        if net.startswith(NAME):
            virsh(env, "net-destroy", net)
            virsh(env, "net-undefine", net)
    for pool in virsh(env, "pool-list", "--all", "--name").split():
        for line in virsh(env, "vol-list", pool).splitlines()[2:]:
            if line.split() and line.split()[0].startswith(NAME):
                virsh(env, "vol-delete", "--pool", pool, line.split()[0])


@pytest.fixture(scope="module")
def env():
    """The environment scripts/local-env.sh makes (it installs and builds what is missing)."""
    t0 = time.monotonic()
    res = subprocess.run(
        ["bash", "-c", f"source {ROOT}/scripts/local-env.sh >&2 && env -0"],
        capture_output=True, timeout=3600,
    )
    if res.returncode != 0:
        pytest.fail("scripts/local-env.sh failed:\n" + res.stderr.decode(errors="replace")[-6000:])
    REPORT["setup_s"] = round(time.monotonic() - t0, 1)
    environ = dict(item.split("=", 1) for item in res.stdout.decode().split("\0") if "=" in item)
    cache = Path(environ["WEBHA_CACHE"])
    environ["PULUMI_BACKEND_URL"] = f"file://{cache / 'e2e-state'}"
    (cache / "e2e-state").mkdir(parents=True, exist_ok=True)
    return environ


@pytest.fixture(scope="module")
def project(env, tmp_path_factory):
    """A copy of the program with an `e2e` stack made from stacks/Pulumi.local.yaml."""
    work = tmp_path_factory.mktemp("e2e") / "webha"
    work.mkdir()
    for name in PROJECT_FILES:
        src = ROOT / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, work / name)
    (work / ".venv").symlink_to(ROOT / ".venv")
    (work / "stacks").mkdir()
    doc = yaml.safe_load((ROOT / "stacks" / "Pulumi.local.yaml").read_text())
    conf = doc["config"]
    conf["webha:network"]["name"] = NAME
    conf = {k: v for k, v in conf.items() if not (isinstance(v, dict) and "secure" in v)}
    (work / "stacks" / "Pulumi.e2e.yaml").write_text(yaml.safe_dump({"config": conf}, sort_keys=False))
    # A run killed before its destroy: remove its state and its (webha-e2e*) libvirt objects.
    stale = sh(["pulumi", "stack", "ls", "--json"], env, cwd=work, check=False).stdout
    if '"e2e"' in stale:
        sh(["pulumi", "stack", "select", "e2e"], env, cwd=work, check=False)
        sh(["pulumi", "destroy", "--yes", "--skip-preview", "-s", "e2e"], env, cwd=work, check=False)
        sh(["pulumi", "stack", "rm", "--yes", "--force", "-s", "e2e"], env, cwd=work, check=False)
    scrub_libvirt(env)
    gateway = conf["webha:network"]["gateway"]
    if f" {gateway}/" in sh(["ip", "-4", "-o", "addr", "show"], env).stdout:
        pytest.fail(f"{gateway} is already on a bridge of this machine (the `local` stack is up?): "
                    "the e2e stack uses the same subnet; run scripts/destroy-local.sh first",
                    pytrace=False)
    sh(["pulumi", "stack", "init", "e2e"], env, cwd=work)
    sh(["pulumi", "config", "set", "--secret", "dbPassword"], env, cwd=work, input=os.urandom(12).hex())
    sh(["pulumi", "config", "set", "--secret", "vrrpAuthPass"], env, cwd=work, input=os.urandom(4).hex())
    yield work
    # Whatever happened above, leave nothing behind.
    sh(["pulumi", "destroy", "--yes", "--skip-preview", "-s", "e2e"], env, cwd=work, check=False, timeout=1800)
    scrub_libvirt(env)
    sh(["pulumi", "stack", "rm", "--yes", "--force", "-s", "e2e"], env, cwd=work, check=False)
    report = Path(env["WEBHA_CACHE"]) / "reports"
    report.mkdir(exist_ok=True)
    (report / "e2e-latest.json").write_text(json.dumps(REPORT, indent=2))
    print("\n[e2e report] " + json.dumps(REPORT))


def pulumi(env, project, *args, timeout=3600):
    t0 = time.monotonic()
    res = sh(["pulumi", *args, "-s", "e2e", "--non-interactive"], env, cwd=project, timeout=timeout)
    return res, round(time.monotonic() - t0, 1)


def ssh_options(project) -> list[str]:
    """Fresh guests get fresh host keys at every run: a known_hosts of this run's own."""
    known = Path(project) / "known_hosts"
    return ["-o", "BatchMode=yes", "-o", "ConnectTimeout=5", "-o", "StrictHostKeyChecking=no",
            "-o", f"UserKnownHostsFile={known}", "-o", "LogLevel=ERROR"]


def nodes(env, project) -> dict[str, SshExecutor]:
    opts = ssh_options(project)
    outputs = json.loads(pulumi(env, project, "stack", "output", "--json")[0].stdout)
    key = "/var/lib/webha/ssh/id_ed25519"
    return {n: SshExecutor(n, ip, key, options=opts) for n, ip in outputs["hosts"].items()}


def holders(execs, vip) -> list[str]:
    out = []
    for name in ("web01", "web02"):
        res = execs[name].run(["ip", "-4", "-o", "addr", "show"], timeout=20)
        if f" {vip}/" in res.stdout:
            out.append(name)
    return out


def http(env, url, timeout=3) -> str:
    res = sh(["curl", "-s", "--noproxy", "*", "--max-time", str(timeout), url], env, check=False, timeout=timeout + 5)
    return res.stdout.strip() if res.returncode == 0 else ""


@pytest.fixture
def up(env, project):
    """The guests exist: without them the guest addresses would route off this machine."""
    if not REPORT.get("up_ok"):
        pytest.fail("pulumi up did not succeed (see test_02_up); not contacting guest addresses",
                    pytrace=False)


def test_01_preview_has_no_side_effects(env, project):
    before = libvirt_leftovers(env)
    res, secs = pulumi(env, project, "preview", "--diff")
    REPORT["preview_s"] = secs
    assert "libvirt:index/domain:Domain" in res.stdout or "webha-e2e-web01" in res.stdout
    assert "to create" in res.stdout
    assert libvirt_leftovers(env) == before == []


def test_01b_bad_config_fails_preview_naming_the_field(env, project):
    """What a reviewer sees: the real engine runs the program, validation stops it, nothing made."""
    set_ = ["pulumi", "config", "set", "--path", "vrrp.virtualRouterId"]
    sh([*set_, "256", "-s", "e2e"], env, cwd=project)
    try:
        res = sh(["pulumi", "preview", "-s", "e2e", "--non-interactive"], env, cwd=project, check=False)
    finally:
        sh([*set_, "51", "-s", "e2e"], env, cwd=project)
    assert res.returncode != 0
    assert "webha:vrrp.virtualRouterId" in res.stdout + res.stderr and "outside 1-255" in res.stdout + res.stderr
    assert libvirt_leftovers(env) == []


def test_02_up(env, project):
    _, secs = pulumi(env, project, "up", "--yes", "--skip-preview", timeout=3600)
    REPORT["cold_up_s"] = secs
    out = json.loads(pulumi(env, project, "stack", "output", "--json")[0].stdout)
    assert out["vip"] == "10.1.1.100" and out["url"] == "http://10.1.1.100/"
    assert out["hosts"] == {"web01": "10.1.1.11", "mysql01": "10.1.1.12", "web02": "10.1.1.13"}
    text = pulumi(env, project, "stack", "export", "--show-secrets=false")[0].stdout
    assert "dbPassword" not in text or "ciphertext" in text
    REPORT["up_ok"] = True


def test_03_vip_serves_the_shop_from_mysql01(env, project, up):
    execs = nodes(env, project)
    assert holders(execs, "10.1.1.100") == ["web01"]
    body = http(env, "http://10.1.1.100/")
    # The app answers with MariaDB's @@hostname: the query ran on mysql01, not on web01.
    fields = dict(kv.split("=", 1) for kv in body.split())
    assert fields["node"] == "web01" and fields["db"].split(".")[0] == "mysql01", body
    assert int(fields["goods"]) > 0, body


def test_03b_splitbrain_detector_on_the_real_hosts(env, project, up):
    """The operator's read-only check (`python -m webha splitbrain --target ssh`) on the guests."""
    from webha.drill import SshCluster
    from webha.splitbrain import detect
    from webha.stackfile import load_stack_file

    cluster = SshCluster(load_stack_file(Path(project) / "stacks" / "Pulumi.e2e.yaml"))
    for executor in cluster.hosts.values():
        executor.options = ssh_options(project)
    # These guests have no time source (isolated network, no NTP server): each set its clock from
    # the emulated RTC at boot, whole seconds, so up to 1 s off. Real hosts keep the 0.5 s limit.
    report = detect(cluster, skew_limit=1.5)
    REPORT["splitbrain_report"] = report.text()
    assert not report.split_brain and report.holders == ["web01"], report.text()
    assert not report.problems, report.text()


def test_04_nginx_stop_moves_vip_and_nopreempt_keeps_it(env, project, up):
    execs = nodes(env, project)
    t0 = time.monotonic()
    execs["web01"].run(["systemctl", "stop", "nginx"], timeout=30, check=True)
    moved = None
    while time.monotonic() - t0 < 60:
        if http(env, "http://10.1.1.100/", timeout=1).startswith("node=web02"):
            moved = time.monotonic() - t0
            break
        time.sleep(0.1)
    assert moved is not None, "VIP did not move to web02 within 60 s"
    REPORT["failover_nginx_stop_s"] = round(moved, 2)
    assert holders(execs, "10.1.1.100") == ["web02"]
    execs["web01"].run(["systemctl", "start", "nginx"], timeout=30, check=True)
    time.sleep(10)  # rise 2 x interval 1 s + adverts: ample time for a wrong preemption to show
    assert holders(execs, "10.1.1.100") == ["web02"], "non-preemptive mode: web02 must keep the VIP"
    assert http(env, "http://10.1.1.100/").startswith("node=web02")


def changed_steps(env, project) -> list[str]:
    """Names of the resources a preview would touch (op other than "same")."""
    res, _ = pulumi(env, project, "preview", "--json")
    steps = json.loads(res.stdout).get("steps", [])
    return sorted(st["urn"].rsplit("::", 1)[-1] for st in steps if st.get("op") != "same")


def test_05_noop_up_changes_nothing(env, project, up):
    assert changed_steps(env, project) == []
    res, secs = pulumi(env, project, "up", "--yes", "--skip-preview", "--expect-no-changes")
    REPORT["noop_up_s"] = secs


def test_06_advert_int_change_reloads_without_moving_vip(env, project, up):
    execs = nodes(env, project)
    before = holders(execs, "10.1.1.100")
    assert len(before) == 1
    sh(["pulumi", "config", "set", "--path", "vrrp.advertInt", "2", "-s", "e2e"], env, cwd=project)
    changed = changed_steps(env, project)
    # Only the two keepalived commands re-run (their config arrives on stdin): no VM, no migration.
    assert changed == ["web01-keepalived", "web02-keepalived"], changed
    _, secs = pulumi(env, project, "up", "--yes", "--skip-preview")
    REPORT["config_change_up_s"] = secs
    for name in ("web01", "web02"):
        conf = execs[name].run(["cat", "/etc/keepalived/keepalived.conf"], timeout=20).stdout
        assert "advert_int 2" in conf
    time.sleep(8)
    assert holders(execs, "10.1.1.100") == before


def test_07_destroy_leaves_nothing(env, project):
    _, secs = pulumi(env, project, "destroy", "--yes", "--skip-preview", timeout=1800)
    REPORT["destroy_s"] = secs
    assert libvirt_leftovers(env) == []
