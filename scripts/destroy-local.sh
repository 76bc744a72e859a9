#!/usr/bin/env bash
# Remove everything the `local` stack (or WEBHA_STACK) made (VMs, volumes, network). Extra args go to `pulumi destroy`.
set -euo pipefail
# shellcheck source=scripts/local-env.sh
source "$(dirname "$0")/local-env.sh"
ensure_local_stack
ips=$(lpulumi stack output hosts --json 2>/dev/null |
  python3 -c 'import json,sys; print(" ".join(json.load(sys.stdin).values()))' 2>/dev/null || true)
lpulumi destroy --yes --skip-preview "$@"
# The guests' host keys died with them: forget them, or the next `webha --target ssh` against
# re-created guests (same addresses, new keys) stops at "REMOTE HOST IDENTIFICATION HAS CHANGED".
for ip in $ips; do
  ssh-keygen -R "$ip" >/dev/null 2>&1 || true
done
# ...and the tier check's known_hosts for these guests (components/tiercheck.py).
rm -f "$WEBHA_VAR/ssh/known_hosts.$WEBHA_STACK".*
