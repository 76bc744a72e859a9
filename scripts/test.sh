#!/usr/bin/env bash
# All of webha's test tiers, as CI runs them (.ci/run calls exactly this).
# unit, render, lab, migration need only Debian packages + .venv; e2e also sets up the local
# stack's toolchain, libvirtd and guest image (cached) before pytest runs it.
# Extra args go to pytest, e.g. `scripts/test.sh -m unit`.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
if [ "$#" -eq 0 ]; then
  # The twohv tier (two more libvirtds, ~15 min of TCG guests) is not in the default run yet: it
  # has not passed on the merged code (README, Known limits). Run it with `scripts/test.sh -m twohv`.
  echo "[test] all tiers except twohv (run it with: scripts/test.sh -m twohv)" >&2
  set -- -m "not twohv"
fi
exec .venv/bin/pytest "$@"
