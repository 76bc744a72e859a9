"""DatabaseMigration: move ``ds_shop`` from the source web host to the db host, verified.

The steps (which host, which template, which secrets on stdin) come from
:mod:`components.migration_plan`, the single list the tests also run against real MariaDB.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
from pulumi_command import remote

from .config import StackConfig
from .migration_plan import migration_steps, stdin_payload
from .remote import RemoteStep
from .render import render


class DatabaseMigration(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        conns: dict[str, remote.ConnectionArgs],
        db_password: pulumi.Output[str],
        depends_on: Sequence[pulumi.Resource] = (),
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("webha:index:DatabaseMigration", name, None, opts)
        previous: list[pulumi.Resource] = list(depends_on)
        self.steps: list[RemoteStep] = []
        for step in migration_steps(cfg):
            stdin = None
            if step.secrets:
                stdin = pulumi.Output.secret(
                    db_password.apply(lambda pw, s=step: stdin_payload(cfg, s, pw))
                )
            rs = RemoteStep(
                step.name,
                conns[step.host],
                render(step.template, **step.context),
                stdin=stdin,
                depends_on=previous,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.steps.append(rs)
            previous = [*depends_on, rs]
        self.register_outputs({"verification": self.steps[-1].stdout if self.steps else None})
