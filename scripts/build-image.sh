#!/usr/bin/env bash
# Build (or reuse from cache) the Debian 12 guest image for the webha VMs.
#
# Output: ${WEBHA_CACHE:-$HOME/.cache/webha}/images/<key>/
#           debian12.qcow2  ext4 filesystem on the whole disk (no partition table)
#           vmlinuz         kernel for direct kernel boot
#           initrd.img      matching initramfs
#           cmdline         kernel command line (root=/dev/vda ...)
#         ${WEBHA_CACHE:-$HOME/.cache/webha}/images/current -> <key>
#
# Progress goes to stderr; the image directory is printed on stdout.
#
# <key> is a hash of this script, the package list, the disk size and the apt
# sources, so editing any of them builds a new image; otherwise the cached one
# is reused.  Only the apt mirrors the host already uses are contacted.
#
# Environment:
#   WEBHA_CACHE            cache root (default $HOME/.cache/webha)
#   WEBHA_IMAGE_SIZE       ext4 size (default 4G; the disk grows with the volume)
#   WEBHA_MIRROR           Debian mirror URI (default: the host's bookworm mirror)
#   WEBHA_SECURITY_MIRROR  security mirror URI (default: the host's, if any)
#   WEBHA_FORCE=1          rebuild even if cached
#   WEBHA_BUILD_TMPFS=0    build on disk even if >8 GiB RAM is available
set -euo pipefail

# The whole script is one function, parsed before it runs, so editing the file
# while a build is in progress cannot change what the running build executes.
main() {
SUITE=bookworm
PACKAGES=(
  linux-image-amd64 systemd-sysv udev dbus
  openssh-server cloud-init python3 ifupdown isc-dhcp-client
  sudo rsync locales
  keepalived nginx-light php-fpm php-mysql mariadb-server mariadb-client
  nftables iproute2 iputils-ping curl procps less ca-certificates
  prometheus-node-exporter
)
IMAGE_SIZE=${WEBHA_IMAGE_SIZE:-4G}
CMDLINE="root=/dev/vda rw console=ttyS0 net.ifnames=0"
CACHE=${WEBHA_CACHE:-$HOME/.cache/webha}
IMAGES="$CACHE/images"

T0=$(date +%s)
log() { printf '[build-image %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { printf '[build-image] ERROR: %s\n' "$*" >&2; exit 1; }

# Never rm -rf through a mount mmdebstrap left in the rootfs (proc, sys, dev/pts).
cleanup_work() {
  [ -n "${WORK:-}" ] && [ -d "$WORK" ] || return 0
  awk -v w="$WORK/" 'index($2, w) == 1 { print $2 }' /proc/mounts | sort -r |
    while read -r m; do umount -l "$m" || true; done
  if awk -v w="$WORK/" 'index($2, w) == 1 { found = 1 } END { exit !found }' /proc/mounts; then
    log "mounts remain under $WORK; not removing it"
    return 0
  fi
  if mountpoint -q "$WORK"; then
    umount "$WORK" || { log "cannot unmount $WORK; not removing it"; return 0; }
  fi
  rm -rf "$WORK"
}

# --- apt sources of the host -------------------------------------------------
# Print "URI SUITE" for every enabled deb line/stanza of the host's apt sources.
host_sources() {
  local f
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -r "$f" ] || continue
    awk '$1 == "deb" {
           i = 2
           if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
           print $i, $(i + 1)
         }' "$f"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] || continue
    awk 'function flush(   u, s, nu, ns, a, b) {
           if (types ~ /(^| )deb( |$)/ && enabled != "no") {
             nu = split(uris, a, " "); ns = split(suites, b, " ")
             for (u = 1; u <= nu; u++) for (s = 1; s <= ns; s++) print a[u], b[s]
           }
           types = ""; uris = ""; suites = ""; enabled = ""
         }
         /^[[:space:]]*$/ { flush(); next }
         /^#/ { next }
         tolower($1) == "types:"   { $1 = ""; types = $0 }
         tolower($1) == "uris:"    { $1 = ""; uris = $0 }
         tolower($1) == "suites:"  { $1 = ""; suites = $0 }
         tolower($1) == "enabled:" { enabled = tolower($2) }
         END { flush() }' "$f"
  done
}

