#!/usr/bin/env bash
# Build the libvirt sidecar (Go, no cgo) into packages/libvirt/bin/, for scripts/setup.sh.
# Fast when nothing changed: Go's build cache does the work. Without Go, it says so and exits 0:
# the connector then fails with CORDON_ERR_LIBVIRT_SIDECAR_MISSING when used, and the tests skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if ! command -v go >/dev/null; then
  echo "libvirt build.sh: go is not installed; the libvirt sidecar was not built" >&2
  exit 0
fi
mkdir -p bin
cd sidecar
CGO_ENABLED=0 go build -trimpath -o ../bin/cordon-libvirt-sidecar .
