"""The db migration steps against two real MariaDB servers, run exactly as the component runs
them: rendered by render(), then ``bash -s`` on the step's host with the secrets after the script."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

from components.migration_plan import render_step
from components.render import render
from components.topology import base_context
from webha.testbed.mariadb_lab import MariaDBHost, client

from .helpers import DB_PASSWORD

pytestmark = pytest.mark.migration

DB = "ds_shop"


def fingerprint(srv: MariaDBHost, db: str = DB) -> dict:
    """Rows + CHECKSUM TABLE per table and every trigger/routine/event/view, read as root."""
    tables = srv.value(
        f"SELECT TABLE_NAME FROM information_schema.TABLES WHERE TABLE_SCHEMA='{db}' "
        "AND TABLE_TYPE='BASE TABLE' ORDER BY 1").split()
    out = {}
    for t in tables:
        rows = srv.value(f"SELECT COUNT(*) FROM `{db}`.`{t}`")
        csum = srv.value(f"CHECKSUM TABLE `{db}`.`{t}`").split("\t")[1]
        out[f"table:{t}"] = (int(rows), csum)
    for kind, q in (
        ("trigger", f"SELECT TRIGGER_NAME, MD5(ACTION_STATEMENT) FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='{db}'"),
        ("routine", f"SELECT ROUTINE_NAME, MD5(ROUTINE_DEFINITION) FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='{db}'"),
        ("event", f"SELECT EVENT_NAME, MD5(EVENT_DEFINITION) FROM information_schema.EVENTS WHERE EVENT_SCHEMA='{db}'"),
        ("view", f"SELECT TABLE_NAME, MD5(VIEW_DEFINITION) FROM information_schema.VIEWS WHERE TABLE_SCHEMA='{db}'"),
    ):
        for line in srv.value(q).splitlines():
            name, body = line.split("\t")
            out[f"{kind}:{name}"] = body
    return out


def prepare(lab) -> None:
    """db-migrate-credential then db-target-prepare, as the plan runs them before db-migrate."""
    for name in ("db-migrate-credential", "db-target-prepare"):
        res = lab.run_step(lab.step(name))
        assert res.returncode == 0, str(res)


def marker(srv: MariaDBHost) -> list[str]:
    res = srv.sql(f"SELECT state, run_id FROM webha_meta.migration WHERE db_name='{DB}'", check=False)
    return res.stdout.split() if res.returncode == 0 else []


class SecretWatch:
    """Scans every process's argv and environment while a step runs, for the given secrets."""

    def __init__(self, secrets: list[str]):
        self.secrets = [s.encode() for s in secrets]
        self.hits: list[str] = []
        self.scans = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            for pid in os.listdir("/proc"):
                if not pid.isdigit():
                    continue
                for what in ("cmdline", "environ"):
                    try:
                        data = Path(f"/proc/{pid}/{what}").read_bytes()
                    except OSError:
                        continue
                    for s in self.secrets:
                        if s in data:
                            self.hits.append(f"pid {pid} {what}: {data[:200]!r}")
            self.scans += 1
            time.sleep(0.005)

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()