SOURCES=$(host_sources)
MIRROR=${WEBHA_MIRROR:-$(awk -v s="$SUITE" '$2 == s { print $1; exit }' <<<"$SOURCES")}
SECURITY=${WEBHA_SECURITY_MIRROR:-$(awk -v s="$SUITE-security" '$2 == s { print $1; exit }' <<<"$SOURCES")}
[ -n "$MIRROR" ] || die "no '$SUITE' mirror found in /etc/apt/sources.list*; set WEBHA_MIRROR"
MIRROR=${MIRROR%/}
SECURITY=${SECURITY%/}

APT_LINES=("deb $MIRROR $SUITE main" "deb $MIRROR $SUITE-updates main")
[ -n "$SECURITY" ] && APT_LINES+=("deb $SECURITY $SUITE-security main")

# --- cache key -----------------------------------------------------------------
KEY=$(
  {
    cat "${BASH_SOURCE[0]}"
    printf '%s\n' "${PACKAGES[@]}" "$IMAGE_SIZE" "$CMDLINE" "${APT_LINES[@]}"
  } | sha256sum | cut -c1-16
)
OUT="$IMAGES/$KEY"

publish() {
  ln -sfn "$KEY" "$IMAGES/current"
  # QEMU runs as libvirt-qemu: every directory on the way must be searchable
  # and the files readable.
  local d=$OUT
  while [ "$d" != / ]; do chmod o+x "$d"; d=$(dirname "$d"); done
  chmod o+r "$OUT"/*
}

if [ "${WEBHA_FORCE:-0}" != 1 ] && [ -f "$OUT/.complete" ]; then
  publish
  log "cached: $OUT ($(du -h "$OUT/debian12.qcow2" | cut -f1) qcow2)"
  echo "$OUT"
  exit 0
fi

for cmd in mmdebstrap mkfs.ext4 qemu-img; do
  command -v "$cmd" >/dev/null || die "$cmd not found (apt-get install mmdebstrap e2fsprogs qemu-utils)"
done
[ "$(id -u)" = 0 ] || die "run as root (mmdebstrap root mode, file ownership in the image)"

log "key $KEY -> $OUT"
log "mirror: $MIRROR  security: ${SECURITY:-none}"
mkdir -p "$IMAGES"
WORK=$(mktemp -d "$IMAGES/.build-$KEY.XXXXXX")
trap cleanup_work EXIT
# Build in RAM when there is plenty: the 1.2 GB rootfs is written, read by
# mkfs.ext4 and deleted again, which is slow on a busy disk.
avail_kb=$(awk '/^MemAvailable:/ { print $2 }' /proc/meminfo)
if [ "${WEBHA_BUILD_TMPFS:-1}" != 0 ] && [ "${avail_kb:-0}" -gt $((8 * 1024 * 1024)) ]; then
  mount -t tmpfs -o size=7g,mode=0755 webha-build "$WORK"
  log "building in a tmpfs at $WORK"
fi
ROOTFS="$WORK/rootfs"

# --- bootstrap -------------------------------------------------------------------
# The customize hook runs inside the finished tree (before mmdebstrap removes
# its policy-rc.d), so nothing is started on the host.
CUSTOMIZE=$(cat <<'HOOK'
set -eu
R="$1"
# Boot-time traps: periodic jobs that cost time or hang on first boot.
for u in e2scrub_reap.service e2scrub_all.timer e2scrub_all.service \
         apt-daily.timer apt-daily-upgrade.timer apt-daily.service apt-daily-upgrade.service \
         man-db.timer man-db.service fstrim.timer \
         systemd-networkd.service systemd-networkd.socket systemd-networkd-wait-online.service; do
  ln -sfn /dev/null "$R/etc/systemd/system/$u"
done
# keepalived is configured and started by the Pulumi program.
chroot "$R" systemctl disable keepalived.service
chroot "$R" systemctl enable nginx.service mariadb.service php8.2-fpm.service ssh.service

# Host keys: unique per VM.  cloud-init's ssh module makes them; if it did not
# (cloud-init disabled or failed) this oneshot makes them before sshd starts
# (sshd refuses to start without any host key).
rm -f "$R"/etc/ssh/ssh_host_*
cat >"$R/etc/systemd/system/webha-ssh-hostkeys.service" <<'UNIT'
[Unit]
Description=Generate SSH host keys if there are none
After=cloud-init.service
Before=ssh.service
ConditionPathExistsGlob=!/etc/ssh/ssh_host_*_key

[Service]
Type=oneshot
ExecStart=/usr/bin/ssh-keygen -A

[Install]
WantedBy=multi-user.target
UNIT
chroot "$R" systemctl enable webha-ssh-hostkeys.service

# cloud-init: only look for a NoCloud seed (no metadata-server probing); no
# RSA/DSA host keys (RSA keygen alone costs ~10 s under TCG); no grub (direct
# kernel boot).
cat >"$R/etc/cloud/cloud.cfg.d/90-webha.cfg" <<'CFG'
datasource_list: [ NoCloud, None ]
ssh_genkeytypes: [ ed25519, ecdsa ]
grub_dpkg:
  enabled: false
CFG

# Locale: C.UTF-8 exists without generating anything; make it the default so
# cloud-init's locale module has nothing to do.
echo 'LANG=C.UTF-8' >"$R/etc/default/locale"

# Root fs is the whole disk (direct kernel boot, root=/dev/vda).
echo '/dev/vda / ext4 rw,errors=remount-ro 0 0' >"$R/etc/fstab"
printf 'auto lo\niface lo inet loopback\n\nsource /etc/network/interfaces.d/*\n' >"$R/etc/network/interfaces"
echo debian >"$R/etc/hostname"

# Each VM must get its own machine id on first boot.
: >"$R/etc/machine-id"
rm -f "$R/var/lib/dbus/machine-id"

# Keep the image small.
rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*
HOOK
)

log "mmdebstrap --variant=minbase $SUITE (${#PACKAGES[@]} extra packages)"
T1=$(date +%s)
INCLUDE=$(IFS=,; echo "${PACKAGES[*]}")
mmdebstrap --mode=root --variant=minbase --components=main \
  --aptopt='Acquire::Check-Valid-Until "false"' \
  --aptopt='Acquire::Languages "none"' \
  --include="$INCLUDE" \
  --customize-hook="$CUSTOMIZE" \
  "$SUITE" "$ROOTFS" "${APT_LINES[@]}" >"$WORK/mmdebstrap.log" 2>&1 \
  || { tail -40 "$WORK/mmdebstrap.log" >&2; die "mmdebstrap failed"; }
log "mmdebstrap done in $(( $(date +%s) - T1 )) s, rootfs $(du -sh "$ROOTFS" | cut -f1)"

# --- kernel, initrd, disk -----------------------------------------------------
mkdir -p "$WORK/out"
KERNEL=$(find "$ROOTFS/boot" -maxdepth 1 -name 'vmlinuz-*' | sort -V | tail -1)
[ -n "$KERNEL" ] || die "no kernel in rootfs/boot"
KVER=${KERNEL##*/vmlinuz-}
[ -f "$ROOTFS/boot/initrd.img-$KVER" ] || die "no initrd for $KVER"
cp "$KERNEL" "$WORK/out/vmlinuz"
cp "$ROOTFS/boot/initrd.img-$KVER" "$WORK/out/initrd.img"
echo "$CMDLINE" >"$WORK/out/cmdline"
log "kernel $KVER"

T1=$(date +%s)
mkfs.ext4 -q -F -L webha-root -d "$ROOTFS" "$WORK/disk.raw" "$IMAGE_SIZE" >&2
qemu-img convert -O qcow2 "$WORK/disk.raw" "$WORK/out/debian12.qcow2"
rm -f "$WORK/disk.raw"
log "disk: ext4 $IMAGE_SIZE -> qcow2 $(du -h "$WORK/out/debian12.qcow2" | cut -f1) in $(( $(date +%s) - T1 )) s"

{
  echo "key=$KEY"
  echo "built=$(date -u +%FT%TZ)"
  echo "kernel=$KVER"
  echo "size=$IMAGE_SIZE"
  printf 'apt=%s\n' "${APT_LINES[@]}"
  echo "packages=${PACKAGES[*]}"
} >"$WORK/out/manifest"
cp "$WORK/mmdebstrap.log" "$WORK/out/mmdebstrap.log"
touch "$WORK/out/.complete"

rm -rf "$OUT"
mv "$WORK/out" "$OUT"
publish
cleanup_work
log "built $OUT in $(( $(date +%s) - T0 )) s (qcow2 $(du -h "$OUT/debian12.qcow2" | cut -f1))"
echo "$OUT"
}

main "$@"
