"""The web side of the tier: the shop + nginx on each web node, then keepalived across them.

Order matters and is explicit: the app is pointed at the migrated database before nginx serves
it, and keepalived is configured last, lowest priority first, so the preferred node never
reloads into a new config its backup does not have yet. The first start goes highest priority
first: in non-preemptive mode whoever starts first keeps the VIP.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
from pulumi_command import remote

from .config import StackConfig
from .remote import RemoteStep, staging_dir
from .render import render
from .topology import host_context, keepalived_context, vrrp_nodes


class WebNode(pulumi.ComponentResource):
    """database.php (secret, over stdin), then the app files and the nginx site."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        host_name: str,
        conn: remote.ConnectionArgs,
        db_password: pulumi.Output[str],
        depends_on: Sequence[pulumi.Resource] = (),
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("webha:index:WebNode", name, None, opts)
        host = cfg.host(host_name)
        ctx = host_context(cfg, host)
        ctx["db_host"] = str(cfg.db_host.ip)
        database_php = db_password.apply(
            lambda pw: render("app/application/database.php.j2", **ctx, db_password=pw)
        )
        self.app_config = RemoteStep(
            f"{host.name}-app-config",
            conn,
            render("scripts/app-config.sh.j2", **ctx),
            stdin=pulumi.Output.secret(database_php),
            depends_on=depends_on,
            opts=pulumi.ResourceOptions(parent=self),
        )
        step = f"{host.name}-web-install"
        self.web_install = RemoteStep(
            step,
            conn,
            render("scripts/web-install.sh.j2", **ctx, staging=staging_dir(step)),
            files={
                "index.php": render("app/public/index.php.j2", **ctx),
                "shop.conf": render("nginx/shop.conf.j2", **ctx),
            },
            delete_script=render("scripts/web-remove.sh.j2", **ctx),
            depends_on=[self.app_config],
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({})


class HaPair(pulumi.ComponentResource):
    """keepalived on every web node: configs (and reloads) backups first, the preferred node last;
    the one-time first start the other way round."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        conns: dict[str, remote.ConnectionArgs],
        auth_pass: Optional[pulumi.Output[str]],
        depends_on: Sequence[pulumi.Resource] = (),
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("webha:index:HaPair", name, None, opts)
        self.steps: dict[str, RemoteStep] = {}
        previous: list[pulumi.Resource] = list(depends_on)
        secret = auth_pass if auth_pass is not None else pulumi.Output.from_input("")

        def masked(node_name: str) -> dict:
            """The context for the files that are not secret: the VRRP password masked."""
            return keepalived_context(
                cfg, node_name, auth_pass="********" if cfg.vrrp.auth_type == "PASS" else None
            )

        for node in reversed(vrrp_nodes(cfg)):  # lowest priority first
            plain = masked(node.name)
            step = f"{node.name}-keepalived"
            conf = secret.apply(
                lambda pw, n=node.name: render(
                    "keepalived/keepalived.conf.j2", **keepalived_context(cfg, n, pw or None)
                )
            )
            self.steps[node.name] = RemoteStep(
                step,
                conns[node.name],
                render("scripts/keepalived-apply.sh.j2", **plain, staging=staging_dir(step)),
                stdin=pulumi.Output.secret(conf),
                files={
                    "check_nginx.sh": render("keepalived/check_nginx.sh.j2", **plain),
                    "notify.sh": render("keepalived/notify.sh.j2", **plain),
                },
                delete_script=render("scripts/keepalived-remove.sh.j2", **plain),
                depends_on=previous,
                opts=pulumi.ResourceOptions(parent=self),
            )
            previous = [*depends_on, self.steps[node.name]]
        # First start, preferred node first (see keepalived-start.sh.j2); later ups only reload.
        self.starts: dict[str, RemoteStep] = {}
        for i, node in enumerate(vrrp_nodes(cfg)):
            plain = masked(node.name)
            self.starts[node.name] = RemoteStep(
                f"{node.name}-keepalived-start",
                conns[node.name],
                render("scripts/keepalived-start.sh.j2", **plain,
                       expect_state="MASTER" if i == 0 else "BACKUP"),
                depends_on=previous,
                opts=pulumi.ResourceOptions(parent=self),
            )
            previous = [*depends_on, *self.steps.values(), self.starts[node.name]]
        self.register_outputs({})
