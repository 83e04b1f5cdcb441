#!/usr/bin/env bash
# Build the watchdog's live-capture addon (native/capture → native/cordon_capture.node); idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if ! command -v cargo >/dev/null; then [[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"; fi
out=../cordon_capture.node
lib=target/release/libcordon_capture.so
if [[ -f $out && -f $lib ]] && [[ -z "$(find src Cargo.toml build.rs -newer "$out" 2>/dev/null | head -1)" ]] && [[ ! Cargo.lock -nt $out ]]; then
  echo "capture: up to date" >&2; exit 0
fi
echo "capture: building (cargo build --release)" >&2
cargo build --release --locked -j "${CARGO_BUILD_JOBS:-2}" 2>&1 | tail -2 >&2
cp "$lib" "$out.tmp" && mv "$out.tmp" "$out"
