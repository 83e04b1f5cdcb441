#!/usr/bin/env bash
# Every benchmark, each printing its figure beside a baseline measured in the same run.
# Starts one throwaway Kafka broker for the Kafka benchmarks (unless KAFKA_BROKERS is set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
CORDON_SETUP_TEST=1 CORDON_SETUP_BENCH=1 bash scripts/setup.sh

started=0
if [[ -z "${KAFKA_BROKERS:-}" ]]; then
  mkdir -p .cache
  out=$(bash infra/kafka/start.sh 2>.cache/kafka-start.log) || { cat .cache/kafka-start.log >&2; exit 1; }
  export "$(grep '^KAFKA_BROKERS=' <<<"$out" | tail -1)"
  started=1
fi
trap 'if ((started)); then bash infra/kafka/stop.sh >/dev/null 2>&1 || true; fi' EXIT

run() { echo "== $1"; shift; "$@"; echo; }
run "bus: embedded adapter" node bench/bus-embedded.mjs
run "bus: Kafka adapter beside kcat (real broker)" node bench/bus-kafka.mjs
run "store: ClickHouse inserts beside raw chdb" node bench/store.mjs
run "dpi: ET Open throughput beside the raw pattern scan" node bench/dpi.mjs
run "loginspect: all Sigma rules beside fail2ban-regex" node bench/loginspect.mjs 200000
run "fim: Cordon beside AIDE on 100k files" node bench/fim.mjs
run "inventory: vSphere connector first sync and events/s beside the simulator (1,000 VMs)" node bench/inventory-vsphere.mjs
run "manager: API p99 for the inventory (10,000 VMs) and alerts (1,000,000) beside raw ClickHouse" node bench/manager.mjs
run "protection loop: detection-to-block latency, watchdog capture rate (root)" node bench/protection.mjs
