"""One guest's SSH host key on the guest: the first step on every host, before any remote command.

A ``command:local:Command`` running ``python -m webha.hostkeys install`` on the machine that runs
Pulumi (webha/hostkeys.py explains the steps), with the private key on stdin (a secret: encrypted in
state, never in argv). It runs:

* when the guest is new (``triggers`` = the domain's id): the guest booted with the key from
  cloud-init; the step waits for sshd answering with exactly that key and changes nothing;
* when the key changes in the config (a rotation): the step connects trusting the old key (its
  own previous stdout) or the new one, installs the new key, and checks the guest answers with
  it. Every remote step on the host expects the new key (``host_key``) and runs after this one.

A no-op ``pulumi up`` runs nothing here and changes no key.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import pulumi
import pulumi_libvirt as libvirt
from pulumi_command import local
from pydantic import SecretStr

from .config import HostConfig, StackConfig
from .render import render
from .topology import host_context

ROOT = Path(__file__).resolve().parent.parent


class HostKey(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        host: HostConfig,
        private_key: SecretStr,
        public_key: str,
        domain: libvirt.Domain,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("webha:index:HostKey", name, None, opts)
        script = render("scripts/host-key-install.sh.j2", **host_context(cfg, host),
                        public_key=public_key, ssh_port=cfg.ssh.port)
        self.command = local.Command(
            name,
            create=shlex.join([
                sys.executable, "-m", "webha.hostkeys", "install", "--name", host.name,
                "--ip", str(host.ip), "--user", cfg.ssh.user, "--port", str(cfg.ssh.port),
                "--identity", cfg.ssh.private_key_path]),
            stdin=pulumi.Output.secret(private_key.get_secret_value()),
            dir=str(ROOT),
            environment={"WEBHA_HOST_KEY": public_key, "WEBHA_HOST_KEY_SCRIPT": script},
            add_previous_output_in_env=True,
            triggers=[domain.id],
            opts=pulumi.ResourceOptions(parent=self, depends_on=[domain]),
        )
        self.public_key = public_key
        self.register_outputs({"publicKey": public_key})
