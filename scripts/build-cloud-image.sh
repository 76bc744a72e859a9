#!/usr/bin/env bash
# A cloud image made the way Debian's genericcloud image is: one disk with an MBR partition table,
# GRUB (BIOS) in the MBR and /boot/grub, the kernel and initramfs in /boot, cloud-init, and
# growpart (cloud-guest-utils), with which cloud-init's growpart + resizefs modules grow the root
# partition and filesystem to the volume's size at first boot. A stack boots it with no
# kernel/initrd of its own, as users boot a downloaded debian-12-genericcloud-amd64.qcow2.
#
# Built on the guest image of scripts/build-image.sh (its root filesystem: packages, first-boot
# fixes); this script adds the boot layer from Debian's packages (grub-pc-bin, grub2-common,
# cloud-guest-utils, installed with apt in a chroot from the image's own sources).
#
# Output: ${WEBHA_CACHE:-~/.cache/webha}/images/cloud-<key>/debian12-cloud.qcow2 (+ manifest);
# images/cloud-current points at the newest. Prints the directory. Cached by <key> (this script
# + the base image's key).
set -euo pipefail

main() {
# Its own mount namespace with private propagation: the image's mounts (and the /dev, /proc, /sys
# binds of the chroot) must not propagate to peer namespaces, where they would keep the
# filesystem mounted after our umount and leave it needing journal recovery in the image.
if [ -z "${WEBHA_CLOUD_IMAGE_NS:-}" ]; then
  exec env WEBHA_CLOUD_IMAGE_NS=1 unshare -m --propagation private "${BASH_SOURCE[0]}" "$@"
fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CACHE=${WEBHA_CACHE:-$HOME/.cache/webha}
IMAGES="$CACHE/images"
CMDLINE="console=tty0 console=ttyS0,115200 net.ifnames=0"
BOOT_PACKAGES=(grub-pc-bin grub2-common cloud-guest-utils)
T0=$(date +%s)
log() { printf '[build-cloud-image %4ss] %s\n' "$(( $(date +%s) - T0 ))" "$*" >&2; }
die() { printf '[build-cloud-image] ERROR: %s\n' "$*" >&2; exit 1; }

BASE=$("$ROOT/scripts/build-image.sh")
[ -f "$BASE/debian12.qcow2" ] || die "no base image in $BASE"
KEY=$({ cat "${BASH_SOURCE[0]}"; cat "$BASE/manifest"; } | sha256sum | cut -c1-16)
OUT="$IMAGES/cloud-$KEY"

# QEMU (libvirt-qemu) reads the image: the directories above OUT are made o+x by build-image.sh.
publish() {
  ln -sfn "cloud-$KEY" "$IMAGES/cloud-current"
  chmod o+x "$OUT" && chmod o+r "$OUT"/*
}
if [ "${WEBHA_FORCE:-0}" != 1 ] && [ -f "$OUT/.complete" ]; then
  publish
  log "cached: $OUT"
  echo "$OUT"
  exit 0
fi
[ "$(id -u)" = 0 ] || die "run as root (loop device, mount, chroot)"
for cmd in sfdisk losetup qemu-img e2fsck; do
  command -v "$cmd" >/dev/null || die "$cmd not found (apt-get install fdisk mount qemu-utils e2fsprogs)"
done

WORK=$(mktemp -d "$IMAGES/.cloud-$KEY.XXXXXX")
LOOP='' FSLOOP=''
MNT="$WORK/mnt"
cleanup() {
  if [ -d "$MNT" ]; then
    awk -v m="$MNT" 'index($2, m) == 1 { print $2 }' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m" || true; done
  fi
  for l in $LOOP $FSLOOP; do losetup -d "$l" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

log "base $BASE -> $OUT"
# The base image is one ext4 filesystem over the whole disk: it becomes partition 1 (at 1 MiB,
# where GRUB's core image fits before it), like Debian's images.
qemu-img convert -O raw "$BASE/debian12.qcow2" "$WORK/root.raw"
fs_bytes=$(stat -c %s "$WORK/root.raw")
truncate -s $((fs_bytes + 1024 * 1024)) "$WORK/disk.raw"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk -q "$WORK/disk.raw"
dd if="$WORK/root.raw" of="$WORK/disk.raw" bs=1M seek=1 conv=notrunc,sparse status=none
rm -f "$WORK/root.raw"
# Two loop devices, no partition scan (containers get no partition nodes): the whole disk for
# GRUB's boot sector, and partition 1 by its offset for the filesystem.
LOOP=$(losetup -f --show "$WORK/disk.raw")
FSLOOP=$(losetup -f --show -o $((1024 * 1024)) --sizelimit "$fs_bytes" "$WORK/disk.raw")
part=$FSLOOP
e2fsck -fy "$part" >/dev/null || [ $? -le 1 ] || die "e2fsck $part failed"
mkdir -p "$MNT"
mount "$part" "$MNT"
for d in dev proc sys; do mount --rbind "/$d" "$MNT/$d"; done
cp -L /etc/resolv.conf "$MNT/etc/resolv.conf"

log "apt: ${BOOT_PACKAGES[*]}"
chroot "$MNT" apt-get -o Acquire::Check-Valid-Until=false -qq update >&2
DEBIAN_FRONTEND=noninteractive chroot "$MNT" apt-get -qq install -y --no-install-recommends \
  "${BOOT_PACKAGES[@]}" >&2
# GRUB as grub-install would lay it out, without its device probing (which needs partition
# nodes): core.img with the prefix (hd0,msdos1)/boot/grub, embedded after the MBR.
uuid=$(blkid -s UUID -o value "$part")
KVER=$(find "$MNT/boot" -maxdepth 1 -name 'vmlinuz-*' | sed 's:.*/vmlinuz-::' | sort -V | tail -1)
if [ -z "$uuid" ] || [ -z "$KVER" ]; then die "no filesystem UUID or kernel (uuid=$uuid kernel=$KVER)"; fi
mkdir -p "$MNT/boot/grub/i386-pc"
cp "$MNT"/usr/lib/grub/i386-pc/*.mod "$MNT"/usr/lib/grub/i386-pc/*.lst "$MNT"/usr/lib/grub/i386-pc/boot.img "$MNT/boot/grub/i386-pc/"
chroot "$MNT" grub-mkimage -O i386-pc -o /boot/grub/i386-pc/core.img -p '(hd0,msdos1)/boot/grub' \
  biosdisk part_msdos ext2
printf '(hd0) %s\n' "$LOOP" >"$MNT/boot/grub/device.map"
chroot "$MNT" /usr/lib/grub/i386-pc/grub-bios-setup -s -d /boot/grub/i386-pc -m /boot/grub/device.map "$LOOP" >&2
rm -f "$MNT/boot/grub/device.map"
cat >"$MNT/boot/grub/grub.cfg" <<CFG
set timeout=0
serial --speed=115200
terminal_input serial console
terminal_output serial console
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root $uuid
menuentry 'Debian GNU/Linux' {
  linux /boot/vmlinuz-$KVER root=UUID=$uuid ro $CMDLINE
  initrd /boot/initrd.img-$KVER
}
CFG
# The base image's fstab names /dev/vda (a whole-disk filesystem); here root is a partition.
echo 'LABEL=webha-root / ext4 rw,discard,errors=remount-ro 0 1' >"$MNT/etc/fstab"
chroot "$MNT" apt-get -qq clean
rm -rf "$MNT"/var/lib/apt/lists/*
: >"$MNT/etc/resolv.conf"
awk -v m="$MNT" 'index($2, m) == 1 { print $2 }' /proc/mounts | sort -r | while read -r m; do umount "$m"; done
if dumpe2fs -h "$FSLOOP" 2>/dev/null | grep -q '^Filesystem features:.*needs_recovery'; then
  die "the root filesystem was not cleanly unmounted (needs_recovery): not publishing it"
fi
losetup -d "$LOOP" "$FSLOOP"
LOOP='' FSLOOP=''

mkdir -p "$WORK/out"
qemu-img convert -O qcow2 "$WORK/disk.raw" "$WORK/out/debian12-cloud.qcow2"
{
  echo "key=$KEY"
  echo "built=$(date -u +%FT%TZ)"
  echo "base=$BASE"
  echo "kernel=$KVER"
  echo "cmdline=$CMDLINE"
  echo "boot_packages=${BOOT_PACKAGES[*]}"
} >"$WORK/out/manifest"
touch "$WORK/out/.complete"
rm -rf "$OUT"
mv "$WORK/out" "$OUT"
publish
log "built $OUT in $(( $(date +%s) - T0 )) s ($(du -h "$OUT/debian12-cloud.qcow2" | cut -f1) qcow2)"
echo "$OUT"
}

main "$@"
