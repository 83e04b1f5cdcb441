#!/usr/bin/env bash
# Build the simulator (bin/vcsim) and its driver (bin/vcsim-driver) from this folder's go.mod
# (govmomi v0.56.0 from the Go module proxy). Idempotent; `go build` reuses its build cache, so a
# second run costs a second or two. GOFLAGS=-p=1 by default: the first govmomi compile is heavy
# on a shared 2-core machine.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
command -v go >/dev/null || { echo "vcsim/build.sh: Go is not installed (https://go.dev/dl/, Go >= 1.25)" >&2; exit 1; }
export GOFLAGS="${GOFLAGS:--p=1}"
mkdir -p bin
go build -o bin/vcsim .
go build -o bin/vcsim-driver ./cmd/vcsim-driver
