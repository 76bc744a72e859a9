"""The db steps render with base_context + the plan's extra keys, and every rendered script passes
``bash -n`` and ``shellcheck``; the plan itself (order, hosts, secrets, stdin format)."""

from __future__ import annotations

import base64

import shutil
import subprocess

import pytest

from components import migration_plan as mp
from components.render import TEMPLATES, render, template_names
from components.topology import base_context

from .helpers import DB_PASSWORD, stack_config


def _require(tool: str, package: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} is missing: apt-get install {package}")
    return path


@pytest.fixture(scope="module")
def cfg():
    return stack_config()


@pytest.mark.render
def test_every_db_template_renders_and_passes_bash_n_and_shellcheck(cfg, tmp_path):
    bash = _require("bash", "bash")
    shellcheck = _require("shellcheck", "shellcheck")
    contexts = mp.template_contexts(cfg)
    db_templates = [t for t in template_names() if t.startswith("db/")]
    assert set(db_templates) == set(contexts), "every db template has a context in the plan"
    base = base_context(cfg)
    for name, extra in contexts.items():
        text = render(name, **{**base, **extra})
        assert DB_PASSWORD not in text
        if name == "db/lib.sh.j2":
            continue  # a partial, checked inside each step below
        path = tmp_path / (name.replace("/", "_").removesuffix(".j2"))
        path.write_text(text)
        res = subprocess.run([bash, "-n", str(path)], capture_output=True, text=True)
        assert res.returncode == 0, f"{name}: {res.stderr}"
        res = subprocess.run([shellcheck, "-S", "style", "-s", "bash", str(path)],
                             capture_output=True, text=True)
        assert res.returncode == 0, f"{name}:\n{res.stdout}"
        assert text.rstrip().endswith('main "$@"; exit $?'), name


@pytest.mark.render
def test_rhel_and_custom_hosts_render(cfg):
    raw_db = {"allowedHosts": ["10.1.1.%"]}
    other = stack_config(**raw_db)
    steps = mp.migration_steps(other)
    prep = mp.render_step(other, steps[2])
    assert "'dsshop'@'10.1.1.%'" in prep and "'10.1.1.11'" not in prep.split("webha_migrate")[0]
    assert "GRANT SELECT, INSERT, UPDATE, DELETE, EXECUTE, CREATE TEMPORARY TABLES ON \\`ds\\_shop\\`.*" in prep
    rt = mp.default_runtime("rhel")
    assert rt.conf_dir == "/etc/my.cnf.d"


@pytest.mark.unit
def test_plan_order_hosts_and_secrets(cfg):
    steps = mp.migration_steps(cfg)
    assert [(s.name, s.host, s.template, s.secrets) for s in steps] == [
        ("db-seed-sample", "web01", "db/seed-sample.sh.j2", ()),
        ("db-migrate-credential", "web01", "db/migrate-credential.sh.j2", ()),
        ("db-target-prepare", "mysql01", "db/target-prepare.sh.j2", ("APP_PASSWORD", "MIGRATE_VERIFIER")),
        ("db-migrate", "web01", "db/migrate.sh.j2", ()),
        ("db-target-finish", "mysql01", "db/target-finish.sh.j2", ()),
        ("db-source-retire", "web01", "db/source-retire.sh.j2", ()),
    ]
    # replicate mode: binary logging on the source first (its own resource: visible at preview),
    # and db-migrate gets the switched database.php.
    rep = mp.migration_steps(stack_config(mode="replicate"))
    assert [(s.name, s.host, s.secrets, s.phase) for s in rep][1:6] == [
        ("db-source-binlog", "web01", (), "source"), ("db-source-app", "web01", ("APP_PASSWORD",), "source"),
        ("db-migrate-credential", "web01", (), "move"),
        ("db-target-prepare", "mysql01", ("APP_PASSWORD", "MIGRATE_VERIFIER"), "move"),
        ("db-migrate", "web01", ("DATABASE_PHP_B64",), "move")]
    assert rep[0].phase == "source" and [s.phase for s in rep[6:]] == ["move", "move"]
    no_seed = stack_config(seedSample=False)
    assert [s.name for s in mp.migration_steps(no_seed)][0] == "db-migrate-credential"
    assert steps[1].outputs == ("MIGRATE_VERIFIER",)
    assert steps[2].context["migration"]["local"]["socket"] == "/run/mysqld/mysqld.sock"
    assert steps[2].context["migration"]["local"]["restart_command"] == "systemctl restart mariadb"


