"""The database migration as an ordered list of steps: the ONE source of truth for what runs where.

``DatabaseMigration`` (components) iterates :func:`migration_steps` and runs every step as a
``pulumi_command.remote.Command`` over SSH. The tests (tests/migration) and the benchmark
(bench/migration.py) run the very same list, through :func:`render_step` and :func:`step_stdin`,
inside network namespaces, so what is tested is what is deployed.

Contract with the component, per :class:`Step` (in list order, each ``depends_on`` the previous):

* ``host``: the stack host name to SSH into (``cfg.host(step.host).ip``), as ``cfg.ssh.user``
  (root: the steps use the local MariaDB root over its Unix socket and write a drop-in under
  ``/etc/mysql``).
* run: either (a) the rendered script copied to the host and run as ``bash <path>`` with stdin =
  ``step_stdin("", step, secret_values(cfg))`` (what components/database.py does), or (b)
  ``bash -s`` with stdin = ``step_stdin(render_step(cfg, step), step, secret_values(cfg))``.
  Wrap stdin in ``pulumi.Output.secret``. Format: one ``NAME=value`` line per name in
  ``step.secrets`` (blank lines ignored), after the script in mode (b): a script ends with
  ``main "$@"; exit $?``, bash reads it up to that line, ``main`` then reads the secret lines from
  the same stdin, and ``exit`` stops bash before it could run them. A step without secrets never
  reads stdin. Values hold no newline (config validation). No secret is ever in the command
  line, the environment or the rendered script.
* ``triggers``: ``[plan_digest(cfg)]`` for EVERY step: the steps only make sense together (the
  migrate step needs the migration user that target-prepare creates and target-finish drops), so
  any change re-runs the whole plan in order. Re-running is safe: each step is idempotent.
* ``update``: the same as ``create`` (no ``delete``: a migration is never undone by Pulumi).
* ``phase``: ``source`` (seed, binlog, source-app: the source as the shop's database) or
  ``move``. Replicate mode deploys the web tier between the two phases, so the shop takes orders
  through the VIP while its database moves, and switches every web node after the move
  (components/program.py); snapshot mode runs both phases before the web tier.
* Exit status: 0 ok; 1 failure; 2 missing tool / bad input; 3 refused (the target holds a
  ``ds_shop`` webha did not create: nothing changed); 4 verification failed; 5 cannot connect or
  access denied. The message on stderr says what to do; fail the resource with it.

The steps (``seed-sample`` only when ``database.seedSample``):

======================  ========  ==============================  ===================================
name                    host      template                        stdin (NAME=value lines)
======================  ========  ==============================  ===================================
db-seed-sample          source    db/seed-sample.sh.j2            (none)
db-source-binlog        source    db/source-binlog.sh.j2          (none)   [replicate mode only]
db-source-app           source    db/source-app.sh.j2             APP_PASSWORD   [replicate mode only]
db-migrate-credential   source    db/migrate-credential.sh.j2     (none); stdout: MIGRATE_VERIFIER
db-target-prepare       target    db/target-prepare.sh.j2         APP_PASSWORD, MIGRATE_VERIFIER
db-migrate              source    db/migrate.sh.j2                (none); replicate: DATABASE_PHP_B64
db-target-finish        target    db/target-finish.sh.j2          (none)
db-source-retire        source    db/source-retire.sh.j2          (none)
======================  ========  ==============================  ===================================

``database.mode: replicate`` (docs/migration.md): db-source-binlog enables binary logging on the
source before the move (one measured restart only when it is off); db-source-app lets the app on
every web node use the source until the move; db-migrate then copies at a
GTID, makes the target a replica, verifies at one GTID, fences the source (read_only, under a
lease), switches the source host's database.php (``DATABASE_PHP_B64``: :func:`database_php`, the
web step's render(), base64 on one line) and removes replication. db-source-retire applies
``database.sourceAfterMove`` once the move is recorded on the source.

``APP_PASSWORD`` is ``dbPassword`` (the same value database.php gets). The migration account's
password is random, made on the source host by ``db-migrate-credential`` on every plan run and kept
there (0600 file) for ``db-migrate``, which removes it and drops the account when it exits. Only its
verifier (``MIGRATE_VERIFIER``, the mysql_native_password hash, useless for logging in) travels:
``step.outputs`` names what a step prints on stdout as ``NAME=value``; the component passes those
values (:func:`step_outputs` of the step's stdout) to later steps' stdin with the secrets.

Template context = ``topology.base_context(cfg)`` plus ``step.context``, which holds:

* ``step``: ``{name, host, secrets}``;
* ``migration``: ``meta_schema`` (``webha_meta``), ``user`` (``webha_migrate``),
  ``app_privileges``, ``owner_role``, ``owner_privileges``, ``import_privileges``,
  ``dropin_name``, ``max_allowed_packet``, ``connect_timeout``, ``lock_wait_timeout``,
  ``lock_attempts``, ``snapshot_wait``, ``compress``, ``no_autocommit`` and ``local`` = the :class:`DbRuntime` of
  the host the step runs on (``socket``, ``conf_dir``, ``restart_command``, ``tmp_dir``);
* ``seed`` (seed step only): ``{rows, shopdata_py}`` (the generator's source, piped to python3).

Real guests use :func:`default_runtime` (Debian: ``/run/mysqld/mysqld.sock``,
``/etc/mysql/mariadb.conf.d``, ``systemctl restart mariadb``). The tests pass their own runtimes
(sockets and a restart script of a ``mariadbd`` started by hand): that is the only difference.
"""

