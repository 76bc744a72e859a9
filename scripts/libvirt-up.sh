#!/usr/bin/env bash
# Bring up the local libvirt runtime (idempotent) on a machine without systemd
# as PID 1, and make sure the storage pool the Pulumi program uses exists.
#
#   - virtlogd, virtlockd, libvirtd started as daemons if not answering
#   - libvirtd runs in its own mount namespace with /dev/kvm hidden (a mode-000
#     copy of /dev/null bind-mounted over it) unless WEBHA_HIDE_KVM=0: the nested /dev/kvm here cannot run a
#     guest, and while libvirtd can see it every define re-probes QEMU (30-60 s).
#     Guests then use domain type "qemu" (TCG).
#   - dir pool ${WEBHA_POOL:-webha} at ${WEBHA_POOL_DIR:-/var/lib/libvirt/images/webha},
#     defined, autostarted and active.
#
# WEBHA_LIBVIRT_URI names another libvirtd (one of scripts/hypervisors-up.sh): only its pool is
# made; that script starts it.
# Prints the pool name on the last line of stdout.
set -euo pipefail

URI=${WEBHA_LIBVIRT_URI:-qemu:///system}
POOL=${WEBHA_POOL:-webha}
POOL_DIR=${WEBHA_POOL_DIR:-/var/lib/libvirt/images/webha}
HIDE_KVM=${WEBHA_HIDE_KVM:-1}
WAIT=${WEBHA_LIBVIRT_WAIT:-60}

log() { printf '[libvirt-up] %s\n' "$*" >&2; }
die() { printf '[libvirt-up] ERROR: %s\n' "$*" >&2; exit 1; }

answering() { timeout 10 virsh -c "$URI" list >/dev/null 2>&1; }

for cmd in virsh libvirtd virtlogd virtlockd; do
  command -v "$cmd" >/dev/null \
    || die "$cmd not found (apt-get install libvirt-daemon-system qemu-system-x86 qemu-utils)"
done

if answering; then
  log "libvirtd already answering on $URI"
elif [ "$URI" != qemu:///system ]; then
  die "$URI does not answer (scripts/hypervisors-up.sh starts the extra hypervisors)"
else
  [ "$(id -u)" = 0 ] || die "libvirtd is not running and starting it needs root"
  mkdir -p /run/libvirt /var/log/libvirt
  if pgrep -x virtlogd >/dev/null; then
    log "virtlogd already running"
  else
    log "starting virtlogd"; virtlogd -d
  fi
  if pgrep -x virtlockd >/dev/null; then
    log "virtlockd already running"
  else
    log "starting virtlockd"; virtlockd -d
  fi
  if pgrep -x libvirtd >/dev/null; then
    log "libvirtd process exists but does not answer yet; waiting"
  elif [ "$HIDE_KVM" != 0 ] && [ -e /dev/kvm ]; then
    # The stand-in must be inaccessible to the QEMU user: libvirt treats a
    # /dev/kvm that libvirt-qemu can open (e.g. /dev/null) as "KVM usable",
    # finds KVM missing in its cached QEMU capabilities and re-probes QEMU
    # on every define (~15-30 s each).  It must be a device node, not a
    # regular file: libvirt moves mounts under /dev into each domain's
    # private /dev, and that fails for a file ("Unable to move ... mount to
    # /dev/kvm: Invalid argument").  So: a copy of /dev/null with mode 000.
    log "starting libvirtd in a private mount namespace with /dev/kvm hidden"
    rm -f /run/webha-no-kvm
    mknod -m 000 /run/webha-no-kvm c 1 3
    unshare -m --propagation private \
      sh -c 'mount --bind /run/webha-no-kvm /dev/kvm && exec libvirtd -d'
  else
    log "starting libvirtd"
    libvirtd -d
  fi
  log "waiting up to ${WAIT}s for $URI"
  i=0
  until answering; do
    i=$((i + 1))
    [ "$i" -le "$WAIT" ] || die "libvirtd does not answer on $URI after ${WAIT}s (see /var/log/libvirt/)"
    sleep 1
  done
  log "libvirtd answering after ~${i}s"
fi

# --- storage pool ------------------------------------------------------------------
if ! virsh -c "$URI" pool-info "$POOL" >/dev/null 2>&1; then
  log "defining dir pool $POOL at $POOL_DIR"
  virsh -c "$URI" pool-define-as "$POOL" dir --target "$POOL_DIR" >/dev/null
fi
target=$(virsh -c "$URI" pool-dumpxml "$POOL" | sed -n 's:.*<path>\(.*\)</path>.*:\1:p' | head -1)
mkdir -p "$target"
chmod 711 "$target"
if [ "$(virsh -c "$URI" pool-info "$POOL" | awk '/^State:/ { print $2 }')" != running ]; then
  log "starting pool $POOL"
  virsh -c "$URI" pool-start "$POOL" >/dev/null
fi
virsh -c "$URI" pool-autostart "$POOL" >/dev/null
virsh -c "$URI" pool-refresh "$POOL" >/dev/null
log "pool $POOL active at $target"
echo "$POOL"
