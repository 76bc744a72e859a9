#!/usr/bin/env bash
# Remove everything the `local` stack (or WEBHA_STACK) made (VMs, volumes, network). Extra args go to `pulumi destroy`.
# The guests' host keys are the stack's (webha:sshHostKeys), not the guests': re-created guests
# answer with the same keys, so nothing is forgotten here.
set -euo pipefail
# shellcheck source=scripts/local-env.sh
source "$(dirname "$0")/local-env.sh"
ensure_local_stack
# A guest that is off would make each of its undo steps dial it ~15 min: start such guests first
# (from the stack's state; webha/guests.py). If one cannot be asked or started, say so and destroy
# anyway: the destroy then names the step it could not run.
if ! lpulumi stack export | "$WEBHA_ROOT/.venv/bin/python" -m webha guests start-stopped >&2; then
  elog "could not start every shut-off guest (above); destroying anyway"
fi
lpulumi destroy --yes --skip-preview "$@"
