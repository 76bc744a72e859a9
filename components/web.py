"""The web side of the tier: the shop + nginx on each web node, then keepalived across them.

Order matters and is explicit: the app is pointed at the migrated database before nginx serves
it, and keepalived is configured last, lowest priority first, so the preferred node never
advertises the VIP while its backup is still unconfigured.
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
    """keepalived on every web node: backups first, the preferred node last."""

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
        for node in reversed(vrrp_nodes(cfg)):  # lowest priority first
            plain = keepalived_context(cfg, node.name, auth_pass="********" if cfg.vrrp.auth_type == "PASS" else None)
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
        self.register_outputs({})