from __future__ import annotations

import base64
import ipaddress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from .config import StackConfig
from .render import digest, render
from .topology import base_context

SHOPDATA = Path(__file__).resolve().parent.parent / "webha" / "testbed" / "shopdata.py"

# The app's rights on ds_shop.*: data only. No DDL, no GRANT, no FILE, no access to other schemas.
# EXECUTE for the shop's stored routines, CREATE TEMPORARY TABLES for report queries.
APP_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "EXECUTE", "CREATE TEMPORARY TABLES")

# The definer of the copied views/routines/triggers/events (a role: it cannot log in). It needs the
# app's rights to run them, and TRIGGER on the tables its triggers fire on.
OWNER_PRIVILEGES = APP_PRIVILEGES + ("TRIGGER",)

# What restoring mariadb-dump's output (and dropping a partial copy) needs on ds_shop.*, and what
# verification reads: no UPDATE/DELETE, no GRANT OPTION, nothing outside the shop schema.
IMPORT_PRIVILEGES = ("SELECT", "INSERT", "CREATE", "DROP", "ALTER", "INDEX", "REFERENCES",
                     "LOCK TABLES", "CREATE VIEW", "SHOW VIEW", "CREATE ROUTINE", "ALTER ROUTINE",
                     "EVENT", "TRIGGER")

SEED_ROWS = 2000


@dataclass(frozen=True)
class DbRuntime:
    """How a host runs MariaDB: where its socket and config drop-ins are, how to restart it."""

    socket: str = "/run/mysqld/mysqld.sock"
    conf_dir: str = "/etc/mysql/mariadb.conf.d"
    # Run (by bash -c) only when the drop-in changed what the server must listen on; "" = never
    # restart (the step then fails and says so if a restart is needed).
    restart_command: str = "systemctl restart mariadb"
    # Where the migrate step keeps its credentials file and work files (mode 0700 dir).
    tmp_dir: str = "/dev/shm"
    # database.sourceAfterMove: stopped -> how to stop the source for good (run by bash -c).
    stop_command: str = "systemctl disable --now mariadb"
    # Survives reboots and a stopped MariaDB: the fence lease and the "moved" record of the source.
    state_dir: str = "/var/lib/webha/db"
    # The app's database.php on this host ("" = app.databasePhp): replicate mode switches it.
    database_php: str = ""


def default_runtime(os_family: str) -> DbRuntime:
    if os_family == "rhel":
        return DbRuntime(socket="/var/lib/mysql/mysql.sock", conf_dir="/etc/my.cnf.d")
    return DbRuntime()


