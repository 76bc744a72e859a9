"""The post-condition of `pulumi up`: the tier is healthy, checked from outside, or the up fails.

Every step before this one checks its own node (`keepalived -t`, `nginx -t`, the expected VRRP
state). Only a view across the nodes can say what an operator means by "deployed": exactly one
VIP holder (the expected one), every backup hearing adverts, HTTP through the VIP answered by
the holder and reading the database. That view is the operator's own tool, ``python -m webha
verify`` (webha/verify.py, built on the split-brain detector): one implementation of "who holds
the VIP", run here as a ``command:local:Command`` on the machine that runs Pulumi, which reaches
the guests just as the remote steps do.

It re-runs whenever anything it depends on changed (the digest of every web and keepalived step,
secrets included as a secret), and never on a no-op up.
"""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Optional, Sequence

import pulumi
from pulumi_command import local

from .config import StackConfig
from .render import digest

ROOT = Path(__file__).resolve().parent.parent
SECRET_FIELDS = {"db_password", "vrrp_auth_pass"}


def check_spec(cfg: StackConfig) -> str:
    """The stack config as the check reads it: JSON, secrets left out (the check needs none).

    The multi-hypervisor fields are left out while they hold their defaults: the spec is the
    check's stdin, so a single-hypervisor stack keeps the very input it had before they existed
    (its no-op `up` stays a no-op)."""
    data = cfg.model_dump(mode="json", by_alias=True, exclude=SECRET_FIELDS)
    for key in ("hypervisors", "allowSameHypervisor"):
        if not data[key]:
            del data[key]
    if "hypervisors" in data:
        del data["libvirt"]["uri"]  # unused (and refused) next to hypervisors
    if data["network"]["bridge"] is None:
        del data["network"]["bridge"]
    for host in data["hosts"]:
        if host["hypervisor"] is None:
            del host["hypervisor"]
    return json.dumps(data, sort_keys=True)


def known_hosts_path(cfg: StackConfig, stack: str, domain_ids: Sequence[str]) -> str:
    """The check's own known_hosts, next to the stack's SSH key: one per stack and set of guests
    (new guests make new host keys; a reboot keeps them). Trust on first use until host keys are
    pinned (see README "Known limits")."""
    return str(Path(cfg.ssh.private_key_path).parent
               / f"known_hosts.{stack}.{digest(' '.join(domain_ids))}")


class TierCheck(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        stack: str,
        step_digests: Sequence[str],
        secrets: Sequence[pulumi.Output[str]],
        domain_ids: Sequence[pulumi.Output[str]],
        depends_on: Sequence[pulumi.Resource] = (),
        deadline_s: int = 120,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("webha:index:TierCheck", name, None, opts)
        spec = check_spec(cfg)
        create = pulumi.Output.all(*domain_ids).apply(lambda ids: shlex.join([
            sys.executable, "-m", "webha", "verify", "--config-json", "-",
            "--known-hosts", known_hosts_path(cfg, stack, ids), "--deadline", str(deadline_s)]))
        secret_digest = pulumi.Output.secret(
            pulumi.Output.all(*secrets).apply(lambda xs: digest("\0".join(xs))))
        self.command = local.Command(
            name,
            create=create,
            stdin=spec,
            dir=str(ROOT),
            environment={
                "WEBHA_TIER_DIGEST": digest(spec + "".join(step_digests)),
                "WEBHA_TIER_SECRETS": secret_digest,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
        )
        self.report = self.command.stdout
        self.register_outputs({"report": self.report})
