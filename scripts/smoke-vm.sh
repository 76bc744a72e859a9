#!/usr/bin/env bash
# Smoke test of the libvirt runtime + cached guest image: boot one real VM
# (TCG, direct kernel boot, NoCloud seed) on an isolated libvirt network, check
# cloud-init and the services over SSH, then remove everything it created.
#
# The VM is built the way the Pulumi program builds its VMs with pulumi-libvirt:
# base volume uploaded into the pool, qcow2 overlay on it, cloud-init ISO as a
# cdrom, domain type "qemu", kernel/initrd/cmdline, virtio disk and NIC, serial
# console.
#
# Environment:
#   WEBHA_SMOKE_PREFIX   network 3 octets (default 10.1.1; host gets .1, guest .11)
#   WEBHA_SMOKE_TIMEOUT  seconds to wait for SSH (default 400)
#   WEBHA_SMOKE_KEEP=1   leave the VM, network and volumes in place
#   WEBHA_IMAGE_DIR      use this image directory instead of running build-image.sh
#   WEBHA_SMOKE_CMDLINE_EXTRA  appended to the image's kernel cmdline (e.g. quiet)
#   WEBHA_POOL           storage pool (default webha, created by libvirt-up.sh)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
URI=qemu:///system
PREFIX=${WEBHA_SMOKE_PREFIX:-10.1.1}
TIMEOUT=${WEBHA_SMOKE_TIMEOUT:-400}
NAME=webha-smoke
NET=webha-smoke
BRIDGE=virbr-wsmoke
HOST_IP=$PREFIX.1
GUEST_IP=$PREFIX.11
MAC=52:54:00:1e:b0:11
BASE_VOL=$NAME-base.qcow2
DISK_VOL=$NAME-web01.qcow2
SEED_VOL=$NAME-seed.iso
WORK=/tmp/webha-smoke
KEY=$WORK/id_ed25519