@dataclass(frozen=True)
class Step:
    name: str
    host: str
    template: str
    context: dict = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    # NAME=value lines this step prints on stdout, for later steps' stdin.
    outputs: tuple[str, ...] = ()
    # "source": readies the source as the shop's database; "move": moves it (see the docstring).
    phase: str = "move"


def database_php(cfg: StackConfig, password: str) -> str:
    """The app's database.php pointing at the target: the same render() the web step uses."""
    ctx = base_context(cfg)
    return render("app/application/database.php.j2", **ctx, db_host=ctx["database"]["target_ip"],
                  db_password=password)


def secret_values(cfg: StackConfig) -> dict[str, str]:
    """Every secret from the stack config a step may ask for, by name. ``DATABASE_PHP_B64``: the
    switched database.php (it holds the password) in base64, one line, for replicate mode."""
    pw = cfg.db_password.get_secret_value()
    return {"APP_PASSWORD": pw,
            "DATABASE_PHP_B64": base64.b64encode(database_php(cfg, pw).encode()).decode()}


def server_id(ip: str) -> int:
    """A replication server_id per host: its IPv4 address as a number (distinct per host)."""
    return int(ipaddress.IPv4Address(ip))


def step_outputs(step: Step, stdout: Optional[str], strict: bool = True) -> dict[str, str]:
    """The ``NAME=value`` lines a step printed for later steps (``step.outputs``); anything
    else on its stdout is ignored. A missing name raises, or with ``strict=False`` maps to ""
    (the receiving step then fails with "secret NAME missing on stdin")."""
    found = {}
    for line in (stdout or "").splitlines():
        name, sep, value = line.partition("=")
        if sep and name in step.outputs:
            found[name] = value
    missing = [n for n in step.outputs if n not in found]
    if missing and strict:
        raise ValueError(f"step {step.name} printed no {', '.join(missing)} on stdout")
    return {**{n: "" for n in missing}, **found}


def migration_settings(cfg: StackConfig, runtime: DbRuntime, **overrides) -> dict:
    settings = {
        "meta_schema": "webha_meta",
        "user": "webha_migrate",
        "app_privileges": list(APP_PRIVILEGES),
        "dropin_name": "60-webha.cnf",
        "max_allowed_packet": "256M",
        "connect_timeout": 10,
        "owner_role": f"{cfg.database.name}_owner",
        "owner_privileges": list(OWNER_PRIVILEGES),
        "import_privileges": list(IMPORT_PRIVILEGES),
        # Blocking commits on the source (BACKUP STAGE BLOCK_COMMIT): each attempt waits at most
        # lock_wait_timeout s, lock_attempts times; the block ends when the dump's snapshot exists,
        # at the latest after snapshot_wait s.
        "lock_wait_timeout": 5,
        "lock_attempts": 3,
        "snapshot_wait": 30,
        "compress": False,
        "no_autocommit": False,
        "local": asdict(runtime),
        # replicate mode (docs/migration.md "Replicate mode")
        "mode": cfg.database.mode,
        "source_after_move": cfg.database.source_after_move,
        "repl_user": "webha_repl",
        "source_dropin_name": "61-webha-source.cnf",
        "retired_dropin_name": "62-webha-retired.cnf",
        "source_server_id": server_id(str(cfg.host(cfg.database.source_host).ip)),
        "target_server_id": server_id(str(cfg.host(cfg.database.target_host).ip)),
        # Catch-up: the replica must apply what the source committed within lag_gate s (checked
        # with MASTER_GTID_WAIT) before the fence; give up after catchup_timeout s.
        "lag_gate": 1,
        "catchup_timeout": 600,
        # The fence (read_only=1 on the source): the replica must reach the fenced GTID within
        # fence_wait s; the lease lifts the fence fence_lease s after it was set (or at once when
        # the run dies), unless the run claimed it for the switch.
        "fence_wait": 10,
        "fence_lease": 30,
    }
    settings.update(overrides)
    return settings


