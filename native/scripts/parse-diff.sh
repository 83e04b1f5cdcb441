#!/usr/bin/env bash
# Parser differential: every rule of ET Open, of each suricata-verify folder and of a generated
# set (synthetic-rules.mjs: every registered keyword with well- and ill-formed values), parsed
# by this checkout and dumped to OUT: each rule's parsed form (all fields) or its failure
# reason. A change to the rule parser should leave `cmp BEFORE AFTER` silent.
#   native/scripts/parse-diff.sh OUT
# The generated rules are written to native/target/parse-diff/synthetic.rules unless that file
# exists: comparing across a change of the keyword registry, generate once and keep it.
# The corpus is ../shared/corpus beside the checkout (or two levels up, for a worktree),
# CORDON_CORPUS otherwise; without it only the generated rules are checked (said on stderr).
set -euo pipefail
[[ $# == 1 ]] || { echo "usage: $0 OUT" >&2; exit 2; }
out="$(realpath -m "$1")"
native="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
repo="$(dirname "$native")"
syn="$native/target/parse-diff/synthetic.rules"
mkdir -p "$(dirname "$syn")"
[[ -f $syn ]] || node "$native/scripts/synthetic-rules.mjs" > "$syn"
files=("$syn")
corpus=""
for c in "${CORDON_CORPUS:-}" "$repo/../shared/corpus" "$repo/../../shared/corpus"; do
  [[ -n $c && -d $c/et-open ]] && { corpus="$(realpath "$c")"; break; }
done
if [[ -n $corpus ]]; then
  files+=("$corpus"/et-open/*.rules "$corpus"/suricata-verify*/*/*.rules)
else
  echo "parse-diff: no corpus (../shared/corpus or CORDON_CORPUS): generated rules only" >&2
fi
features=()
if pkg-config --exists libhs 2>/dev/null || [[ -e /usr/include/hs/hs.h ]]; then features=(--features hyperscan); fi
cd "$native"
CORDON_PARSE_RULES="${files[*]}" CORDON_PARSE_DUMP="$out" \
  cargo test --release --lib -j "${CARGO_BUILD_JOBS:-2}" "${features[@]}" parse_probe 2>&1 | grep -E "^test result|error" >&2
echo "parse-diff: ${#files[@]} rule files, $(grep -c '^failed ' "$out") failures, written to $out" >&2
