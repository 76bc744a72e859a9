"""Remote steps: a rendered script copied with CopyToRemote, run by a Command, secrets on stdin.

Why this shape: the script is not secret, so it goes over as a file (visible, diffable in state);
anything secret (DB or VRRP passwords, files that hold them) travels only on the command's stdin,
which Pulumi stores encrypted and which never shows in a process list.

How a change re-runs a step: the script's remote path carries a hash of the script and its files,
so a changed file changes the command's ``create`` and a changed secret its ``stdin``: both are
*updates*, which run ``create`` again and nothing else. Not ``triggers``: a trigger change
*replaces* the command, and a replacement runs the old command's ``delete`` after the new
``create`` - for keepalived or nginx that undo would tear down what the re-run just configured.
``triggers`` are kept for what must force a re-run without an undo (the migration plan).
"""

from __future__ import annotations

from typing import Optional, Sequence

import pulumi
from pulumi_command import remote

from .render import digest

STEP_DIR = "/var/lib/webha/steps"
STAGING_DIR = "/var/lib/webha/staging"


def staging_dir(step: str) -> str:
    """Where a step's extra files land before its script installs them."""
    return f"{STAGING_DIR}/{step}"


def connection(
    host_ip: str, user: str, port: int, private_key: pulumi.Input[str], host_key: str
) -> remote.ConnectionArgs:
    """SSH to a guest that must answer with ``host_key`` (its pinned public key, no trust on first
    use); retried for a few minutes because TCG guests boot slowly."""
    return remote.ConnectionArgs(
        host=host_ip,
        user=user,
        port=port,
        private_key=private_key,
        host_key=host_key,
        dial_error_limit=120,
        per_dial_timeout=10,
    )


class RemoteStep(pulumi.ComponentResource):
    """One idempotent step on one host: copy ``script``, run it, optionally undo on delete."""

    def __init__(
        self,
        name: str,
        conn: remote.ConnectionArgs,
        script: str,
        stdin: Optional[pulumi.Input[str]] = None,
        delete_script: Optional[str] = None,
        files: Optional[dict[str, str]] = None,
        extra_triggers: Sequence[pulumi.Input] = (),
        depends_on: Sequence[pulumi.Resource] = (),
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        # The step's script and files (never secret: secrets travel on stdin) are the component's
        # inputs: `pulumi preview --diff` shows their changed lines. The copies' assets would not
        # (the engine elides the text of assets in diffs).
        ordered = sorted((files or {}).items())
        super().__init__("webha:index:RemoteStep", name, {"script": script, "files": dict(ordered)}, opts)
        self.step_name = name
        # What this step runs: the tier check re-runs when any step's digest changes.
        self.digest = digest(script + repr(ordered))
        path = f"{STEP_DIR}/{name}.{self.digest}.sh"

        def copy(suffix: str, content: str, remote_path: str) -> remote.CopyToRemote:
            return remote.CopyToRemote(
                f"{name}-{suffix}",
                connection=conn,
                source=pulumi.StringAsset(content),
                remote_path=remote_path,
                triggers=[digest(content)],
                opts=pulumi.ResourceOptions(parent=self, depends_on=list(depends_on)),
            )

        copies = [copy("script", script, path)]
        for fname, content in ordered:
            copies.append(copy(fname, content, f"{staging_dir(name)}/{fname}"))
        delete_cmd = None
        if delete_script is not None:
            undo = f"{STEP_DIR}/{name}.undo.sh"
            copies.append(copy("undo", delete_script, undo))
            delete_cmd = f"bash {undo}"
        if extra_triggers and delete_script is not None:
            raise ValueError(f"{name}: triggers replace the command, which would run its undo")
        self.command = remote.Command(
            name,
            connection=conn,
            create=f"bash {path}",
            delete=delete_cmd,
            stdin=stdin,
            triggers=list(extra_triggers) or None,
            opts=pulumi.ResourceOptions(parent=self, depends_on=[*depends_on, *copies]),
        )
        self.stdout = self.command.stdout
        self.register_outputs({"stdout": self.stdout})
