import pulumi
import pulumi_libvirt as libvirt

net = libvirt.Network("smoke", mode="nat", addresses=["10.254.254.0/24"], autostart=False)
pulumi.export("name", net.name)
