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
  # Hyperscan (amd64) or Vectorscan (other architectures) for the prefilter; they conflict,
  # so an installed one is kept. Optional: without it the prefilter uses aho-corasick.
  if ! have_pkg libhyperscan-dev && ! have_pkg libvectorscan-dev; then
    if [[ $(dpkg --print-architecture 2>/dev/null) == amd64 ]]; then need+=(libhyperscan-dev); else need+=(libvectorscan-dev); fi
  fi
  if ((${#need[@]})); then
    if [[ $(id -u) == 0 ]]; then
      log "installing ${need[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
        || apt-get install -y -qq --no-install-recommends libpcre2-dev pkg-config gcc >/dev/null
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
features=()
# libhs present (Hyperscan or Vectorscan): the prefilter runs on it.
if pkg-config --exists libhs 2>/dev/null || [[ -e /usr/include/hs/hs.h ]]; then features=(--features hyperscan); fi
stamp=target/.cordon-features
want="${features[*]:-none}"
# Skip cargo entirely when nothing changed since the last copy (fast repeated setup runs).
if [[ -f $out && -f $lib && "$(cat "$stamp" 2>/dev/null)" == "$want" ]] && [[ -z "$(find src Cargo.toml Cargo.lock build.rs -newer "$out" 2>/dev/null | head -1)" ]]; then
  log "up to date"
  exit 0
fi
log "building (cargo build --release ${features[*]:-})"
cargo build --release --locked -j "${CARGO_BUILD_JOBS:-2}" "${features[@]}" 2>&1 | tail -3 >&2
cp "$lib" "$out.tmp" && mv "$out.tmp" "$out"
mkdir -p target && echo "$want" >"$stamp"
log "built $(pwd)/$out"