def migration_steps(
    cfg: StackConfig,
    runtimes: Optional[Mapping[str, DbRuntime]] = None,
    seed_rows: int = SEED_ROWS,
    **settings,
) -> list[Step]:
    """The plan for ``cfg``, in order. ``runtimes`` maps host name -> :class:`DbRuntime` (tests);
    ``settings`` override ``migration`` keys (e.g. ``compress=True``)."""
    db = cfg.database
    runtimes = dict(runtimes or {})

    def rt(host: str) -> DbRuntime:
        return runtimes.get(host) or default_runtime(cfg.image.os_family)

    def step(name: str, host: str, template: str, secrets: tuple[str, ...] = (),
             outputs: tuple[str, ...] = (), phase: str = "move", **extra) -> Step:
        ctx = {
            "step": {"name": name, "host": host, "secrets": list(secrets)},
            "migration": migration_settings(cfg, rt(host), **settings),
            **extra,
        }
        return Step(name, host, template, ctx, secrets, outputs, phase)

    steps = []
    if db.seed_sample:
        steps.append(step("db-seed-sample", db.source_host, "db/seed-sample.sh.j2", phase="source",
                          seed={"rows": seed_rows, "shopdata_py": SHOPDATA.read_text()}))
    if db.mode == "replicate":
        # Binary logging + server_id on the source, a restart only when they are off: its own
        # resource, so `pulumi preview` shows it before anything moves.
        steps.append(step("db-source-binlog", db.source_host, "db/source-binlog.sh.j2", phase="source"))
        # The app on every web node uses the source until the move switches it.
        steps.append(step("db-source-app", db.source_host, "db/source-app.sh.j2", ("APP_PASSWORD",),
                          phase="source"))
    replicate = db.mode == "replicate"
    steps += [
        step("db-migrate-credential", db.source_host, "db/migrate-credential.sh.j2",
             outputs=("MIGRATE_VERIFIER",)),
        step("db-target-prepare", db.target_host, "db/target-prepare.sh.j2",
             ("APP_PASSWORD", "MIGRATE_VERIFIER")),
        step("db-migrate", db.source_host, "db/migrate.sh.j2",
             ("DATABASE_PHP_B64",) if replicate else ()),
        step("db-target-finish", db.target_host, "db/target-finish.sh.j2"),
        step("db-source-retire", db.source_host, "db/source-retire.sh.j2"),
    ]
    return steps


def render_step(cfg: StackConfig, step: Step, base: Optional[dict] = None) -> str:
    ctx = dict(base if base is not None else base_context(cfg))
    ctx.update(step.context)
    return render(step.template, **ctx)


def step_stdin(script: str, step: Step, secrets: Mapping[str, str]) -> str:
    """What the step's ``bash -s`` reads: the script, then its secrets as NAME=value lines."""
    if not script.endswith("\n"):
        script += "\n"
    lines = []
    for name in step.secrets:
        value = secrets[name]
        if "\n" in value or "\r" in value or "\0" in value:
            raise ValueError(f"secret {name} must be one line")
        lines.append(f"{name}={value}\n")
    return script + "".join(lines)


def step_values(secrets: Mapping[str, str], earlier: list[tuple[Step, Optional[str]]],
                strict: bool = True) -> dict[str, str]:
    """What a step may read on stdin: the config's secrets plus what earlier steps printed
    (``earlier`` = (step, its stdout) for every step with ``outputs``)."""
    values = dict(secrets)
    for made_by, stdout in earlier:
        values.update(step_outputs(made_by, stdout, strict=strict))
    return values


def plan_digest(cfg: StackConfig, steps: Optional[list[Step]] = None) -> str:
    """One value for every step's ``triggers``: changes when any step's script changes."""
    steps = steps if steps is not None else migration_steps(cfg)
    base = base_context(cfg)
    return digest("".join(f"{s.name}@{s.host}\n{render_step(cfg, s, base)}" for s in steps))


def template_contexts(cfg: StackConfig) -> dict[str, dict]:
    """Extra context for each db template (for a render tier iterating ``templates/``).

    ``db/lib.sh.j2`` is a partial: it renders with any step's context.
    """
    steps = migration_steps(cfg.model_copy(update={"database": cfg.database.model_copy(
        update={"seed_sample": True, "mode": "replicate"})}))
    out = {s.template: s.context for s in steps}
    out["db/lib.sh.j2"] = out["db/target-prepare.sh.j2"]
    return out
