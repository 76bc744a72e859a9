#!/usr/bin/env bash
# Two more hypervisors on this machine, for the `twohv` stack (idempotent):
#
#   host netns                       netns webha-hv1                netns webha-hv2
#   webha-lan (bridge, 10.1.2.1/24)  webha-br (bridge, 10.1.2.251)  webha-br (bridge, 10.1.2.252)
#     ├─ webha-hv1-lan ─── veth ───── lan0 ┘ + hv1's guests' taps      │
#     └─ webha-hv2-lan ─── veth ─────────────────────────────── lan0 ─┘ + hv2's guests' taps
#
# Each hypervisor is a libvirtd of its own (scripts/hypervisor-daemons.sh): own network
# namespace, own /etc/libvirt, /var/lib/libvirt, /var/cache/libvirt, /var/log/libvirt (under
# /var/lib/webha-hv/NAME) and /run/libvirt (/run/webha-NAME/libvirt), reached only through its
# socket, exactly like a remote one: qemu+unix:///system?socket=/run/webha-NAME/libvirt/libvirt-sock.
# The host's `webha-lan` bridge plays the LAN (and the router the guests' gateway would be);
# pulling `webha-NAME-lan` down cuts that hypervisor off. The main libvirtd (the `local` stack)
# is not touched.
#
# CPU: real hypervisors do not share CPUs; these share this machine's. Each one's daemons (and so
# its guests' QEMU processes, which libvirt places below its daemon's own cgroup) run in a CPU
# cgroup of its own, webha-NAME, all with the same weight: when hv1 boots two guests at once they
# share hv1's half of the machine and web02 on hv2 keeps the other half, as on two hosts. The
# groups are work-conserving: an idle hypervisor's share goes to the busy one. Each weighs as much
# as four of this machine's own processes (pulumi, the drill, ssh): the tools that drive the
# hosts do not take the other hosts' CPU either.
#
#   scripts/hypervisors-up.sh            # hv1 and hv2
#   WEBHA_HYPERVISORS="hv1 hv2 hv3" ...  # more (each one more veth on the LAN)
# Prints one `NAME URI` line per hypervisor on stdout. scripts/hypervisors-down.sh removes it all.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
HVS=${WEBHA_HYPERVISORS:-hv1 hv2}
LAN=webha-lan
LAN_ADDR=${WEBHA_LAN_ADDR:-10.1.2.1/24}
STATE=${WEBHA_HV_STATE:-/var/lib/webha-hv}
WAIT=${WEBHA_LIBVIRT_WAIT:-60}

