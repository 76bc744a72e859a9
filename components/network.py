"""The libvirt network the tier lives on.

Isolated mode (libvirt ``mode = "none"``: no forward, no NAT) is the default: the host still gets
the gateway address on the bridge and reaches the guests, and nothing leaves the machine. DHCP is
off because every guest has a static address from cloud-init.
"""

from __future__ import annotations

from typing import Optional

import pulumi
import pulumi_libvirt as libvirt

from .config import NetworkConfig


class Network(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        cfg: NetworkConfig,
        provider: libvirt.Provider,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("webha:index:Network", name, None, opts)
        self.network = libvirt.Network(
            name,
            name=cfg.name,
            mode="none" if cfg.mode == "isolated" else "nat",
            domain=cfg.domain,
            addresses=[str(cfg.cidr)],
            autostart=True,
            dhcp=libvirt.NetworkDhcpArgs(enabled=False),
            dns=libvirt.NetworkDnsArgs(enabled=False),
            opts=pulumi.ResourceOptions(parent=self, provider=provider),
        )
        self.id = self.network.id
        self.register_outputs({"id": self.network.id, "name": cfg.name})
