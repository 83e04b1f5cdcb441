#!/usr/bin/env bash
# Build Cordon's native DPI engine (idempotent): install the system libraries it links
# (PCRE2 for pcre with JIT, pkg-config to find it) when root and missing, then
# `cargo build --release` and copy the N-API library to native/cordon_dpi.node.
#   CORDON_SETUP_SYSTEM=0   skip apt
#   CARGO_BUILD_JOBS        parallel jobs (default 2: machines are shared)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
log() { echo "native: $*" >&2; }

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if [[ "${CORDON_SETUP_SYSTEM:-1}" == 1 ]] && command -v apt-get >/dev/null; then
  need=()
  for p in libpcre2-dev pkg-config gcc; do have_pkg "$p" || need+=("$p"); done
  if ((${#need[@]})); then
    if [[ $(id -u) == 0 ]]; then
      log "installing ${need[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
    else
      log "missing system packages ${need[*]} (run as root or apt-get install them); the build may fall back to vendored sources"
    fi
  fi
fi

if ! command -v cargo >/dev/null; then
  [[ -f "$HOME/.cargo/env" ]] && . "$HOME/.cargo/env"
fi
command -v cargo >/dev/null || { log "cargo not found: install Rust (rustup) first"; exit 1; }

out=cordon_dpi.node
lib=target/release/libcordon_dpi.so
# Skip cargo entirely when nothing changed since the last copy (fast repeated setup runs).
if [[ -f $out && -f $lib ]] && [[ -z "$(find src Cargo.toml Cargo.lock build.rs -newer "$out" 2>/dev/null | head -1)" ]]; then
  log "up to date"
  exit 0
fi
log "building (cargo build --release)"
cargo build --release --locked -j "${CARGO_BUILD_JOBS:-2}" 2>&1 | tail -3 >&2
cp "$lib" "$out.tmp" && mv "$out.tmp" "$out"
log "built $(pwd)/$out"