def test_full_migration_verified_and_no_secret_in_argv(fresh_target, cfg):
    lab = fresh_target
    before = fingerprint(lab.src)
    steps = lab.steps()
    assert [s.name for s in steps] == ["db-seed-sample", "db-migrate-credential", "db-target-prepare",
                                       "db-migrate", "db-target-finish", "db-source-retire"]
    # `bash -s` with script + secrets on stdin here; every other test runs the script as a file
    # with only the secrets on stdin, as components/remote.py does.
    results = [lab.run_step(s, mode="stdin") for s in steps[:2]]
    # The migration password: random, made on the source host, 0600, only its verifier printed.
    cred = lab.credential()
    cred_file = Path(lab.src.tmp_dir) / "webha-migrate.credential"
    assert re.fullmatch(r"[0-9a-f]{48}", cred) and cred_file.stat().st_mode & 0o077 == 0
    assert cred not in results[1].output and re.fullmatch(r"MIGRATE_VERIFIER=\*[0-9A-F]{40}\n",
                                                          results[1].stdout)
    secrets = [DB_PASSWORD, cred]
    with SecretWatch(secrets) as watch:
        results += [lab.run_step(s, mode="stdin") for s in steps[2:]]
    for res in results:
        assert res.returncode == 0, str(res)
    migrate = results[3]
    assert "verified: 6 tables" in migrate.stdout and "2 triggers, 2 routines" in migrate.stdout
    # Independent check, as root on both servers: identical data and objects, source untouched.
    assert fingerprint(lab.tgt) == before == fingerprint(lab.src)
    assert len(before) >= 6 + 2 + 2 + 1 + 1
    # utf8mb4 (Chinese + 4-byte emoji), NULLs and blobs survived byte for byte.
    q = ("SELECT MD5(GROUP_CONCAT(CONCAT_WS('|', id, nickname, email, HEX(avatar)) ORDER BY id)), "
         "SUM(nickname LIKE '%🙂%'), SUM(email IS NULL) FROM ds_shop.users")
    assert lab.tgt.value(q) == lab.src.value(q)
    assert lab.src.value("SELECT COUNT(*) FROM ds_shop.users WHERE nickname REGEXP '[🙂🛒🍵📦🎁]'") != "0"
    # The target listens on its topology address (the drop-in + restart), the marker is complete,
    # the migration user is gone.
    assert lab.tgt.value("SELECT @@bind_address") == "10.1.1.12"
    assert (Path(lab.tgt.conf_dir) / "60-webha.cnf").read_text().count("bind-address = 10.1.1.12") == 1
    assert marker(lab.tgt)[0] == "complete"
    assert lab.tgt.value("SELECT COUNT(*) FROM mysql.global_priv WHERE User='webha_migrate'") == "0"
    # database.sourceAfterMove: readOnly (default): the stale copy on web01 refuses the app's writes,
    # also after a restart.
    assert lab.src.value("SELECT @@GLOBAL.read_only") == "1"
    assert "read_only = 1" in (Path(lab.src.conf_dir) / "62-webha-retired.cnf").read_text()
    # No secret in any process's argv or environment at any time; no credentials file left.
    assert watch.scans > 20
    assert watch.hits == []
    assert list(Path(lab.src.tmp_dir).iterdir()) == []
    for res in results:
        for s in secrets:
            assert s not in res.output
    # The copied objects belong to the owner role, not to root or to the dropped account.
    assert set(lab.tgt.value("SELECT DEFINER FROM information_schema.ROUTINES WHERE ROUTINE_SCHEMA='ds_shop' "
                             "UNION SELECT DEFINER FROM information_schema.VIEWS WHERE TABLE_SCHEMA='ds_shop' "
                             "UNION SELECT DEFINER FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA='ds_shop' "
                             "UNION SELECT DEFINER FROM information_schema.EVENTS WHERE EVENT_SCHEMA='ds_shop'"
                             ).split()) <= {"ds_shop_owner", "ds_shop_owner@"}
    lab.state = "migrated"


def test_app_user_least_privilege_from_allowed_hosts_only(migrated, tmp_path):
    lab = migrated
    pw = DB_PASSWORD

    def app(host: str, query: str):
        return client(lab.lab, host, "10.1.1.12", "dsshop", pw, query, tmp_path, db=DB)

    for host in ("web01", "web02"):
        res = app(host, "SELECT COUNT(*) FROM users; SELECT order_total(1) IS NOT NULL;"
                        "CREATE TEMPORARY TABLE tmp_x (id INT); INSERT INTO tmp_x VALUES (1);"
                        "SELECT COUNT(*) FROM tmp_x;")
        assert res.returncode == 0, res.stderr
        assert res.stdout.split()[0] == lab.src.value("SELECT COUNT(*) FROM ds_shop.users")
    # No DDL, no other schema, no privilege administration.
    for query in ("CREATE TABLE evil (id INT)", "DROP TABLE users", "SELECT * FROM mysql.user",
                  "SELECT * FROM webha_meta.migration", "GRANT SELECT ON ds_shop.* TO dsshop@'%'",
                  "ALTER TABLE users ADD COLUMN x INT"):
        res = app("web02", query)
        assert res.returncode != 0, query
        assert "denied" in res.stderr, (query, res.stderr)
    # A host that is not a web host cannot even connect.
    res = app("stranger", "SELECT 1")
    assert res.returncode != 0
    # (the client may wrap it: "error packet before completion of TLS handshake ... 1130 - ...")
    assert "1130" in res.stderr and "not allowed to connect" in res.stderr, res.stderr
    # Root and the (dropped) migration user are not reachable over the network.
    res = client(lab.lab, "web02", "10.1.1.12", "root", pw, "SELECT 1", tmp_path)
    assert res.returncode != 0 and "ERROR 1045" in res.stderr
    res = client(lab.lab, "web01", "10.1.1.12", "webha_migrate", "0" * 48, "SELECT 1", tmp_path)
    assert res.returncode != 0 and "ERROR 1045" in res.stderr


