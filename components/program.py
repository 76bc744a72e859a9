"""The whole tier, wired in deployment order. ``__main__.py`` only calls :func:`build`.

VMs -> host prep -> DB migration -> app config -> nginx -> keepalived (backups before the
preferred node) -> the tier check (exactly one VIP holder, HTTP through the VIP reads the
database). Every arrow is an explicit ``depends_on``. ``database.mode: replicate``: VMs ->
host prep -> the source ready (seed, binary logging, app user) -> app config (on the source) ->
nginx -> keepalived -> the move (the shop taking orders) -> every web node switched to the
target -> the tier check.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pulumi
import pulumi_libvirt as libvirt

from .config import ConfigError, StackConfig, load_stack_config
from .database import DatabaseMigration
from .hostkey_step import HostKey
from .network import Network
from .outputs import stack_outputs
from .remote import RemoteStep, connection
from .render import render
from .tiercheck import TierCheck
from .topology import host_context
from .vm import Placement, VirtualMachine, mac_for
from .web import HaPair, WebNode


def read_ssh_key(cfg: StackConfig) -> tuple[pulumi.Output[str], str]:
    """(private key as a secret, public key). Read at preview too: a missing key fails early."""
    path = Path(cfg.ssh.private_key_path)
    try:
        private = path.read_text()
        public = Path(f"{path}.pub").read_text().strip()
    except OSError as exc:
        raise ConfigError(f"webha:ssh.privateKeyPath: cannot read {exc.filename}: {exc.strerror}") from None
    return pulumi.Output.secret(private), public


def build(cfg: Optional[StackConfig] = None) -> dict:
    """Declare every resource of the tier; returns the components (the graph tests read them)."""
    if cfg is None:
        try:
            cfg = load_stack_config()
        except ConfigError as exc:
            raise pulumi.RunError(f"invalid stack config:\n{exc}") from None
    private_key, public_key = read_ssh_key(cfg)
    try:
        host_keys = cfg.host_public_keys()
    except ConfigError as exc:
        raise pulumi.RunError(f"invalid stack config:\n{exc}") from None
    stack = pulumi.get_stack()

    # One libvirt provider, base image (and, unless bridged, network) per hypervisor. A stack
    # without `hypervisors` has one implicit hypervisor whose resources keep their old names.
    places: dict[str, Placement] = {}
    for hv in cfg.used_hypervisors():
        provider = libvirt.Provider(hv.resource_name("libvirt"), uri=hv.uri)
        net = None if cfg.network.mode == "bridge" else Network(hv.resource_name("net"), cfg.network, provider)
        base = libvirt.Volume(
            hv.resource_name("base-image"),
            name=f"{cfg.network.name}-base.qcow2",
            pool=hv.pool,
            source=cfg.image.source,
            format="qcow2",
            opts=pulumi.ResourceOptions(provider=provider),
        )
        places[hv.name] = Placement(hv, provider, base, net.id if net else None)
    etc_hosts = render("hosts.j2", **host_context(cfg, cfg.hosts[0]))
    vms: dict[str, VirtualMachine] = {}
    for host in cfg.hosts:
        ctx = host_context(cfg, host)
        firewall = render(
            "firewall/nftables.conf.j2" if cfg.image.os_family == "debian" else "firewall/firewalld.sh.j2",
            **ctx,
        )
        vms[host.name] = VirtualMachine(
            host.name,
            cfg,
            host,
            places[cfg.hypervisor_of(host).name],
            # Secret as a whole: it carries the guest's SSH host private key.
            user_data=pulumi.Output.secret(render(
                "cloud-init/user-data.yaml.j2",
                **ctx,
                etc_hosts=etc_hosts,
                firewall=firewall,
                ssh_user=cfg.ssh.user,
                ssh_public_key=public_key,
                host_key_private=cfg.ssh_host_keys[host.name].get_secret_value(),
                host_key_public=host_keys[host.name],
            )),
            meta_data=render("cloud-init/meta-data.yaml.j2", **ctx, instance_key=stack),
            network_config=render("cloud-init/network-config.yaml.j2", **ctx, mac=mac_for(host.ip)),
        )

    # The key each guest must answer with: installed at first boot by cloud-init, at a rotation
    # by its HostKey step (components/hostkey_step.py), which every other step on the host follows.
    host_key_steps = {
        h.name: HostKey(f"{h.name}-hostkey", cfg, h, cfg.ssh_host_keys[h.name], host_keys[h.name],
                        vms[h.name].domain)
        for h in cfg.hosts
    }
    conns = {
        h.name: connection(str(h.ip), cfg.ssh.user, cfg.ssh.port, private_key, host_keys[h.name])
        for h in cfg.hosts
    }
    prep = {
        h.name: RemoteStep(
            f"{h.name}-prep",
            conns[h.name],
            render("scripts/host-prep.sh.j2", **host_context(cfg, h)),
            depends_on=[vms[h.name].domain, host_key_steps[h.name].command],
        )
        for h in cfg.hosts
    }
    db_password = pulumi.Output.secret(cfg.db_password.get_secret_value())
    auth_pass = (
        pulumi.Output.secret(cfg.vrrp_auth_pass.get_secret_value()) if cfg.vrrp_auth_pass else None
    )
    migration = DatabaseMigration("db-migration", cfg, conns, depends_on=list(prep.values()))
    if migration.split:
        # Replicate mode: the shop takes orders on the source while its database moves. The web
        # tier comes up on the source (seeded, binary-logged, the app user there), then the move
        # (replicate, fence, verify, switch the source host's app inside the fence), then every
        # web node is switched to the target, then the tier check.
        source = str(cfg.host(cfg.database.source_host).ip)
        webs = [
            WebNode(f"{h.name}-web", cfg, h.name, conns[h.name], db_password,
                    depends_on=migration.source_ready, db_host=source, app_phase="before-move")
            for h in cfg.web_hosts
        ]
        # On the web nodes' steps, not the components: the switch (a later child of each
        # WebNode) comes after keepalived.
        ha = HaPair("ha", cfg, conns, auth_pass, host_keys, depends_on=[w.web_install for w in webs])
        moved = migration.move(depends_on=ha.last)
        switches = [w.switch(depends_on=moved) for w in webs]
        last = [*ha.last, *switches]
    else:
        webs = [
            WebNode(f"{h.name}-web", cfg, h.name, conns[h.name], db_password, depends_on=[migration])
            for h in cfg.web_hosts
        ]
        ha = HaPair("ha", cfg, conns, auth_pass, host_keys, depends_on=webs)
        switches = []
        last = ha.last
    steps = [*(s for w in webs for s in (w.app_config, w.web_install)), *switches,
             *ha.steps.values(), *ha.starts.values()]
    check = TierCheck(
        "tier-check", cfg, stack,
        step_digests=[s.digest for s in steps],
        secrets=[db_password, *([auth_pass] if auth_pass is not None else [])],
        domain_ids=[vm.domain.id for vm in vms.values()],
        host_keys=host_keys,
        depends_on=last,
    )

    outputs = stack_outputs(cfg, pulumi.get_project(), stack)
    # Public halves only: what known_hosts files are made of (components/hostkeys.py).
    outputs["sshHostKeys"] = host_keys
    for key, value in outputs.items():
        pulumi.export(key, value)
    return {"config": cfg, "outputs": outputs, "places": places, "vms": vms, "host_keys": host_key_steps,
            "prep": prep, "migration": migration, "webs": webs, "ha": ha,
            "check": check}