T0=$(date +%s)
log() { printf '[smoke %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*"; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
die() { printf '[smoke] FAIL: %s\n' "$*" >&2; exit 1; }
v() { virsh -q -c "$URI" "$@"; }

cleanup() {
  local rc=$?
  if [ "${WEBHA_SMOKE_KEEP:-0}" = 1 ]; then
    log "WEBHA_SMOKE_KEEP=1: leaving domain $NAME, network $NET, volumes in pool $POOL"
    log "ssh: ssh -i $KEY root@$GUEST_IP"
    return "$rc"
  fi
  remove_all
  log "cleaned up (exit $rc)"
  return "$rc"
}

remove_all() {
  v destroy "$NAME" >/dev/null 2>&1 || true
  v undefine "$NAME" >/dev/null 2>&1 || true
  local vol
  for vol in "$DISK_VOL" "$SEED_VOL" "$BASE_VOL"; do
    v vol-delete --pool "$POOL" "$vol" >/dev/null 2>&1 || true
  done
  v net-destroy "$NET" >/dev/null 2>&1 || true
  v net-undefine "$NET" >/dev/null 2>&1 || true
}

# --- runtime and image ----------------------------------------------------------
POOL=$("$HERE/libvirt-up.sh" | tail -1)
IMG=${WEBHA_IMAGE_DIR:-$("$HERE/build-image.sh" | tail -1)}
for f in debian12.qcow2 vmlinuz initrd.img cmdline; do
  [ -r "$IMG/$f" ] || die "image dir $IMG lacks $f"
done
CMDLINE="$(cat "$IMG/cmdline")${WEBHA_SMOKE_CMDLINE_EXTRA:+ $WEBHA_SMOKE_CMDLINE_EXTRA}"
log "pool $POOL, image $IMG, cmdline: $CMDLINE"

# Leftovers of an interrupted run.
remove_all
trap cleanup EXIT
rm -rf "$WORK"; mkdir -p "$WORK/seed"

if ip -4 -o addr show | grep -q " $HOST_IP/"; then
  die "$HOST_IP is already on an interface (another webha network running?); set WEBHA_SMOKE_PREFIX"
fi

# --- isolated network (no <forward>: no NAT, no routing) ------------------------------
cat >"$WORK/net.xml" <<EOF
<network>
  <name>$NET</name>
  <bridge name='$BRIDGE' stp='on' delay='0'/>
  <ip address='$HOST_IP' netmask='255.255.255.0'/>
</network>
EOF
v net-define "$WORK/net.xml" >/dev/null
v net-start "$NET" >/dev/null
log "network $NET up: $BRIDGE $HOST_IP/24, isolated"

# --- ssh key and NoCloud seed ---------------------------------------------------------
ssh-keygen -q -t ed25519 -N '' -C webha-smoke -f "$KEY"
PUB=$(cat "$KEY.pub")
cat >"$WORK/seed/meta-data" <<EOF
instance-id: $NAME-web01
local-hostname: web01
EOF
cat >"$WORK/seed/user-data" <<EOF
#cloud-config
hostname: web01
fqdn: web01.itcast.cn
prefer_fqdn_over_hostname: false
manage_etc_hosts: true
disable_root: false
ssh_pwauth: false
ssh_authorized_keys:
  - $PUB
users:
  - default
EOF
cat >"$WORK/seed/network-config" <<EOF
version: 2
ethernets:
  eth0:
    match:
      macaddress: "$MAC"
    set-name: eth0
    addresses: [$GUEST_IP/24]
EOF
genisoimage -quiet -output "$WORK/seed.iso" -volid cidata -joliet -rock \
  "$WORK/seed/user-data" "$WORK/seed/meta-data" "$WORK/seed/network-config"

# --- volumes ------------------------------------------------------------------------------
T1=$(date +%s)
BASE_CAP=$(qemu-img info --output=json "$IMG/debian12.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])')
v vol-create-as "$POOL" "$BASE_VOL" "$BASE_CAP" --format qcow2 >/dev/null
v vol-upload --pool "$POOL" "$BASE_VOL" "$IMG/debian12.qcow2"
log "base volume uploaded in $(( $(date +%s) - T1 )) s"
v vol-create-as "$POOL" "$DISK_VOL" 8G --format qcow2 \
  --backing-vol "$BASE_VOL" --backing-vol-format qcow2 >/dev/null
v vol-create-as "$POOL" "$SEED_VOL" "$(stat -c %s "$WORK/seed.iso")" --format raw >/dev/null
v vol-upload --pool "$POOL" "$SEED_VOL" "$WORK/seed.iso"
DISK_PATH=$(v vol-path --pool "$POOL" "$DISK_VOL")
SEED_PATH=$(v vol-path --pool "$POOL" "$SEED_VOL")
log "overlay $DISK_PATH (8G on $BASE_VOL), seed $SEED_PATH"

# --- domain ---------------------------------------------------------------------------------
SERIAL_LOG=/var/log/libvirt/qemu/$NAME-serial.log
cat >"$WORK/domain.xml" <<EOF
<domain type='qemu'>
  <name>$NAME</name>
  <memory unit='MiB'>1024</memory>
  <vcpu>1</vcpu>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$IMG/vmlinuz</kernel>
    <initrd>$IMG/initrd.img</initrd>
    <cmdline>$CMDLINE</cmdline>
  </os>
  <features><acpi/><apic/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$DISK_PATH'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='$SEED_PATH'/>
      <target dev='hdd' bus='ide'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <source network='$NET'/>
      <mac address='$MAC'/>
      <model type='virtio'/>
    </interface>
    <serial type='pty'>
      <log file='$SERIAL_LOG' append='off'/>
      <target port='0'/>
    </serial>
    <console type='pty'>
      <target type='serial' port='0'/>
    </console>
  </devices>
</domain>
EOF
T1=$(now)
v define "$WORK/domain.xml" >/dev/null
log "domain defined in $(since "$T1") s"
T1=$(now)
v start "$NAME" >/dev/null
log "domain started in $(since "$T1") s"
T3=$(now)

# --- wait for SSH -------------------------------------------------------------------------
SSH=(ssh -i "$KEY" -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null
     -o LogLevel=ERROR -o ConnectTimeout=3)
until "${SSH[@]}" "root@$GUEST_IP" true 2>/dev/null; do
  if [ "$(since "$T3" | cut -d. -f1)" -gt "$TIMEOUT" ]; then
    echo "--- last 40 lines of $SERIAL_LOG" >&2
    tail -40 "$SERIAL_LOG" >&2 || true
    die "no SSH on root@$GUEST_IP after ${TIMEOUT}s"
  fi
  sleep 1
done
BOOT=$(since "$T3")
log "SSH answers on $GUEST_IP $BOOT s after start"

# --- checks -----------------------------------------------------------------------------------
fails=0
check() { # check DESCRIPTION EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then
    log "ok   $1: $3"
  else
    log "FAIL $1: expected '$2', got '$3'"; fails=$((fails + 1))
  fi
}
g() { "${SSH[@]}" "root@$GUEST_IP" "$@"; }

g cloud-init status --wait >/dev/null 2>&1 || true
log "cloud-init finished $(since "$T3") s after start"
check "cloud-init status" "status: done" "$(g cloud-init status | head -1)"
check "cloud-init errors" "[]" "$(g "python3 -c 'import json; print(json.load(open(\"/run/cloud-init/result.json\"))[\"v1\"][\"errors\"])'")"
log "cloud-init.log WARNING lines: $(g "grep -c WARNING /var/log/cloud-init.log || true")"
check "hostname" "web01" "$(g hostname)"
check "fqdn" "web01.itcast.cn" "$(g hostname -f)"
check "eth0 address" "$GUEST_IP/24" "$(g "ip -4 -o addr show dev eth0 | awk '{print \$4}'")"
check "ping host" "ok" "$(g "ping -c1 -W2 $HOST_IP >/dev/null && echo ok || echo no")"
for s in ssh nginx mariadb php8.2-fpm; do
  check "$s active" "active" "$(g systemctl is-active "$s" || true)"
done
check "keepalived enabled" "disabled" "$(g systemctl is-enabled keepalived || true)"
check "keepalived active" "inactive" "$(g systemctl is-active keepalived || true)"
check "networkd active" "inactive" "$(g systemctl is-active systemd-networkd || true)"
check "system state" "running" "$(g systemctl is-system-running || true)"
check "failed units" "" "$(g systemctl list-units --failed --plain --no-legend | awk '{print $1}' | tr '\n' ' ' | sed 's/ $//')"
check "mariadb query" "1" "$(g "mysql -N -e 'select 1'")"
check "debian user key" "ok" "$("${SSH[@]}" "debian@$GUEST_IP" 'sudo -n true && echo ok' 2>&1 || true)"
check "nginx from host" "200" "$(curl -s -o /dev/null -w '%{http_code}' "http://$GUEST_IP/" || true)"
check "ssh host keys" "ecdsa ed25519" "$(g 'ls /etc/ssh/ | sed -n "s/^ssh_host_\(.*\)_key\$/\1/p" | sort | tr "\n" " " | sed "s/ \$//"')"
log "versions: $(g "dpkg-query -W -f '\${Package} \${Version}, ' linux-image-amd64 cloud-init keepalived nginx-light mariadb-server php8.2-fpm openssh-server | sed 's/, \$//'")"
log "root fs: $(g "df -h / | awk 'NR==2 {print \$2\" size, \"\$3\" used\"}'")"
log "systemd-analyze: $(g systemd-analyze | head -1)"
g systemd-analyze blame 2>/dev/null | head -8 | sed 's/^/[smoke]      /'

if [ "$fails" -ne 0 ]; then
  die "$fails check(s) failed (boot-to-SSH $BOOT s)"
fi
log "PASS: boot-to-SSH $BOOT s"