def test_database_php_uses_app_user_not_root(migrated, cfg, tmp_path):
    lab = migrated
    ctx = base_context(cfg)
    php = render("app/application/database.php.j2", **ctx, db_host=ctx["database"]["target_ip"],
                 db_password=DB_PASSWORD)
    vals = dict(re.findall(r"'(\w+)'\s*=>\s*'([^']*)'", php))
    assert vals["username"] == "dsshop" and vals["database"] == DB
    assert vals["hostname"] == "10.1.1.12"
    assert "root" not in php.lower()
    # What database.php says works, from both web hosts.
    for host in ("web01", "web02"):
        res = client(lab.lab, host, vals["hostname"], vals["username"], vals["password"],
                     "SELECT COUNT(*) FROM goods", tmp_path, db=vals["database"])
        assert res.returncode == 0, res.stderr


def test_rerun_is_idempotent_and_never_drops(migrated):
    lab = migrated
    before_tgt = fingerprint(lab.tgt)
    run_before = marker(lab.tgt)
    results = lab.run_plan()
    for res in results:
        assert res.returncode == 0, str(res)
    seed, _, prepare, migrate, finish, retire = results
    assert "source read-only" in retire.stdout  # database.sourceAfterMove: readOnly (default)
    assert "not seeding" in seed.stdout
    assert "restarting" not in prepare.stdout  # config already right: no restart
    assert "already migrated" in migrate.stdout and "identical" in migrate.stdout
    assert "streaming" not in migrate.stdout
    assert marker(lab.tgt) == run_before  # same run: nothing was redone
    assert fingerprint(lab.tgt) == before_tgt
    # After the cut-over the shop writes to the target: a re-run must leave that alone.
    lab.tgt.sql("INSERT INTO ds_shop.categories (parent_id, name, sort) VALUES (NULL, '新品', 999)")
    for res in lab.run_plan():
        assert res.returncode == 0, str(res)
    assert lab.tgt.value("SELECT COUNT(*) FROM ds_shop.categories WHERE name='新品'") == "1"
    assert marker(lab.tgt) == run_before
    lab.state = "changed"


def conf_dir_state(srv: MariaDBHost) -> dict:
    return {p.name: p.read_bytes() for p in sorted(Path(srv.conf_dir).iterdir())}


