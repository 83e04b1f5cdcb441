#!/usr/bin/env bash
# Install a librdkafka >= 2.6.1 client for the secured-broker tests: confluent-kafka (its PyPI
# wheel bundles librdkafka) in a virtualenv under infra/kafka/dist/rdkafka, used by
# infra/kafka/rdkcat. Debian 12's kcat links librdkafka 2.0.2, whose SCRAM Kafka 4 refuses
# (librdkafka#4895), so kcat cannot authenticate to `start.sh --secure`.
# Idempotent and cached: a stamp holding the requirements' hash makes a second run return at
# once; editing rdkafka-requirements.txt reinstalls. Prints nothing on success but the client's
# path (stdout); exits 1 with the reason when Python or PyPI is missing.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dir="${KAFKA_RDKAFKA_DIR:-$here/dist/rdkafka}"
req="$here/rdkafka-requirements.txt"
want="$(sha256sum "$req" | cut -d' ' -f1)"
stamp="$dir/.installed"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]] && "$dir/bin/python" -c 'import confluent_kafka' 2>/dev/null; then
  echo "$here/rdkcat"
  exit 0
fi
command -v python3 >/dev/null || { echo "rdkafka-install.sh: python3 not found" >&2; exit 1; }
echo "rdkafka-install.sh: installing confluent-kafka (bundled librdkafka) into $dir" >&2
# the stamp is written last: an interrupted install has none, and the next run starts over
rm -rf "$dir"
mkdir -p "$(dirname "$dir")"
python3 -m venv "$dir" >&2 || { echo "rdkafka-install.sh: python3 -m venv failed (apt-get install python3-venv)" >&2; exit 1; }
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
if ! "$dir/bin/python" -m pip install -q --disable-pip-version-check --only-binary=:all: -r "$req" >"$log" 2>&1; then
  cat "$log" >&2
  echo "rdkafka-install.sh: pip could not install confluent-kafka (is PyPI reachable?)" >&2
  exit 1
fi
"$dir/bin/python" -c 'import confluent_kafka' >&2
echo "$want" >"$stamp"
echo "rdkafka-install.sh: $("$here/rdkcat" -V | head -1)" >&2
echo "$here/rdkcat"
