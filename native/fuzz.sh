#!/usr/bin/env bash
# Run every fuzz target for a share of --minutes N (default 1), one job each (-j1 keeps the
# other core usable). Works on stable Rust: cargo-fuzz is installed from crates.io when
# missing, and RUSTC_BOOTSTRAP=1 lets stable rustc accept the -Z sanitizer/coverage flags
# cargo-fuzz passes. AddressSanitizer is used when it links; otherwise --sanitizer none
# (Rust's own bounds and overflow checks still catch memory errors in safe code).
#   fuzz.sh [--minutes N] [--targets "decode http"] [--build-only]
# Crash inputs land in fuzz/artifacts/<target>/; the run fails if any target crashed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/fuzz"
minutes=1
targets=(decode stream http dns_tls rules tls ssh smtp ftp smb dcerpc krb5 record_proof logline)
build_only=0
while (($#)); do
  case $1 in
    --minutes) minutes=$2; shift 2;;
    --targets) read -r -a targets <<<"$2"; shift 2;;
    --build-only) build_only=1; shift;;
    *) echo "usage: fuzz.sh [--minutes N] [--targets \"t1 t2\"] [--build-only]" >&2; exit 2;;
  esac
done
if ! command -v cargo >/dev/null && [[ -f "$HOME/.cargo/env" ]]; then . "$HOME/.cargo/env"; fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (crates.io)" >&2
  cargo install cargo-fuzz --locked -j1 >&2
fi
export RUSTC_BOOTSTRAP=1
export CARGO_BUILD_JOBS=${CARGO_BUILD_JOBS:-1}
# Sanitizer: ASan when a probe build links, else none. CORDON_FUZZ_SANITIZER overrides.
san=${CORDON_FUZZ_SANITIZER:-}
if [[ -z $san ]]; then
  if cargo fuzz build -O -a --sanitizer address "${targets[0]}" >/dev/null 2>&1; then san=address; else san=none; fi
fi
echo "fuzz: sanitizer $san, targets ${targets[*]}" >&2
for t in "${targets[@]}"; do
  cargo fuzz build -O -a --sanitizer "$san" "$t" >&2
done
((build_only)) && exit 0
per=$(( minutes * 60 / ${#targets[@]} )); ((per > 0)) || per=10
failed=()
for t in "${targets[@]}"; do
  echo "fuzz: $t for ${per}s" >&2
  mkdir -p "corpus/$t"
  if ! cargo fuzz run -O -a --sanitizer "$san" -j1 "$t" "corpus/$t" -- -max_total_time="$per" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1; then
    failed+=("$t")
  fi
done
if ((${#failed[@]})); then echo "fuzz: crashes in ${failed[*]} (see fuzz/artifacts/)" >&2; exit 1; fi
echo "fuzz: no crashes" >&2
