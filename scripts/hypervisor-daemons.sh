#!/usr/bin/env bash
# Runs INSIDE one extra hypervisor's network namespace (started by scripts/hypervisors-up.sh
# through `ip netns exec NS unshare -m`): gives this mount namespace the hypervisor's own libvirt
# state, config and runtime directories, hides /dev/kvm as libvirt-up.sh does, then starts
# virtlogd, virtlockd and libvirtd with pid files of their own.
#   hypervisor-daemons.sh STATE_DIR RUN_DIR
set -euo pipefail
state=$1 run=$2
# Private mounts only: nothing here leaks into the host's (or the other hypervisor's) view.
mount --make-rprivate /
for d in etc:/etc/libvirt lib:/var/lib/libvirt cache:/var/cache/libvirt log:/var/log/libvirt; do
  mount --bind "$state/${d%%:*}" "${d#*:}"
done
mount --bind "$run/libvirt" /run/libvirt
if [ -e /dev/kvm ] && [ -e /run/webha-no-kvm ]; then
  mount --bind /run/webha-no-kvm /dev/kvm
fi
virtlogd -d -p "$run/virtlogd.pid"
virtlockd -d -p "$run/virtlockd.pid"
exec libvirtd -d -p "$run/libvirtd.pid"
