"""The web side of the tier: the shop + nginx on each web node, then keepalived across them.

Order matters and is explicit: the app is pointed at the migrated database before nginx serves
it, and keepalived is configured last, lowest priority first, so the preferred node never
reloads into a new config its backup does not have yet. The first start goes highest priority
first: in non-preemptive mode whoever starts first keeps the VIP.
"""

from __future__ import annotations

from typing import Optional, Sequence

import shlex
import sys

import pulumi
from pulumi_command import local, remote

from .config import StackConfig
from .remote import RemoteStep, staging_dir
from .render import digest, render
from .tiercheck import ROOT, check_spec
from .topology import host_context, keepalived_context, vrrp_nodes


class WebNode(pulumi.ComponentResource):
    """database.php (secret, over stdin), then the app files and the nginx site.

    ``db_host`` is where the app's database.php points now. Snapshot mode: the target (the move
    ran before). Replicate mode: the source while the move runs (``app_phase`` "before-move": a
    node the move already switched is left alone), then :meth:`switch` points it at the target
    after the move.
    """

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        host_name: str,
        conn: remote.ConnectionArgs,
        db_password: pulumi.Output[str],
        depends_on: Sequence[pulumi.Resource] = (),
        opts: Optional[pulumi.ResourceOptions] = None,
        db_host: Optional[str] = None,
        app_phase: str = "deploy",
    ):
        super().__init__("webha:index:WebNode", name, None, opts)
        host = cfg.host(host_name)
        self._cfg, self._conn, self._host, self._password = cfg, conn, host, db_password
        self.app_config = self._app_config(f"{host.name}-app-config", db_host or str(cfg.db_host.ip),
                                           app_phase, depends_on)
        ctx = host_context(cfg, host)
        step = f"{host.name}-web-install"
        self.web_install = RemoteStep(
            step,
            conn,
            render("scripts/web-install.sh.j2", **ctx, staging=staging_dir(step)),
            files={
                "index.php": render("app/public/index.php.j2", **ctx),
                "order.php": render("app/public/order.php.j2", **ctx),
                "shop_order.php": render("app/application/shop_order.php.j2", **ctx),
                "shop.conf": render("nginx/shop.conf.j2", **ctx),
                "opcache-webha.ini": render("php/opcache-webha.ini.j2", **ctx),
                "opcache-blacklist.txt": render("php/opcache-blacklist.txt.j2", **ctx),
            },
            delete_script=render("scripts/web-remove.sh.j2", **ctx),
            depends_on=[self.app_config],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.app_switch: Optional[RemoteStep] = None
        self.register_outputs({})

    def _app_config(self, step: str, db_host: str, app_phase: str,
                    depends_on: Sequence[pulumi.Resource]) -> RemoteStep:
        ctx = host_context(self._cfg, self._host)
        ctx["db_host"] = db_host
        database_php = self._password.apply(
            lambda pw: render("app/application/database.php.j2", **ctx, db_password=pw)
        )
        return RemoteStep(
            step,
            self._conn,
            render("scripts/app-config.sh.j2", **ctx, app_phase=app_phase),
            stdin=pulumi.Output.secret(database_php),
            depends_on=depends_on,
            opts=pulumi.ResourceOptions(parent=self),
        )

    def switch(self, depends_on: Sequence[pulumi.Resource]) -> RemoteStep:
        """Replicate mode, after the move: this node's database.php -> the target (on the source
        host db-migrate did it inside the fence; this step then only checks it and leaves the
        marker)."""
        self.app_switch = self._app_config(f"{self._host.name}-app-switch", str(self._cfg.db_host.ip),
                                           "switch", depends_on)
        return self.app_switch


class HaPair(pulumi.ComponentResource):
    """keepalived on every web node: quiesce (all nodes), the rollout gate (the whole tier at once),
    configs and reloads backups first, the preferred node last; the first start the other way round, and the rejoin after a changed
    VRRP instance.

    keepalived.conf is a visible file (its changed lines show in ``pulumi preview --diff``); only
    the VRRP password travels as a secret, on stdin, into a 0600 file the config includes.
    """

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        conns: dict[str, remote.ConnectionArgs],
        auth_pass: Optional[pulumi.Output[str]],
        host_keys: dict[str, str],
        depends_on: Sequence[pulumi.Resource] = (),
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("webha:index:HaPair", name, None, opts)
        self.steps: dict[str, RemoteStep] = {}
        previous: list[pulumi.Resource] = list(depends_on)
        if auth_pass is not None:
            auth_file = pulumi.Output.secret(
                auth_pass.apply(lambda pw: render("keepalived/vrrp-auth.conf.j2", auth_pass=pw)))
        else:
            auth_file = pulumi.Output.secret("")
        nodes = vrrp_nodes(cfg)
        # Before any config is applied: a node that would run a changed VRRP instance next to a
        # holder still running the old one stops (keepalived-quiesce.sh.j2).
        self.quiesce: dict[str, RemoteStep] = {}
        for node in nodes:
            ctx = keepalived_context(cfg, node.name)
            step = f"{node.name}-keepalived-quiesce"
            self.quiesce[node.name] = RemoteStep(
                step,
                conns[node.name],
                render("scripts/keepalived-quiesce.sh.j2", **ctx, staging=staging_dir(step)),
                stdin=auth_file,
                files={"keepalived.conf": render("keepalived/keepalived.conf.j2", **ctx)},
                depends_on=list(depends_on),
                opts=pulumi.ResourceOptions(parent=self),
            )
        # Then one look at the whole tier (webha/rollout_gate.py): the VIP may have moved while the
        # quiesce steps ran one node at a time; whatever still runs next to the holder stops now.
        spec = check_spec(cfg, host_keys)
        self.gate = local.Command(
            "keepalived-rollout-gate",
            create=shlex.join([sys.executable, "-m", "webha", "rollout-gate", "--config-json", "-"]),
            stdin=spec,
            dir=str(ROOT),
            environment={
                # Re-run whenever a quiesce step re-runs: its files, or the password (a secret).
                "WEBHA_GATE_DIGEST": digest(spec + "".join(q.digest for q in self.quiesce.values())),
                "WEBHA_GATE_SECRETS": pulumi.Output.secret(auth_file.apply(digest)),
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, *self.quiesce.values()]),
        )
        previous = [*depends_on, *self.quiesce.values(), self.gate]

        for node in reversed(nodes):  # lowest priority first
            ctx = keepalived_context(cfg, node.name)
            step = f"{node.name}-keepalived"
            self.steps[node.name] = RemoteStep(
                step,
                conns[node.name],
                render("scripts/keepalived-apply.sh.j2", **ctx, staging=staging_dir(step)),
                stdin=auth_file,
                files={
                    base: render(f"keepalived/{base}.j2", **ctx)
                    for base in KEEPALIVED_FILES
                },
                delete_script=render("scripts/keepalived-remove.sh.j2", **ctx),
                depends_on=previous,
                opts=pulumi.ResourceOptions(parent=self),
            )
            previous = [*depends_on, *self.quiesce.values(), self.gate, self.steps[node.name]]
        # Start, preferred node first (see keepalived-start.sh.j2). Its text names the instance
        # and its stdin carries the password, so a changed instance re-runs it; nothing else does.
        self.starts: dict[str, RemoteStep] = {}
        for i, node in enumerate(nodes):
            ctx = keepalived_context(cfg, node.name)
            self.starts[node.name] = RemoteStep(
                f"{node.name}-keepalived-start",
                conns[node.name],
                render("scripts/keepalived-start.sh.j2", **ctx,
                       expect_state="MASTER" if i == 0 else "BACKUP",
                       instance_id=instance_id(cfg)),
                stdin=auth_file,
                depends_on=previous,
                opts=pulumi.ResourceOptions(parent=self),
            )
            previous = [*depends_on, *self.steps.values(), self.starts[node.name]]
        self.last: list[pulumi.Resource] = previous
        self.register_outputs({})


def instance_id(cfg: StackConfig) -> str:
    """What makes the nodes one VRRP instance, less the password (keepalived-identity.sh.j2)."""
    v = cfg.vrrp
    ident = f"virtual_router_id {v.virtual_router_id}, VRRPv{v.version}, auth {v.auth_type}"
    if v.version == 2:  # keepalived drops v2 adverts of another interval
        ident += f", advert_int {format(v.advert_int.normalize(), 'f')}"
    return ident


# The non-secret files of keepalived on a web node, each from templates/keepalived/<name>.j2.
KEEPALIVED_FILES = (
    "keepalived.conf",
    "check_nginx.sh",
    "notify.sh",
    "release-vip.sh",
    "systemd-override.conf",
    "tmpfiles.conf",
    "nginx-exit.sh",
    "nginx-override.conf",
    "webha-events.py",
    "vip-held.sh",
    "webha-events.service",
)
