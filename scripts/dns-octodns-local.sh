#!/usr/bin/env bash
# consumers/dns-octodns against this machine's `local` webha stack: any `pulumi` command of the
# consumer's own `local` stack, in the same backend with the same passphrase, e.g.
#   scripts/dns-octodns-local.sh up --yes        # writes consumers/dns-octodns/zones/itcast.cn.yaml
#   scripts/dns-octodns-local.sh preview --diff  # what a changed webha stack would change
#   scripts/dns-octodns-local.sh destroy --yes   # removes the zone files it wrote
set -euo pipefail
# shellcheck source=scripts/local-env.sh
source "$(dirname "$0")/local-env.sh"
consumer=consumers/dns-octodns
config=$(stack_config local "$consumer")
(cd "$(dirname "$(dirname "$config")")" && { pulumi stack select local 2>/dev/null || pulumi stack init local; }) >&2
case "${1:-}" in
  up|preview|destroy|refresh|config) (cd "$WEBHA_ROOT/$consumer" && pulumi "$@" --stack local --config-file "$config") ;;
  *) (cd "$WEBHA_ROOT/$consumer" && pulumi "$@" --stack local) ;;
esac
