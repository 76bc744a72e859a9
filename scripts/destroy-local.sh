#!/usr/bin/env bash
# Remove everything the `local` stack made (VMs, volumes, network).
set -euo pipefail
# shellcheck source=scripts/local-env.sh
source "$(dirname "$0")/local-env.sh"
cd "$WEBHA_ROOT"
pulumi stack select local
pulumi destroy --yes --skip-preview "$@"
