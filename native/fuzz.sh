#!/usr/bin/env bash
# Run every fuzz target for a share of --minutes N (default 1). Needs cargo-fuzz and a
# nightly toolchain (`cargo install cargo-fuzz`, `rustup toolchain install nightly`).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/fuzz"
minutes=1
while (($#)); do case $1 in --minutes) minutes=$2; shift 2;; *) echo "usage: fuzz.sh [--minutes N]" >&2; exit 2;; esac; done
command -v cargo-fuzz >/dev/null || { echo "fuzz: cargo-fuzz not installed (cargo install cargo-fuzz; rustup toolchain install nightly)" >&2; exit 1; }
targets=(decode stream http dns_tls rules)
per=$(( minutes * 60 / ${#targets[@]} )); ((per > 0)) || per=10
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${per}s" >&2
  cargo +nightly fuzz run "$t" -j1 -- -max_total_time="$per" -rss_limit_mb=2048
done