log() { printf '[hypervisors-up] %s\n' "$*" >&2; }
die() { printf '[hypervisors-up] ERROR: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, bridges, libvirtd)"
"$ROOT/scripts/libvirt-up.sh" >/dev/null   # the main runtime: the /dev/kvm stand-in, virsh

uri_of() { printf 'qemu+unix:///system?socket=/run/webha-%s/libvirt/libvirt-sock' "$1"; }
answering() { timeout 10 virsh -c "$(uri_of "$1")" list >/dev/null 2>&1; }

# cpu_group NAME: make the hypervisor's CPU cgroup (same weight for every hypervisor); prints the
# cgroup.procs file to put its processes in. cgroup v1 `cpu` hierarchy, else v2 with `cpu`.
cpu_group() {
  local g
  if [ -f /sys/fs/cgroup/cpu/cpu.shares ]; then
    g=/sys/fs/cgroup/cpu/webha-$1
    [ -d "$g" ] || mkdir "$g"
    echo 4096 > "$g/cpu.shares"     # a process of nice 0 weighs 1024
  elif grep -qw cpu /sys/fs/cgroup/cgroup.controllers 2>/dev/null; then
    grep -qw cpu /sys/fs/cgroup/cgroup.subtree_control || echo +cpu > /sys/fs/cgroup/cgroup.subtree_control
    g=/sys/fs/cgroup/webha-$1
    [ -d "$g" ] || mkdir "$g"
    echo 400 > "$g/cpu.weight"      # a process of nice 0 weighs 100
  else
    die "no CPU cgroup controller (neither /sys/fs/cgroup/cpu/cpu.shares nor cpu in /sys/fs/cgroup/cgroup.controllers): the hypervisors would share CPUs as no two real hosts do"
  fi
  printf '%s/cgroup.procs\n' "$g"
}
# in_cpu_group PID NAME: the process sits in webha-NAME or below it (libvirt puts each guest in a
# machine cgroup under its daemon's) in the CPU hierarchy that cpu_group used.
in_cpu_group() {
  awk -F: -v g="/webha-$2" '($2 ~ /(^|,)cpu(,|$)/ || ($1 == "0" && $2 == "")) &&
    ($3 == g || index($3, g "/") == 1) { found = 1 } END { exit !found }' "/proc/$1/cgroup" 2>/dev/null
}

if ! ip link show "$LAN" >/dev/null 2>&1; then
  log "creating LAN bridge $LAN ($LAN_ADDR)"
  ip link add "$LAN" type bridge
  ip addr add "$LAN_ADDR" dev "$LAN"
fi
ip link set "$LAN" up

for hv in $HVS; do
  [[ $hv =~ ^hv[1-9]$ ]] || die "hypervisor name $hv: expected hv1-hv9 (interface names are at most 15 bytes)"
  ns=webha-$hv link=webha-$hv-lan run=/run/webha-$hv dir=$STATE/$hv
  # Output captured before grep: `cmd | grep -q` under pipefail fails when grep's early exit
  # SIGPIPEs cmd (seen: "Address already assigned" from the address step in a drill's recovery).
  nslist=$(ip netns list)
  grep -qx "$ns\( .*\)\?" <<<"$nslist" || { log "netns $ns"; ip netns add "$ns"; }
  ip -n "$ns" link set lo up
  if ! ip link show "$link" >/dev/null 2>&1; then
    log "veth $link <-> $ns:lan0"
    ip -n "$ns" link del lan0 2>/dev/null || true
    ip link add "$link" type veth peer name lan0 netns "$ns"
  fi
  ip link set "$link" master "$LAN" up
  ip -n "$ns" link show webha-br >/dev/null 2>&1 || ip -n "$ns" link add webha-br type bridge
  ip -n "$ns" link set lan0 master webha-br up
  ip -n "$ns" link set webha-br up
  # The hypervisor's own address on the LAN, as a real one has (10.1.2.25N: keep guests and VIPs
  # off .251-.259). Without any address QEMU cannot even open its SPICE socket on 127.0.0.1
  # (getaddrinfo with AI_ADDRCONFIG: "Address family for hostname not supported").
  n=${hv#hv}
  addr="${LAN_ADDR%.*/*}.$((250 + n))/${LAN_ADDR#*/}"
  addrs=$(ip -n "$ns" addr show dev webha-br)
  grep -q "inet ${addr%/*}/" <<<"$addrs" || ip -n "$ns" addr add "$addr" dev webha-br
  procs=$(cpu_group "$hv")
  if answering "$hv"; then
    log "$hv: libvirtd already answering"
  else
    log "$hv: starting virtlogd, virtlockd, libvirtd in $ns (state $dir)"
    install -d -m 0755 "$dir" "$dir/etc" "$dir/lib" "$dir/lib/images" "$dir/cache" "$dir/log"
    install -d -m 0755 "$dir/etc/qemu" "$dir/etc/storage" "$dir/log/qemu"
    install -d -m 0755 "$run" "$run/libvirt"
    # The packaged configuration files; no domains, networks, pools or secrets of the main one.
    for f in /etc/libvirt/*.conf; do cp -f "$f" "$dir/etc/"; done
    # Into the CPU group first (`ip netns exec` mounts a /sys of its own, without the cgroups).
    (echo "$BASHPID" > "$procs" && exec ip netns exec "$ns" unshare -m "$ROOT/scripts/hypervisor-daemons.sh" "$dir" "$run")
    i=0
    until answering "$hv"; do
      i=$((i + 1))
      [ "$i" -le "$WAIT" ] || die "$hv: libvirtd does not answer on $(uri_of "$hv") after ${WAIT}s (see $dir/log/)"
      sleep 1
    done
    log "$hv: answering after ~${i}s"
  fi
  # Post-condition: every process of the hypervisor (daemons, guests) is in its CPU group.
  for pid in $(ip netns pids "$ns"); do
    [ -e "/proc/$pid" ] || continue
    in_cpu_group "$pid" "$hv" || die "$hv: process $pid ($(cat "/proc/$pid/comm" 2>/dev/null)) of $ns is not in its CPU group ${procs%/*} (started before the groups existed? scripts/hypervisors-down.sh, then this again)"
  done
  # The pool directory sits outside the bind-mounted trees: the same path in both views.
  WEBHA_LIBVIRT_URI=$(uri_of "$hv") WEBHA_POOL_DIR=$dir/pool "$ROOT/scripts/libvirt-up.sh" >/dev/null
  printf '%s %s\n' "$hv" "$(uri_of "$hv")"
done
