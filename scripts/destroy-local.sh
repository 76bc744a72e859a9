#!/usr/bin/env bash
# Remove everything the `local` stack (or WEBHA_STACK) made (VMs, volumes, network). Extra args go to `pulumi destroy`.
# The guests' host keys are the stack's (webha:sshHostKeys), not the guests': re-created guests
# answer with the same keys, so nothing is forgotten here.
set -euo pipefail
# shellcheck source=scripts/local-env.sh
source "$(dirname "$0")/local-env.sh"
ensure_local_stack
lpulumi destroy --yes --skip-preview "$@"
