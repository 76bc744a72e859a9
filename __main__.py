"""webha: a keepalived + nginx HA web tier and its database on libvirt. See README.md."""

from components.program import build

build()
