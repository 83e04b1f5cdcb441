#!/usr/bin/env bash
# Build the agent's anti-malware addon (native/scan → native/cordon_scan.node: YARA-X); idempotent.
# A crate of its own so the DPI engine's builds do not wait for YARA-X and its wasmtime.
#   CARGO_BUILD_JOBS   parallel jobs (default 2: machines are shared)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
if ! command -v cargo >/dev/null; then [[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"; fi
command -v cargo >/dev/null || { echo "scan: cargo not found: install Rust (rustup) first" >&2; exit 1; }
out=../cordon_scan.node
lib=target/release/libcordon_scan.so
if [[ -f $out && -f $lib ]] && [[ -z "$(find src Cargo.toml build.rs -newer "$out" 2>/dev/null | head -1)" ]] && [[ ! Cargo.lock -nt $out ]]; then
  echo "scan: up to date" >&2; exit 0
fi
echo "scan: building (cargo build --release; a clean build takes minutes: YARA-X compiles wasmtime)" >&2
cargo build --release --locked -j "${CARGO_BUILD_JOBS:-2}" 2>&1 | tail -2 >&2
cp "$lib" "$out.tmp" && mv "$out.tmp" "$out"
