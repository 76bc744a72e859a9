#!/usr/bin/env bash
# Any `pulumi` command against this machine's `local` stack, e.g. for review:
#   scripts/pulumi-local.sh preview --diff
#   scripts/pulumi-local.sh stack output --json
# Same environment as up-local.sh (backend, passphrase, this machine's stack file).
set -euo pipefail
# shellcheck source=scripts/local-env.sh
source "$(dirname "$0")/local-env.sh"
ensure_local_stack
lpulumi "$@"
