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
# Everything this file prints goes to stderr: stdout is the pulumi command's own (e.g.
# `pulumi-local.sh stack output --json` must print JSON only).
elog() { printf '[local-env %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }

"$WEBHA_ROOT/scripts/install-deps.sh" >&2
elog "toolchain"
"$WEBHA_ROOT/scripts/setup-toolchain.sh" >&2
# shellcheck source=/dev/null
source "$WEBHA_CACHE/toolchain.env"
elog "libvirtd"
"$WEBHA_ROOT/scripts/libvirt-up.sh" >&2
elog "guest image"
"$WEBHA_ROOT/scripts/build-image.sh" >&2

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
# A stack that boots the cloud image (kernel and GRUB inside the disk): build and link it too.
if grep -q 'images/debian12-cloud/' "$WEBHA_ROOT/stacks/Pulumi.${WEBHA_STACK:-local}.yaml" 2>/dev/null; then
  elog "cloud image"
  cloud=$("$WEBHA_ROOT/scripts/build-cloud-image.sh")
  install -d -m 0755 "$WEBHA_VAR/images/debian12-cloud"
  if ! [ "$cloud/debian12-cloud.qcow2" -ef "$WEBHA_VAR/images/debian12-cloud/debian12-cloud.qcow2" ]; then
    ln -f "$cloud/debian12-cloud.qcow2" "$WEBHA_VAR/images/debian12-cloud/debian12-cloud.qcow2" 2>/dev/null ||
      cp -f "$cloud/debian12-cloud.qcow2" "$WEBHA_VAR/images/debian12-cloud/debian12-cloud.qcow2"
  fi
  chmod 0644 "$WEBHA_VAR/images/debian12-cloud/debian12-cloud.qcow2"
fi
install -d -m 0700 "$WEBHA_VAR/ssh"
[ -f "$WEBHA_VAR/ssh/id_ed25519" ] ||
  ssh-keygen -q -t ed25519 -N "" -C "webha-local" -f "$WEBHA_VAR/ssh/id_ed25519"

# Offline engine: a local file backend. WEBHA_STATE holds everything that belongs to this
# machine's stacks: the backend, its passphrase and the runtime stack files (the committed
# settings plus this machine's salt and secrets; see webha/localstack.py). A new WEBHA_STATE is a
# new machine as far as Pulumi is concerned: the e2e tier runs the README's commands that way.
export WEBHA_STATE=${WEBHA_STATE:-$WEBHA_CACHE/state}
mkdir -p "$WEBHA_STATE"
export PULUMI_BACKEND_URL=${PULUMI_BACKEND_URL:-file://$WEBHA_STATE/backend}
mkdir -p "${PULUMI_BACKEND_URL#file://}"
if [ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ]; then
  pp="$WEBHA_STATE/passphrase"
  [ -s "$pp" ] || (umask 077; head -c 24 /dev/urandom | base64 > "$pp")
  PULUMI_CONFIG_PASSPHRASE=$(cat "$pp")
  export PULUMI_CONFIG_PASSPHRASE
fi
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true

# stack_config STACK [DIR]: this machine's runtime stack file for STACK of the Pulumi project in
# DIR (relative to the repository; default: webha itself), rebuilt from the committed one.
# It lives in a scratch project ($WEBHA_STATE/project[-DIR]: Pulumi.yaml only) because `pulumi
# stack init` writes the new salt into the project's stack file and takes no --config-file.
stack_config() {
  local dir=${2:-.}
  local project="$WEBHA_STATE/project${2:+-${2//\//-}}"
  install -d -m 0700 "$project" "$project/stacks"
  cp -f "$WEBHA_ROOT/$dir/Pulumi.yaml" "$project/Pulumi.yaml"
  (cd "$WEBHA_ROOT" && .venv/bin/python -m webha.localstack "$dir/stacks/Pulumi.$1.yaml" \
    "$project/stacks/Pulumi.$1.yaml") >&2
  printf '%s\n' "$project/stacks/Pulumi.$1.yaml"
}

# The stack the scripts run: `local` unless WEBHA_STACK names another committed stack file of this
# machine (`twohv`: the two-hypervisor stack).
export WEBHA_STACK=${WEBHA_STACK:-local}
if ! [[ $WEBHA_STACK =~ ^[a-z0-9-]{1,32}$ ]] || ! [ -f "$WEBHA_ROOT/stacks/Pulumi.$WEBHA_STACK.yaml" ]; then
  elog "WEBHA_STACK=$WEBHA_STACK: no stacks/Pulumi.$WEBHA_STACK.yaml"; exit 1
fi

# lpulumi ARGS: `pulumi` in the project for the stack, with this machine's stack file
# (the commands that read config take --config-file; the others do not know the flag).
lpulumi() {
  local sub=$1
  case "$sub" in
    up|preview|destroy|refresh|config|import)
      (cd "$WEBHA_ROOT" && pulumi "$@" --stack "$WEBHA_STACK" --config-file "$WEBHA_STACK_CONFIG") ;;
    *) (cd "$WEBHA_ROOT" && pulumi "$@" --stack "$WEBHA_STACK") ;;
  esac
}

# ensure_local_stack: select (or create) the stack and give it secrets once.
ensure_local_stack() {
  # A stack that names hypervisors runs on this machine's extra libvirtds: start them.
  if grep -q '^  webha:hypervisors:' "$WEBHA_ROOT/stacks/Pulumi.$WEBHA_STACK.yaml"; then
    elog "extra hypervisors"
    "$WEBHA_ROOT/scripts/hypervisors-up.sh" >&2
  fi
  WEBHA_STACK_CONFIG=$(stack_config "$WEBHA_STACK")
  export WEBHA_STACK_CONFIG
  (cd "$WEBHA_STATE/project" && { pulumi stack select "$WEBHA_STACK" 2>/dev/null || pulumi stack init "$WEBHA_STACK"; }) >&2
  for key in dbPassword vrrpAuthPass; do
    if ! lpulumi config get "$key" >/dev/null 2>&1; then
      elog "generating secret $key"
      local len=24
      [ "$key" = vrrpAuthPass ] && len=8
      # The value goes in on stdin: never on a command line.
      head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "$len" |
        lpulumi config set --secret "$key" >&2
    fi
  done
  # Each guest's SSH host key, made once per stack (components/hostkeys.py): on stdin, never argv.
  local host
  for host in $("$WEBHA_ROOT/.venv/bin/python" -m webha.hostkeys hosts "$WEBHA_STACK_CONFIG"); do
    if ! lpulumi config get --path "sshHostKeys.$host" >/dev/null 2>&1; then
      elog "generating the SSH host key of $host"
      (cd "$WEBHA_ROOT" && .venv/bin/python -m webha.hostkeys generate) |
        lpulumi config set --secret --path "sshHostKeys.$host" >&2
    fi
  done
}

# write_known_hosts: the stack's pinned host keys (stack output sshHostKeys) as a known_hosts
# file for `python -m webha drill|splitbrain --target ssh --known-hosts ...` and plain ssh.
write_known_hosts() {
  WEBHA_KNOWN_HOSTS="$WEBHA_STATE/known_hosts.$WEBHA_STACK"
  export WEBHA_KNOWN_HOSTS
  lpulumi stack output --json |
    (cd "$WEBHA_ROOT" && .venv/bin/python -m webha.hostkeys known-hosts "$WEBHA_KNOWN_HOSTS")
  elog "pinned host keys: $WEBHA_KNOWN_HOSTS"
}
