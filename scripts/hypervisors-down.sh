#!/usr/bin/env bash
# Remove this machine's extra hypervisors (what scripts/hypervisors-up.sh made; idempotent):
# each one's libvirtd, virtlockd and virtlogd, its network namespace (its bridge and the veth to
# the LAN go with it), its runtime directory and CPU cgroup; then the host's `webha-lan` bridge
# once no hypervisor is on it. Its state directory (/var/lib/webha-hv/NAME: libvirt's config,
# logs, the pool directory) stays unless --purge.
#
#   scripts/hypervisors-down.sh            # every hypervisor found (webha-hv1..9)
#   WEBHA_HYPERVISORS="hv2" scripts/hypervisors-down.sh
#   scripts/hypervisors-down.sh --force    # also SIGKILL guests still running (their stack's
#                                          # state then still lists them: destroy the stack first)
#   scripts/hypervisors-down.sh --purge    # also remove /var/lib/webha-hv/NAME
#
# A hypervisor that still runs guests is refused without --force: destroy the stack first
# (WEBHA_STACK=twohv scripts/destroy-local.sh). Ends with a check that nothing is left.
set -euo pipefail
LAN=webha-lan
STATE=${WEBHA_HV_STATE:-/var/lib/webha-hv}
FORCE=0 PURGE=0
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    --purge) PURGE=1 ;;
    *) printf '[hypervisors-down] ERROR: unknown argument %s (--force, --purge)\n' "$arg" >&2; exit 2 ;;
  esac
done

log() { printf '[hypervisors-down] %s\n' "$*" >&2; }
die() { printf '[hypervisors-down] ERROR: %s\n' "$*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root"

if [ -n "${WEBHA_HYPERVISORS:-}" ]; then
  HVS=$WEBHA_HYPERVISORS
else
  # Whatever is left of any of them: a namespace, a runtime directory, a LAN link, a cgroup.
  HVS=$( { ip netns list | awk '{print $1}' | sed -n 's/^webha-\(hv[1-9]\)$/\1/p'
           for d in /run/webha-hv[1-9] /sys/fs/cgroup/cpu/webha-hv[1-9] /sys/fs/cgroup/webha-hv[1-9]; do
             [ -e "$d" ] && basename "$d" | sed 's/^webha-//'
           done
           ip -o link show | sed -n 's/^[0-9]*: webha-\(hv[1-9]\)-lan[@:].*/\1/p'; } | sort -u | tr '\n' ' ')
fi

# alive PID COMM: PID is a live process named COMM (a pid file may name a recycled PID).
alive() { [ -n "$1" ] && [ "$(cat "/proc/$1/comm" 2>/dev/null)" = "$2" ]; }

# gone_within PID COMM TENTHS: waits up to TENTHS x 0.1 s for it to exit; fails if it is still there.
gone_within() {
  local _
  for _ in $(seq 1 "$3"); do
    alive "$1" "$2" || return 0
    sleep 0.1
  done
  ! alive "$1" "$2"
}

# stop PID COMM: SIGTERM, up to 15 s, then SIGKILL; fails if it is still there.
stop() {
  local pid=$1 comm=$2
  alive "$pid" "$comm" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  gone_within "$pid" "$comm" 150 && return 0
  log "$comm ($pid) still running after 15 s: SIGKILL"
  kill -KILL "$pid" 2>/dev/null || true
  gone_within "$pid" "$comm" 50 || die "$comm ($pid) does not exit"
}

# has_netns NAME: the network namespace exists.
has_netns() { ip netns list | awk '{print $1}' | grep -x "$1" >/dev/null; }

for hv in $HVS; do
  [[ $hv =~ ^hv[1-9]$ ]] || die "hypervisor name $hv: expected hv1-hv9"
  ns=webha-$hv link=webha-$hv-lan run=/run/webha-$hv
  if has_netns "$ns"; then
    guests=()
    for pid in $(ip netns pids "$ns"); do
      case "$(cat "/proc/$pid/comm" 2>/dev/null)" in qemu-system*) guests+=("$pid") ;; esac
    done
    if [ "${#guests[@]}" -gt 0 ]; then
      [ "$FORCE" = 1 ] || die "$hv still runs guests (QEMU PIDs ${guests[*]}): destroy their stack first (WEBHA_STACK=twohv scripts/destroy-local.sh), or --force"
      log "$hv: SIGKILL to guests ${guests[*]} (--force)"
      kill -KILL "${guests[@]}" 2>/dev/null || true
    fi
  fi
  for d in libvirtd virtlockd virtlogd; do
    pid=$(cat "$run/$d.pid" 2>/dev/null || true)
    if alive "$pid" "$d"; then
      log "$hv: stopping $d ($pid)"
      stop "$pid" "$d"
    fi
  done
  if has_netns "$ns"; then
    # Nothing else may live there: anything left is not ours to kill, so say what it is.
    left=""
    for pid in $(ip netns pids "$ns"); do
      [ -e "/proc/$pid" ] && left="$left $pid($(cat "/proc/$pid/comm" 2>/dev/null))"
    done
    [ -z "$left" ] || die "$hv: processes left in $ns:$left"
    log "$hv: deleting netns $ns (its bridge and lan0 go with it)"
    ip netns del "$ns"
  fi
  if ip link show "$link" >/dev/null 2>&1; then
    ip link del "$link"
  fi
  rm -rf "$run"
  for g in /sys/fs/cgroup/cpu/webha-$hv /sys/fs/cgroup/webha-$hv; do
    # cgroup directories go with rmdir, children first (libvirt's machine groups below it).
    if [ -d "$g" ]; then
      find "$g" -depth -type d -exec rmdir {} \; 2>/dev/null || true
      [ ! -d "$g" ] || die "$hv: cannot remove CPU cgroup $g (processes: $(tr '\n' ' ' < "$g/cgroup.procs"))"
    fi
  done
  if [ "$PURGE" = 1 ] && [ -d "$STATE/$hv" ]; then
    log "$hv: removing $STATE/$hv (--purge)"
    rm -rf "${STATE:?}/$hv"
  fi
  log "$hv: down"
done

if ip link show "$LAN" >/dev/null 2>&1; then
  ports=$(ip -o link show master "$LAN" | awk -F': ' '{print $2}' | sed 's/@.*//' | tr '\n' ' ')
  if [ -z "${ports// /}" ]; then
    log "deleting LAN bridge $LAN"
    ip link del "$LAN"
  else
    log "LAN bridge $LAN kept: still has ports $ports"
  fi
fi

# Post-condition: nothing of these hypervisors is left.
for hv in $HVS; do
  ! has_netns "webha-$hv" || die "$hv: netns webha-$hv still exists"
  ! ip link show "webha-$hv-lan" >/dev/null 2>&1 || die "$hv: link webha-$hv-lan still exists"
  [ ! -e "/run/webha-$hv" ] || die "$hv: /run/webha-$hv still exists"
  for g in "/sys/fs/cgroup/cpu/webha-$hv" "/sys/fs/cgroup/webha-$hv"; do
    [ ! -d "$g" ] || die "$hv: its CPU cgroup $g still exists"
  done
done
log "down: ${HVS:-nothing to remove}"