def test_conflicting_target_refused_never_overwritten(fresh_target):
    lab = fresh_target
    lab.tgt.sql("CREATE DATABASE ds_shop; CREATE TABLE ds_shop.legacy (id INT PRIMARY KEY, v TEXT);"
                "INSERT INTO ds_shop.legacy VALUES (1, 'precious');")
    conf, pid = conf_dir_state(lab.tgt), lab.tgt.pid()
    users = lab.tgt.value("SELECT COUNT(*) FROM mysql.global_priv")
    res = lab.run_step(lab.step("db-migrate-credential"))
    assert res.returncode == 0, str(res)
    res = lab.run_step(lab.step("db-target-prepare"))
    assert res.returncode == 3, str(res)
    assert "refusing" in res.stderr and "did not create" in res.stderr
    # Refused before anything changed: no drop-in, no restart, no user or role.
    assert conf_dir_state(lab.tgt) == conf and lab.tgt.pid() == pid
    assert lab.tgt.value("SELECT @@bind_address") == "127.0.0.1"
    assert lab.tgt.value("SELECT COUNT(*) FROM mysql.global_priv") == users
    assert lab.tgt.value("SELECT v FROM ds_shop.legacy") == "precious"

    # Same when the foreign database appears between prepare and migrate.
    lab.tgt.sql("DROP DATABASE ds_shop")
    prepare(lab)
    lab.tgt.sql("CREATE DATABASE ds_shop; CREATE TABLE ds_shop.legacy (id INT PRIMARY KEY, v TEXT);"
                "INSERT INTO ds_shop.legacy VALUES (1, 'precious');")
    res = lab.run_step(lab.step("db-migrate"))
    assert res.returncode == 3, str(res)
    assert "refusing" in res.stderr
    assert lab.tgt.value("SELECT v FROM ds_shop.legacy") == "precious"
    # A failed migrate leaves no account behind (db-target-finish never runs after a failure).
    assert "dropped the migration account" in res.stdout
    assert lab.tgt.value("SELECT COUNT(*) FROM mysql.global_priv WHERE User='webha_migrate'") == "0"
    assert lab.tgt.value("SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA='ds_shop'") == "1"

    # An EMPTY ds_shop (the course's manual `create database ds_shop`) is adopted.
    lab.tgt.sql("DROP DATABASE ds_shop; CREATE DATABASE ds_shop")
    for res in lab.run_plan()[1:]:
        assert res.returncode == 0, str(res)
    assert fingerprint(lab.tgt) == fingerprint(lab.src)
    lab.state = "migrated"


def test_killed_import_then_retry_succeeds(fresh_target):
    lab = fresh_target
    before = fingerprint(lab.src)
    prepare(lab)
    proc = lab.popen_step(lab.step("db-migrate"))
    # Kill the whole step (dump, import, snapshot session) once the big table is half-copied.
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        n = lab.tgt.value("SELECT COUNT(*) FROM information_schema.TABLES "
                          "WHERE TABLE_SCHEMA='ds_shop' AND TABLE_NAME='goods'")
        if n == "1" or proc.poll() is not None:
            break
        time.sleep(0.02)
    time.sleep(0.3)
    assert proc.poll() is None, "the copy finished before it could be interrupted: raise WEBHA_TEST_SEED_ROWS"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_out = proc.stdout.read()
    assert "streaming" in killed_out and "complete" not in killed_out, killed_out
    assert marker(lab.tgt)[0] == "in_progress"
    partial = fingerprint(lab.tgt)
    assert partial != before  # really interrupted mid-way
    # The source is untouched and not left locked (the read lock died with the session).
    assert fingerprint(lab.src) == before
    lab.src.sql("CREATE DATABASE IF NOT EXISTS scratch; CREATE TABLE IF NOT EXISTS scratch.t (i INT);"
                "INSERT INTO scratch.t VALUES (1); DROP DATABASE scratch;", timeout=10)

    res = lab.run_step(lab.step("db-migrate"))
    assert res.returncode == 0, str(res)
    assert "did not finish" in res.stdout and "verified" in res.stdout
    assert fingerprint(lab.tgt) == before == fingerprint(lab.src)
    assert marker(lab.tgt)[0] == "complete"
    # SIGKILL skipped the killed run's EXIT trap: the retry removed its credentials file.
    assert list(Path(lab.src.tmp_dir).iterdir()) == []
    assert lab.run_step(lab.step("db-target-finish")).returncode == 0
    lab.state = "migrated"


