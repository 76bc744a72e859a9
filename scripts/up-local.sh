#!/usr/bin/env bash
# webha's main job on this machine: set up what is missing, then a full `pulumi up` of the
# `local` stack (three TCG guests on an isolated libvirt network). Extra args go to `pulumi up`.
set -euo pipefail
# shellcheck source=scripts/local-env.sh
source "$(dirname "$0")/local-env.sh"
ensure_local_stack "$WEBHA_ROOT"
cd "$WEBHA_ROOT"
elog "pulumi up (stack local)"
pulumi up --yes --skip-preview "$@"
pulumi stack output --json
