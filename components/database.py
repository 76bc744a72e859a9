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

Two phases (``Step.phase``). Snapshot mode declares both at once, before the web tier. Replicate
mode declares the ``source`` phase (seed, binary logging, the app user on the source) here and
the ``move`` phase with :meth:`DatabaseMigration.move`, after the web tier is up and taking orders
on the source (components/program.py): the shop writes while its database moves.
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
        self._cfg, self._conns = cfg, conns
        self._plan = migration_steps(cfg)
        self._digest = plan_digest(cfg, self._plan)
        self._secrets = secret_values(cfg)
        self._previous: list[pulumi.Resource] = list(depends_on)
        self._produced: list[tuple] = []  # (step, its stdout Output) for steps with outputs
        self.steps: list[RemoteStep] = []
        self.split = cfg.database.mode == "replicate"
        if self.split:
            self._add([s for s in self._plan if s.phase == "source"], ())
        else:
            self._add(self._plan, ())
            self.register_outputs({"report": self.steps[-1].stdout})

    @property
    def source_ready(self) -> list[pulumi.Resource]:
        """What the web tier waits for in replicate mode: the source ready as the shop's database."""
        return list(self._previous)

    def move(self, depends_on: Sequence[pulumi.Resource]) -> list[pulumi.Resource]:
        """Replicate mode: the move's steps, after ``depends_on`` (the web tier taking orders).
        Returns what the switch of every web node waits for (the last step)."""
        if not self.split:
            raise ValueError("move() is the second phase of replicate mode only")
        self._add([s for s in self._plan if s.phase == "move"], depends_on)
        self.register_outputs({"report": self.steps[-1].stdout})
        return list(self._previous)

    def _add(self, steps, after: Sequence[pulumi.Resource]) -> None:
        previous = [*self._previous, *after]
        for step in steps:
            stdin = None
            if step.secrets:
                makers = [s for s, _ in self._produced]
                stdin = pulumi.Output.secret(pulumi.Output.all(*[out for _, out in self._produced]).apply(
                    lambda outs, step=step, makers=makers: step_stdin(
                        "", step, step_values(self._secrets, list(zip(makers, outs)), strict=False))))
            rs = RemoteStep(
                step.name,
                self._conns[step.host],
                render_step(self._cfg, step),
                stdin=stdin,
                extra_triggers=[self._digest],
                depends_on=previous,
                opts=pulumi.ResourceOptions(parent=self),
            )
            self.steps.append(rs)
            if step.outputs:
                self._produced.append((step, rs.stdout))
            previous = [rs]
        self._previous = previous
