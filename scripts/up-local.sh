#!/usr/bin/env bash
# webha's main job on this machine: set up what is missing, then a full `pulumi up` of the
# `local` stack (three TCG guests on an isolated libvirt network; WEBHA_STACK=twohv: the
# two-hypervisor stack). Extra args go to `pulumi up`.
# A fresh machine (or a fresh WEBHA_STATE) gets its own backend, passphrase and secrets.
set -euo pipefail
# shellcheck source=scripts/local-env.sh
source "$(dirname "$0")/local-env.sh"
ensure_local_stack
elog "pulumi up (stack $WEBHA_STACK, config $WEBHA_STACK_CONFIG)"
lpulumi up --yes --skip-preview "$@"
write_known_hosts
lpulumi stack output --json
