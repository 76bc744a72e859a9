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
HOST_KEYS_FIELD = "sshHostPublicKeys"
SECRET_FIELDS = {"db_password", "vrrp_auth_pass", "ssh_host_keys"}


def check_spec(cfg: StackConfig, host_keys: dict[str, str]) -> str:
    """The stack config as the check reads it: JSON, secrets left out (the check needs none), plus
    the guests' public host keys (``sshHostPublicKeys``: the check trusts these and no other).

    The multi-hypervisor fields are left out while they hold their defaults: the spec is the
    check's stdin, so a single-hypervisor stack keeps the very input it had before they existed
    (its no-op `up` stays a no-op)."""
    spec = cfg.model_dump(mode="json", by_alias=True, exclude=SECRET_FIELDS)
    for key in ("hypervisors", "allowSameHypervisor"):
        if not spec[key]:
            del spec[key]
    if "hypervisors" in spec:
        del spec["libvirt"]["uri"]  # unused (and refused) next to hypervisors
    if spec["network"]["bridge"] is None:
        del spec["network"]["bridge"]
    for host in spec["hosts"]:
        if host["hypervisor"] is None:
            del host["hypervisor"]
    spec[HOST_KEYS_FIELD] = dict(host_keys)
    return json.dumps(spec, sort_keys=True)


class TierCheck(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        stack: str,
        step_digests: Sequence[str],
        secrets: Sequence[pulumi.Output[str]],
        domain_ids: Sequence[pulumi.Output[str]],
        host_keys: dict[str, str],
        depends_on: Sequence[pulumi.Resource] = (),
        deadline_s: int = 120,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("webha:index:TierCheck", name, None, opts)
        spec = check_spec(cfg, host_keys)
        create = shlex.join([sys.executable, "-m", "webha", "verify", "--config-json", "-",
                             "--deadline", str(deadline_s)])
        # New guests re-run the check (their host keys are the same: the stack's).
        domains = pulumi.Output.all(*domain_ids).apply(lambda ids: digest(" ".join(ids)))
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
                "WEBHA_TIER_DOMAINS": domains,
            },
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
        )
        self.report = self.command.stdout
        self.register_outputs({"report": self.report})
