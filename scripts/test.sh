#!/usr/bin/env bash
# All of webha's test tiers, as CI runs them (.ci/run calls exactly this).
# unit, render, lab, migration need only Debian packages + .venv; e2e also sets up the local
# stack's toolchain, libvirtd and guest image (cached) before pytest runs it.
# Extra args go to pytest, e.g. `scripts/test.sh -m unit`, or `scripts/test.sh -m "not twohv"`
# to leave out the two-hypervisor tier (~11 min of TCG guests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
exec .venv/bin/pytest "$@"
