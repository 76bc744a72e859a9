"""One guest: a copy-on-write disk over the shared base image, a cloud-init seed, a domain.

The MAC address is derived from the IP so the cloud-init network config can match the NIC by MAC
before the guest is created (no race with libvirt's random MACs, stable across re-creates).
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Optional

import pulumi
import pulumi_libvirt as libvirt

from .config import HostConfig, Hypervisor, StackConfig


@dataclass(frozen=True)
class Placement:
    """Where a guest goes: its hypervisor, that host's provider and base image, and the libvirt
    network to join (None with network mode bridge: the NIC joins ``hypervisor.bridge``)."""

    hypervisor: Hypervisor
    provider: libvirt.Provider
    base_volume: libvirt.Volume
    network_id: Optional[pulumi.Input[str]]

    def interface(self, host: HostConfig) -> libvirt.DomainNetworkInterfaceArgs:
        where = ({"bridge": self.hypervisor.bridge} if self.network_id is None
                 else {"network_id": self.network_id})
        return libvirt.DomainNetworkInterfaceArgs(
            **where, mac=mac_for(host.ip), hostname=host.name, wait_for_lease=False)


def mac_for(ip: ipaddress.IPv4Address) -> str:
    """52:54:00 (QEMU's prefix) + the last three octets of the IP."""
    o = ip.packed
    return f"52:54:00:{o[1]:02x}:{o[2]:02x}:{o[3]:02x}"


def kernel_cmdline(cmdline: str) -> list[dict[str, str]]:
    """The kernel cmdline in exactly the shape the libvirt provider reads back, so that a no-op
    ``pulumi up`` sees no diff (any other shape replaces every domain on every up).

    terraform-provider-libvirt 0.8 writes the arguments *sorted* and reads them back as maps of
    ``key=value`` (a new map when a key repeats), then one ``{"_": "bare words"}`` map. Sorting
    is the provider's doing, not ours: argument order is not kept either way.
    """
    maps: list[dict[str, str]] = []
    current: dict[str, str] = {}
    bare: list[str] = []
    for word in sorted(cmdline.split()):
        key, sep, value = word.partition("=")
        if not sep:
            bare.append(word)
            continue
        if key in current:
            maps.append(current)
            current = {}
        current[key] = value
    if current:
        maps.append(current)
    if bare:
        maps.append({"_": " ".join(bare)})
    return maps


class VirtualMachine(pulumi.ComponentResource):
    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        host: HostConfig,
        place: Placement,
        user_data: pulumi.Input[str],
        meta_data: str,
        network_config: str,
        opts: Optional[pulumi.ResourceOptions] = None,
    ):
        super().__init__("webha:index:VirtualMachine", name, None, opts)
        child = pulumi.ResourceOptions(parent=self, provider=place.provider)
        pool = place.hypervisor.pool
        prefix = cfg.network.name
        self.disk = libvirt.Volume(
            f"{name}-disk",
            name=f"{prefix}-{host.name}.qcow2",
            pool=pool,
            base_volume_id=place.base_volume.id,
            format="qcow2",
            size=cfg.image.disk_size_gib * 1024**3,
            opts=child,
        )
        self.seed = libvirt.CloudInitDisk(
            f"{name}-seed",
            name=f"{prefix}-{host.name}-seed.iso",
            pool=pool,
            user_data=user_data,
            meta_data=meta_data,
            network_config=network_config,
            # Same ISO name: the old one goes first. The domain is updated in place (the
            # provider swaps the CD-ROM): a changed seed never replaces a guest.
            opts=pulumi.ResourceOptions.merge(child, pulumi.ResourceOptions(delete_before_replace=True)),
        )
        img = cfg.image
        self.domain = libvirt.Domain(
            f"{name}-domain",
            name=f"{prefix}-{host.name}",
            type=cfg.libvirt.domain_type,
            memory=host.memory,
            vcpu=host.vcpus,
            kernel=img.kernel,
            initrd=img.initrd,
            cmdlines=kernel_cmdline(img.cmdline) if img.cmdline else None,
            cloudinit=self.seed.id,
            disks=[libvirt.DomainDiskArgs(volume_id=self.disk.id)],
            network_interfaces=[place.interface(host)],
            consoles=[
                libvirt.DomainConsoleArgs(type="pty", target_port="0", target_type="serial")
            ],
            autostart=False,
            running=True,
            opts=child,
        )
        self.ip = str(host.ip)
        self.register_outputs({"ip": self.ip, "domain": self.domain.name})
