#!/usr/bin/env bash
# The whole test suite: installs what it needs, starts a real Kafka broker (infra/kafka),
# runs every test with node's test runner, stops the broker. The runner's summary is the
# last thing printed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export CORDON_SETUP_TEST=1
bash scripts/setup.sh

mkdir -p .cache
started_kafka=0
if [[ -z "${KAFKA_BROKERS:-}" ]]; then
  out=$(bash infra/kafka/start.sh 2>.cache/kafka-start.log) || { cat .cache/kafka-start.log >&2; echo "test: Kafka did not start" >&2; exit 1; }
  export "$(grep '^KAFKA_BROKERS=' <<<"$out" | tail -1)"
  started_kafka=1
fi
cleanup() { if ((started_kafka)); then bash infra/kafka/stop.sh >/dev/null 2>&1 || true; fi; }
trap cleanup EXIT

echo "test: Kafka at $KAFKA_BROKERS" >&2
npm run --silent lint >&2

shopt -s nullglob
files=(packages/*/dist/test/*.test.js services/*/dist/test/*.test.js test/dist/*.test.js)
export CORDON_LOG_LEVEL=${CORDON_LOG_LEVEL:-silent}
# one file at a time: Kafka group tests and chdb sessions are heavy on a 2-core machine
node --test --test-concurrency=1 --test-reporter=spec "${files[@]}"
