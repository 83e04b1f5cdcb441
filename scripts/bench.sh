#!/usr/bin/env bash
# Every benchmark, each printing its figure beside a baseline measured in the same run.
# `npm run bench -- NAME…` runs only the benchmarks whose names start with one of the NAMEs
# (`npm run bench -- bus-kafka` runs bus-kafka-produce, -consume and -tls; `--list` names them all,
# `--dry NAME…` prints what would run).
# `node bench/history.mjs < run.log` appends the JSON result lines of a run to bench/RESULTS.md.
# Starts one throwaway Kafka broker for the Kafka benchmarks (unless KAFKA_BROKERS is set).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

selected() { # NAME WANTED…: is NAME asked for (no names wanted: all)?
  local name=$1 want
  shift
  (($# == 0)) && return 0
  for want in "$@"; do [[ $name == "$want"* ]] && return 0; done
  return 1
}

# The benchmarks: NAME (what `npm run bench -- NAME` matches by prefix), whether it needs a
# Kafka broker, its title, its command. Each prints its figure beside a baseline measured in
# the same run; those with a target end with the JSON line of bench/lib/result.mjs.
NAMES=() KAFKA=() TITLES=() CMDS=()
bench() { # NAME KAFKA(0|1) TITLE COMMAND…
  NAMES+=("$1") KAFKA+=("$2") TITLES+=("$3")
  CMDS+=("$(printf '%q ' "${@:4}")")
}
bench bus-embedded 0 "bus: embedded adapter" node bench/bus-embedded.mjs
bench bus-kafka-produce 1 "bus: Kafka adapter produce beside kcat (real broker)" node bench/bus-kafka.mjs produce
bench bus-kafka-consume 1 "bus: Kafka adapter consume beside kcat (real broker)" node bench/bus-kafka.mjs consume
bench bus-kafka-tls 1 "bus: Kafka adapter over SASL_SSL beside plaintext (two real brokers)" node bench/bus-kafka.mjs tls
bench record-signing 0 "records bound to their producer: stage consume loop records/s signed and checked beside unsigned" node bench/record-signing.mjs
bench store 0 "store: ClickHouse inserts beside raw chdb" node bench/store.mjs
bench store-dedup 0 "store: replays without FINAL — id lookup vs insert tokens vs FINAL views" node bench/store-dedup.mjs
bench notify 0 "notify: alerts/s through the OCSF exporter, syslog and webhooks beside the sink" node bench/notify.mjs
bench dpi 0 "dpi: ET Open throughput beside the raw pattern scan" node bench/dpi.mjs
bench dpi-encrypted 0 "dpi: encrypted TLS and SSH, content inspection stopped (default) beside going on (full)" node bench/dpi-encrypted.mjs
bench dpi-scaling 0 "dpi: 1 and 2 workers, engine memory per 100k flows, SYN flood against the flow cap" node bench/dpi-scaling.mjs
bench pipeline 0 "pipeline: replay → flows + dpi → sink, end to end (embedded bus, chdb)" node bench/pipeline.mjs
bench loginspect 0 "loginspect: all Sigma rules beside fail2ban-regex" node bench/loginspect.mjs 200000
bench fim 0 "fim: Cordon beside AIDE on 100k files" node bench/fim.mjs
bench yara 0 "yara: the agent's YARA-X scanner MB/s beside Debian's yara (libyara) on the same files and rules" node bench/yara.mjs
bench proc 0 "proc: exec events/s through the agent and the process rules beside the same exec load with no agent (root)" node bench/proc.mjs
bench inventory 0 "inventory: vSphere connector first sync and events/s beside the simulator (1,000 VMs)" node bench/inventory-vsphere.mjs
bench block-latency 1 "protection loop on Kafka: detection-to-block latency (root)" node bench/protection.mjs --only latency --bus kafka
bench block-latency-embedded 0 "protection loop on the embedded bus: detection-to-block latency (root)" node bench/protection.mjs --only latency --bus embedded
bench protection 0 "protection: every service in one process (latency), watchdog capture rate (root)" node bench/protection.mjs --all-services
bench manager 0 "manager: API p99 for the inventory (10,000 VMs) and alerts (1,000,000) beside raw ClickHouse" node bench/manager.mjs
bench gap 0 "protection gap: attacks missed or inspected twice across power-on, agent start/loss, migration, revert; gating (root)" node bench/gap.mjs

if [[ "${1:-}" == --list ]]; then printf '%s\n' "${NAMES[@]}"; exit 0; fi
dry=0 # --dry NAME…: print what would run, run nothing
if [[ "${1:-}" == --dry ]]; then
  dry=1
  shift
fi
any=0 need_kafka=0
for i in "${!NAMES[@]}"; do
  if selected "${NAMES[i]}" "$@"; then
    any=1
    ((KAFKA[i])) && need_kafka=1
  fi
done
if ((!any)); then echo "bench: no benchmark is named like $* (there are: ${NAMES[*]})" >&2; exit 2; fi
if ((dry)); then
  for i in "${!NAMES[@]}"; do selected "${NAMES[i]}" "$@" && echo "${NAMES[i]}: ${CMDS[i]}"; done
  exit 0
fi

CORDON_SETUP_TEST=1 CORDON_SETUP_BENCH=1 bash scripts/setup.sh

started=0
if ((need_kafka)) && [[ -z "${KAFKA_BROKERS:-}" ]]; then
  mkdir -p .cache
  out=$(bash infra/kafka/start.sh 2>.cache/kafka-start.log) || { cat .cache/kafka-start.log >&2; exit 1; }
  export "$(grep '^KAFKA_BROKERS=' <<<"$out" | tail -1)"
  started=1
fi

# A benchmark that fails to finish is reported as an ERROR and the run goes on: one broken
# benchmark must not hide the others' figures. The summary at the end lists every one.
runs=$(mktemp -d "${TMPDIR:-/tmp}/cordon-bench-run-XXXXXX")
trap 'rm -rf "$runs"; if ((started)); then bash infra/kafka/stop.sh >/dev/null 2>&1 || true; fi' EXIT
began=$SECONDS
for i in "${!NAMES[@]}"; do
  selected "${NAMES[i]}" "$@" || continue
  echo "== ${NAMES[i]}: ${TITLES[i]}"
  echo "${NAMES[i]}" >>"$runs/order.txt"
  set +e
  eval "${CMDS[i]}" 2>&1 | tee "$runs/${NAMES[i]}.log"
  echo "${PIPESTATUS[0]}" >"$runs/${NAMES[i]}.rc"
  set -e
  echo
done
node bench/lib/summary.mjs "$runs" $((SECONDS - began))
