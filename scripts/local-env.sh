#!/usr/bin/env bash
# Sourced by up-local.sh, destroy-local.sh and the e2e tests: everything `pulumi` needs to run the
# `local` stack on this machine, offline. Sets up (idempotently, each step cached):
#   Debian packages + .venv, the Pulumi engine and providers (built from the Go module proxy),
#   libvirtd, the Debian 12 guest image, the SSH key, a file backend and its passphrase.
# Exports PULUMI_* for the caller. WEBHA_CACHE (default ~/.cache/webha) holds what is slow to make.
set -euo pipefail
WEBHA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export WEBHA_ROOT
export WEBHA_CACHE=${WEBHA_CACHE:-$HOME/.cache/webha}
WEBHA_VAR=${WEBHA_VAR:-/var/lib/webha}
mkdir -p "$WEBHA_CACHE"
elog() { printf '[local-env %s] %s\n' "$(date +%H:%M:%S)" "$*"; }

"$WEBHA_ROOT/scripts/install-deps.sh"
elog "toolchain"
"$WEBHA_ROOT/scripts/setup-toolchain.sh"
# shellcheck source=/dev/null
source "$WEBHA_CACHE/toolchain.env"
elog "libvirtd"
"$WEBHA_ROOT/scripts/libvirt-up.sh"
elog "guest image"
"$WEBHA_ROOT/scripts/build-image.sh"

# The stack reads the image and key from fixed paths (stacks/Pulumi.local.yaml); QEMU runs as
# libvirt-qemu, so they live outside root's home. Hard links: no 1 GB copy.
img=$(readlink -f "$WEBHA_CACHE/images/current")
install -d -m 0755 "$WEBHA_VAR" "$WEBHA_VAR/images" "$WEBHA_VAR/images/debian12"
for f in debian12.qcow2 vmlinuz initrd.img; do
  if ! [ "$img/$f" -ef "$WEBHA_VAR/images/debian12/$f" ]; then
    ln -f "$img/$f" "$WEBHA_VAR/images/debian12/$f" 2>/dev/null || cp -f "$img/$f" "$WEBHA_VAR/images/debian12/$f"
  fi
  chmod 0644 "$WEBHA_VAR/images/debian12/$f"
done
install -d -m 0700 "$WEBHA_VAR/ssh"
[ -f "$WEBHA_VAR/ssh/id_ed25519" ] ||
  ssh-keygen -q -t ed25519 -N "" -C "webha-local" -f "$WEBHA_VAR/ssh/id_ed25519"

# Offline engine: a local file backend; the passphrase protects this machine's stack secrets.
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$WEBHA_CACHE/state}
mkdir -p "${PULUMI_BACKEND_URL#file://}"
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ]; then
  pp="$WEBHA_CACHE/passphrase"
  [ -s "$pp" ] || (umask 077; head -c 24 /dev/urandom | base64 > "$pp")
  PULUMI_CONFIG_PASSPHRASE=$(cat "$pp")
  export PULUMI_CONFIG_PASSPHRASE
fi
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

# ensure_local_stack DIR: select (or create) the `local` stack in DIR and give it secrets once.
ensure_local_stack() {
  local dir=$1
  (cd "$dir"; pulumi stack select local 2>/dev/null || pulumi stack init local)
  for key in dbPassword vrrpAuthPass; do
    if ! (cd "$dir" && pulumi config get "$key" >/dev/null 2>&1); then
      elog "generating secret $key"
      local len=24
      [ "$key" = vrrpAuthPass ] && len=8
      # The value goes in on stdin: never on a command line.
      head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$len" |
        (cd "$dir" && pulumi config set --secret "$key")
    fi
  done
}
