#!/usr/bin/env bash
# Every benchmark, each printing its figure beside a baseline measured in the same run.
# `npm run bench -- NAME…` runs only the benchmarks whose names start with one of the NAMEs
# (bus, record-signing, store, store-dedup, notify, dpi, loginspect, fim, yara, inventory, protection, gap).
# Starts one throwaway Kafka broker for the Kafka benchmarks (unless KAFKA_BROKERS is set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

selected() { # NAME: is it asked for (no names: all)?
  (($# > 1)) || return 0
  local name=$1 want
  shift
  for want in "$@"; do [[ $name == "$want"* ]] && return 0; done
  return 1
}
BENCHES=(bus record-signing store store-dedup notify dpi loginspect fim yara inventory manager protection gap)
KAFKA_BENCHES=(bus protection)
any=0
for b in "${BENCHES[@]}"; do selected "$b" "$@" && any=1; done
if ((!any)); then echo "bench: no benchmark is named like $* (there are: ${BENCHES[*]})" >&2; exit 2; fi

CORDON_SETUP_TEST=1 CORDON_SETUP_BENCH=1 bash scripts/setup.sh

need_kafka=0
for b in "${KAFKA_BENCHES[@]}"; do selected "$b" "$@" && need_kafka=1; done
started=0
if ((need_kafka)) && [[ -z "${KAFKA_BROKERS:-}" ]]; then
  mkdir -p .cache
  out=$(bash infra/kafka/start.sh 2>.cache/kafka-start.log) || { cat .cache/kafka-start.log >&2; exit 1; }
  export "$(grep '^KAFKA_BROKERS=' <<<"$out" | tail -1)"
  started=1
fi
trap 'if ((started)); then bash infra/kafka/stop.sh >/dev/null 2>&1 || true; fi' EXIT

run() { # NAME TITLE COMMAND…
  local name=$1 title=$2
  shift 2
  selected "$name" "${ARGS[@]}" || return 0
  echo "== $title"
  "$@"
  echo
}
ARGS=("$@")
run bus "bus: embedded adapter" node bench/bus-embedded.mjs
run bus "bus: Kafka adapter beside kcat (real broker)" node bench/bus-kafka.mjs
run record-signing "records bound to their producer: bus + stage runtime records/s signed and checked beside unsigned" node bench/record-signing.mjs
run store "store: ClickHouse inserts beside raw chdb" node bench/store.mjs
run store-dedup "store: replays without FINAL — id lookup vs insert tokens vs FINAL views" node bench/store-dedup.mjs
run notify "notify: alerts/s through the OCSF exporter, syslog and webhooks beside the sink" node bench/notify.mjs
run dpi "dpi: ET Open throughput beside the raw pattern scan" node bench/dpi.mjs
run loginspect "loginspect: all Sigma rules beside fail2ban-regex" node bench/loginspect.mjs 200000
run fim "fim: Cordon beside AIDE on 100k files" node bench/fim.mjs
run yara "yara: the agent's YARA-X scanner MB/s beside Debian's yara (libyara) on the same files and rules" node bench/yara.mjs
run inventory "inventory: vSphere connector first sync and events/s beside the simulator (1,000 VMs)" node bench/inventory-vsphere.mjs
run protection "protection loop: detection-to-block latency, watchdog capture rate (root)" node bench/protection.mjs
run manager "manager: API p99 for the inventory (10,000 VMs) and alerts (1,000,000) beside raw ClickHouse" node bench/manager.mjs
run gap "protection gap: attacks missed or inspected twice across power-on, agent start/loss, migration, revert; gating (root)" node bench/gap.mjs
