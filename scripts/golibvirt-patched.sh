#!/usr/bin/env bash
# golibvirt-patched.sh DEST: go-libvirt as webha's libvirt provider is built with it, in DEST
# (made anew): the module toolchain/libvirt/go.mod requires, from the Go module cache (downloaded
# from the module proxy if missing), with its rpc.go replaced by toolchain/libvirt/_golibvirt/rpc.go
# and its tests by that file's tests. Why: toolchain/libvirt/_golibvirt/README.md.
# Refuses when the required version or its upstream rpc.go is not the one the patched file was
# made from (toolchain/libvirt/_golibvirt/UPSTREAM): a version bump must re-derive the patch.
# Used by scripts/setup-toolchain.sh (the provider build) and the toolchain test tier.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PATCH=$ROOT/toolchain/libvirt/_golibvirt
die() { printf '[golibvirt] ERROR: %s\n' "$*" >&2; exit 1; }
if [ $# != 1 ] || [ -z "$1" ]; then die "usage: $0 DEST"; fi
DEST=$1
GO=$("$ROOT/scripts/find-go.sh")
read -r module version file sum < "$PATCH/UPSTREAM"
# The module and version the provider build resolves (toolchain/libvirt/go.mod and go.sum).
info=$(cd "$ROOT/toolchain/libvirt" && GOFLAGS=-mod=readonly "$GO" mod download -json "$module") ||
  die "go mod download $module in toolchain/libvirt failed"
got_version=$(sed -n 's/^[[:space:]]*"Version": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
dir=$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p' <<<"$info")
[ "$got_version" = "$version" ] ||
  die "toolchain/libvirt requires $module $got_version; _golibvirt/rpc.go was made from $version's $file"
[ -f "$dir/$file" ] || die "$dir/$file missing in the module cache"
[ "$(sha256sum < "$dir/$file" | cut -d' ' -f1)" = "$sum" ] ||
  die "$module $version's $file ($dir/$file) is not the one _golibvirt/rpc.go was made from (sha256 $sum)"
rm -rf "$DEST"
mkdir -p "$(dirname "$DEST")"
cp -R "$dir" "$DEST"
chmod -R u+w "$DEST"
cp "$PATCH/rpc.go" "$DEST/$file"
# Upstream's own tests of the package import modules the provider build does not resolve
# (golang.org/x/tools): replaced by the patch's tests, which run in toolchain/libvirt's module
# graph. (Upstream's tests passed against the patched rpc.go in their own module: README.md.)
rm -f "$DEST"/*_test.go
cp "$PATCH"/*_test.go "$DEST/"
printf '%s\n' "$DEST"