def test_consistent_snapshot_while_the_shop_keeps_writing(fresh_target):
    """Writes on the source during the copy: the copy is the dump's snapshot, and verification
    compares against that same snapshot (not the moving source), so it passes."""
    lab = fresh_target
    prepare(lab)
    n0 = int(lab.src.value("SELECT COUNT(*) FROM ds_shop.stock_log"))
    writes = "".join(
        f"INSERT INTO ds_shop.stock_log (goods_id, delta, reason, created_at) VALUES ({i % 50 + 1}, 1, 'w', NOW());"
        "DO SLEEP(0.002);\n" for i in range(4000))
    writer = lab.lab.popen(lab.source, ["mariadb", f"--socket={lab.src.socket}", "-uroot"],
                           stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True, start_new_session=True)
    def feed():
        try:
            writer.stdin.write(writes)
            writer.stdin.close()
        except (BrokenPipeError, ValueError):
            pass  # the writer is killed once the migration is done

    feeder = threading.Thread(target=feed, daemon=True)
    feeder.start()
    try:
        time.sleep(0.5)
        res = lab.run_step(lab.step("db-migrate"))
    finally:
        try:
            os.killpg(writer.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        writer.wait()
    assert res.returncode == 0, str(res)
    copied = int(lab.tgt.value("SELECT COUNT(*) FROM ds_shop.stock_log"))
    now = int(lab.src.value("SELECT COUNT(*) FROM ds_shop.stock_log"))
    assert n0 < copied < now, (n0, copied, now)  # a snapshot taken mid-stream of writes
    assert lab.run_step(lab.step("db-target-finish")).returncode == 0
    lab.state = "migrated-snapshot"


def test_wrong_password_and_missing_secret_fail_clearly(migrated):
    lab = migrated
    prepare(lab)
    wrong = "0123456789abcdef" * 3
    (Path(lab.src.tmp_dir) / "webha-migrate.credential").write_text(wrong + "\n")
    res = lab.run_step(lab.step("db-migrate"))
    assert res.returncode == 5, str(res)
    assert "access denied" in res.stderr and "Run the whole plan again" in res.stderr
    assert wrong not in res.output
    # No credential at all (db-migrate removed it when it exited): exit 5, saying what to run.
    res = lab.run_step(lab.step("db-migrate"))
    assert res.returncode == 5 and "no migration credential" in res.stderr, str(res)
    step = lab.step("db-target-prepare")
    res = lab.run_step(step, stdin=render_step(lab.cfg, step) + "MIGRATE_VERIFIER=*" + "A" * 40 + "\n",
                       mode="stdin")
    assert res.returncode == 2 and "secret APP_PASSWORD missing on stdin" in res.stderr, str(res)
    res = lab.run_step(step, stdin="APP_PASSWORD=a-password-1234\nEVIL=1\n")
    assert res.returncode == 2 and "unexpected secret 'EVIL'" in res.stderr, str(res)
    res = lab.run_step(step, stdin="APP_PASSWORD=a-password-1234\nMIGRATE_VERIFIER=plaintext\n")
    assert res.returncode == 2 and "40 hex digits" in res.stderr, str(res)
    assert lab.run_step(lab.step("db-target-finish")).returncode == 0


def test_unreachable_target_fails_clearly(migrated):
    lab = migrated
    prepare(lab)
    lab.lab.link(lab.target, False)
    try:
        res = lab.run_step(lab.step("db-migrate", connect_timeout=3), timeout=120)
    finally:
        lab.lab.link(lab.target, True)
    assert res.returncode == 5, str(res)
    assert "cannot reach MariaDB on 10.1.1.12:3306 from 10.1.1.11" in res.stderr
    assert res.seconds < 60
    assert lab.run_step(lab.step("db-target-finish")).returncode == 0


def test_migration_survives_compression_setting(fresh_target):
    """The plan's `compress` option (client/server protocol compression, for slow links)."""
    lab = fresh_target
    for res in lab.run_plan(compress=True)[1:]:
        assert res.returncode == 0, str(res)
    assert fingerprint(lab.tgt) == fingerprint(lab.src)
    lab.state = "migrated"


def test_migration_account_is_import_only_and_cannot_become_root(fresh_target, tmp_path):
    lab = fresh_target
    prepare(lab)
    pw = lab.credential()
    grants = lab.tgt.value("SHOW GRANTS FOR 'webha_migrate'@'10.1.1.11'")
    assert "SET USER" not in grants and "SUPER" not in grants and "ALL PRIVILEGES" not in grants
    assert "GRANT OPTION" not in grants and "UPDATE, DELETE" not in grants

    def mig(query: str):
        return client(lab.lab, "web01", "10.1.1.12", "webha_migrate", pw, query, tmp_path)

    assert mig("SELECT CURRENT_ROLE()").stdout.strip() == "ds_shop_owner"
    assert mig("CREATE DATABASE ds_shop; CREATE TABLE ds_shop.t (i INT); INSERT INTO ds_shop.t VALUES (1)"
               ).returncode == 0
    for query in (
        "CREATE DEFINER=`root`@`localhost` PROCEDURE ds_shop.p() SELECT 1",
        "CREATE DEFINER=`root`@`localhost` VIEW ds_shop.v AS SELECT 1",
        "CREATE DEFINER=`dsshop`@`10.1.1.11` VIEW ds_shop.v AS SELECT 1",
        "CREATE USER x@'%'", "GRANT SELECT ON ds_shop.* TO dsshop@'10.1.1.13'",
        "SELECT * FROM mysql.user", "CREATE DATABASE other", "DELETE FROM webha_meta.migration",
        "SET ROLE NONE; SET ROLE ds_shop_owner; DROP USER dsshop@'10.1.1.13'",
    ):
        res = mig(query)
        assert res.returncode != 0 and "denied" in res.stderr, (query, res.stderr)
    # A killed run leaves the account; the next prepare replaces it (new password, old one useless).
    lab.tgt.sql("DROP DATABASE ds_shop")
    prepare(lab)
    assert lab.credential() != pw
    res = mig("SELECT 1")
    assert res.returncode != 0 and "ERROR 1045" in res.stderr
    assert lab.run_step(lab.step("db-target-finish")).returncode == 1  # not migrated: says so
    assert lab.tgt.value("SELECT COUNT(*) FROM mysql.global_priv WHERE User='webha_migrate'") == "0"


def _commit_latencies(lab) -> subprocess.Popen:
    """A shop client on web01 committing a row every 20 ms; prints each commit's start and end."""
    loop = ("while :; do s=$(date +%s.%N); mariadb --socket=" + lab.src.socket + " -uroot -e "
            "\"INSERT INTO ds_shop.stock_log (goods_id, delta, reason, created_at) VALUES (1, 1, 'lat', NOW())\";"
            " e=$(date +%s.%N); echo \"$s $e\"; sleep 0.02; done")
    return lab.lab.popen(lab.source, ["bash", "-c", loop], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, text=True, start_new_session=True)


def test_long_query_on_the_source_neither_stalls_the_shop_nor_the_copy(fresh_target):
    """A 25 s batch UPDATE and a 25 s report query run on the source during the copy. FLUSH
    TABLES WITH READ LOCK would wait for the writing statement and freeze every other commit
    meanwhile (MariaDB 10.11's FTWRL no longer waits for a plain SELECT); the commit block must
    neither wait for either nor outlive the start of the dump's snapshot (released without
    reading any log text)."""
    lab = fresh_target
    prepare(lab)
    long_ones = [lab.lab.popen(lab.source, ["mariadb", f"--socket={lab.src.socket}", "-uroot", "-e", q],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
                 for q in ("UPDATE ds_shop.goods SET stock = stock WHERE id = 1 AND SLEEP(25) = 0",
                           "SELECT SLEEP(25) FROM ds_shop.users LIMIT 1")]
    writer = _commit_latencies(lab)
    try:
        time.sleep(1.0)
        res = lab.run_step(lab.step("db-migrate"))
        time.sleep(0.5)
    finally:
        for proc in (writer, *long_ones):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert res.returncode == 0, str(res)
    assert res.seconds < 20, f"the copy waited for the long query: {res.seconds:.1f}s"
    spans = [tuple(map(float, line.split())) for line in writer.stdout.read().splitlines()
             if len(line.split()) == 2]
    during = [e - s for s, e in spans]
    assert len(during) > 20, during
    # Each commit is a new client process (~10-50 ms); a commit held behind the block for the
    # whole copy would take the copy's duration.
    assert max(during) < 1.0, f"a commit waited {max(during):.2f}s (copy took {res.seconds:.1f}s)"
    assert lab.run_step(lab.step("db-target-finish")).returncode == 0
    lab.state = "migrated-snapshot"
