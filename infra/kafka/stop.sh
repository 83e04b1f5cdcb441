#!/usr/bin/env bash
# Stop the broker started by start.sh (same KAFKA_PORT / KAFKA_RUN_DIR) and delete its data.
# KAFKA_KEEP_LOGS=1 keeps $KAFKA_RUN_DIR/logs for a post-mortem.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

# A three-broker cluster (start.sh --brokers 3): all its nodes.
if [[ -f "$KAFKA_RUN_DIR/nodes" ]]; then exec "$KAFKA_INFRA_DIR/cluster.sh" stop; fi

if [[ -f "$KAFKA_PID_FILE" ]]; then
  pid="$(cat "$KAFKA_PID_FILE")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    # A controlled shutdown takes a few seconds; after 30 s the data is thrown away anyway.
    for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "stop.sh: broker $pid did not stop within 30s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
    echo "stop.sh: stopped broker $pid" >&2
  fi
else
  echo "stop.sh: no broker pid file at $KAFKA_PID_FILE; nothing to stop" >&2
fi

# Only what start.sh wrote is removed, so a custom KAFKA_RUN_DIR holding other files survives.
# A secured broker's keys, passwords and client configs go with it (the next start makes new ones).
rm -rf "$KAFKA_RUN_DIR/data" "$KAFKA_PID_FILE" "$KAFKA_RUN_DIR/server.properties" \
  "$KAFKA_RUN_DIR/log4j2.properties" "$KAFKA_RUN_DIR/log4j2-tools.properties" \
  "$KAFKA_RUN_DIR/security" "$KAFKA_RUN_DIR/secrets" "$KAFKA_RUN_DIR/clients"
if [[ "${KAFKA_KEEP_LOGS:-0}" != 1 ]]; then rm -rf "$KAFKA_RUN_DIR/logs"; fi
rmdir "$KAFKA_RUN_DIR" 2>/dev/null || true
