#!/usr/bin/env bash
# Prints the Go compiler the toolchain build and the `toolchain` test tier use:
# $GO, else `go` on PATH, else /usr/local/go/bin/go (the official tarball's place).
# Fails naming what is missing when none exists or it is older than toolchain/*/go.mod needs.
set -euo pipefail
go=${GO:-$(command -v go || true)}
[ -n "$go" ] || go=/usr/local/go/bin/go
if [ ! -x "$go" ]; then
  echo "no Go toolchain found (set GO=/path/to/go); Go >= 1.26 is needed (toolchain/*/go.mod)" >&2
  exit 1
fi
printf '%s\n' "$go"