@pytest.mark.unit
def test_stdin_format_and_step_outputs(cfg):
    cred, prepare = mp.migration_steps(cfg)[1:3]
    secrets = mp.secret_values(cfg)
    # Nothing derived from the app password: the migration password is made on the source host.
    assert set(secrets) == {"APP_PASSWORD", "DATABASE_PHP_B64"} and secrets["APP_PASSWORD"] == DB_PASSWORD
    # The switched database.php: the web step's render(), pointing at the target.
    php = base64.b64decode(secrets["DATABASE_PHP_B64"]).decode()
    assert "'hostname' => '10.1.1.12'" in php and DB_PASSWORD in php
    verifier = "*" + "AB" * 20
    values = mp.step_values(secrets, [(cred, f"noise\nMIGRATE_VERIFIER={verifier}\n")])
    stdin = mp.step_stdin("echo hi\nmain \"$@\"; exit $?", prepare, values)
    assert stdin.endswith(f"\nAPP_PASSWORD={DB_PASSWORD}\nMIGRATE_VERIFIER={verifier}\n")
    with pytest.raises(ValueError, match="printed no MIGRATE_VERIFIER"):
        mp.step_values(secrets, [(cred, "")])
    assert mp.step_values(secrets, [(cred, None)], strict=False)["MIGRATE_VERIFIER"] == ""
    with pytest.raises(ValueError):
        mp.step_stdin("x", prepare, {"APP_PASSWORD": "a\nb", "MIGRATE_VERIFIER": "c"})


@pytest.mark.unit
def test_plan_digest_tracks_every_step(cfg):
    d = mp.plan_digest(cfg)
    assert d == mp.plan_digest(stack_config())
    assert d != mp.plan_digest(stack_config(allowedHosts=["10.1.1.%"]))
    assert len(d) == 16


@pytest.mark.unit
def test_templates_dir_has_the_db_steps():
    assert {"migrate.sh.j2", "migrate-credential.sh.j2", "target-prepare.sh.j2", "target-finish.sh.j2", "seed-sample.sh.j2",
            "lib.sh.j2", "source-binlog.sh.j2", "source-retire.sh.j2"} <= {p.name for p in (TEMPLATES / "db").iterdir()}


@pytest.mark.unit
def test_missing_mariadb_fails_naming_the_package(monkeypatch):
    from webha.testbed.mariadb_lab import require_mariadb
    from webha.testbed.netns import LabError

    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(LabError, match="apt-get install mariadb-server"):
        require_mariadb()


@pytest.mark.render
@pytest.mark.parametrize("awk", ["mawk", "gawk"])
def test_verification_report_names_each_difference(cfg, tmp_path, awk):
    """The migrate step's compare() (as rendered) under Debian's default awk (mawk) and gawk."""
    path = _require(awk, awk)
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "awk").symlink_to(path)
    step = mp.migration_steps(cfg)[3]
    script = mp.render_step(cfg, step)
    fn = script[script.index("compare() {"):]
    fn = fn[:fn.index("\n}\n") + 3]
    (tmp_path / "s").write_text("routine\tFUNCTION `f`\tx\ntable\t`order line`\trows=1 hash=2/2\n"
                                "trigger\t`t`\t1\n")
    (tmp_path / "d").write_text("routine\tFUNCTION `f`\tx\ntable\t`order line`\trows=1 hash=3/2\n"
                                "view\t`v 1`\t1\n")
    res = subprocess.run(["bash", "-c", fn + f"compare {tmp_path}/s {tmp_path}/d"],
                         capture_output=True, text=True,
                         env={"PATH": f"{tmp_path}/bin:/usr/bin:/bin"})
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        "  differs: table `order line`: source [rows=1 hash=2/2] target [rows=1 hash=3/2]",
        "  missing on target: trigger `t` [1]",
        "  only on target: view `v 1` [1]",
    ]
    same = subprocess.run(["bash", "-c", fn + f"compare {tmp_path}/s {tmp_path}/s"],
                          capture_output=True, text=True)
    assert same.returncode == 0 and same.stderr == ""
