"""DatabaseMigration: move ``ds_shop`` from the source web host to the db host, verified.

The steps (which host, which template, which secrets) come from
:func:`components.migration_plan.migration_steps`, the single list the migration tests also run
against real MariaDB servers. Each step is a :class:`RemoteStep`: the rendered script is copied
over, run with ``bash``, and its secrets (``NAME=value`` lines) arrive on stdin only, together
with what earlier steps printed for it (``step.outputs``: the migration account's verifier from
db-migrate-credential goes to db-target-prepare; the password itself stays on the source). Every step
carries the plan's digest in its triggers: the steps only make sense together, so any change
re-runs the whole (idempotent) plan in order. There is no delete step: Pulumi never undoes a
migration.
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
from pulumi_command import remote

from .config import StackConfig
from .migration_plan import (migration_steps, plan_digest, render_step, secret_values, step_stdin,
                             step_values)
from .remote import RemoteStep


class DatabaseMigration(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        conns: dict[str, remote.ConnectionArgs],
        depends_on: Sequence[pulumi.Resource] = (),
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("webha:index:DatabaseMigration", name, None, opts)
        steps = migration_steps(cfg)
        plan = plan_digest(cfg, steps)
        secrets = secret_values(cfg)
        previous: list[pulumi.Resource] = list(depends_on)
        produced: list[tuple] = []  # (step, its stdout Output) for steps with outputs
        self.steps: list[RemoteStep] = []
        for step in steps:
            stdin = None
            if step.secrets:
                makers = [s for s, _ in produced]
                stdin = pulumi.Output.secret(pulumi.Output.all(*[out for _, out in produced]).apply(
                    lambda outs, step=step, makers=makers: step_stdin(
                        "", step, step_values(secrets, list(zip(makers, outs)), strict=False))))
            rs = RemoteStep(
                step.name,
                conns[step.host],
                render_step(cfg, step),
                stdin=stdin,
                extra_triggers=[plan],
                depends_on=previous,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.steps.append(rs)
            if step.outputs:
                produced.append((step, rs.stdout))
            previous = [rs]
        self.register_outputs({"report": self.steps[-1].stdout})
