#!/usr/bin/env bash
# System packages for the Kafka test world, for scripts/setup.sh to call (as root) before `npm ci`.
#   - Java 17+ and Maven: install.sh fetches and runs Apache Kafka's released jars.
#   - kcat: the baseline client of bench/bus-kafka.mjs.
#   - rdkafka-install.sh: a librdkafka >= 2.6.1 client for the secured broker's tests (PyPI).
#   - --rdkafka: also what @confluentinc/kafka-javascript needs to compile its bundled librdkafka
#     (it cannot download a prebuilt binary here; install it with CKJS_LINKING=dynamic). It is
#     not a dependency of Cordon: only bench/bus-clients.mjs uses it, to re-measure the client
#     choice (bench/RESULTS.md, "Kafka client choice").
set -euo pipefail

pkgs=(maven kcat)
# Any Java 17+ will do; install Debian's 17 only when none is there.
java_major() { java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p'; }
if ! command -v java >/dev/null || (($(java_major | cut -d. -f1) < 17)); then pkgs+=(openjdk-17-jre-headless); fi
if [[ "${1:-}" == --rdkafka ]]; then
  pkgs+=(build-essential python3 libssl-dev zlib1g-dev libzstd-dev libsasl2-dev libcurl4-openssl-dev liblz4-dev)
fi

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} > 0)); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# A librdkafka >= 2.6.1 client (infra/kafka/rdkcat, from PyPI's confluent-kafka wheel): Debian
# 12's kcat (librdkafka 2.0.2) cannot authenticate to the secured broker (librdkafka#4895).
# Cached: returns at once once installed. Not fatal: the test that needs it says why it skips.
bash "$(dirname "${BASH_SOURCE[0]}")/rdkafka-install.sh" >/dev/null || echo "deps.sh: the librdkafka client was not installed (see above)" >&2
