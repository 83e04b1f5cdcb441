#!/usr/bin/env bash
# Stop the simulator start.sh started (same VCSIM_NAME / VCSIM_RUN_DIR) and remove its run dir.
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
name="${VCSIM_NAME:-default}"
run="${VCSIM_RUN_DIR:-$dir/run/$name}"
if [[ -f "$run/vcsim.pid" ]]; then
  pid="$(cat "$run/vcsim.pid")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "vcsim/stop.sh: simulator $pid did not stop within 10s; killing it" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    echo "vcsim/stop.sh: stopped simulator $name (pid $pid)" >&2
  fi
else
  echo "vcsim/stop.sh: no simulator named $name is running" >&2
fi
# Only what start.sh wrote is removed.
rm -f "$run/vcsim.pid" "$run/ca.pem" "$run/stdout" "$run/vcsim.log" "$run/env"
rmdir "$run" 2>/dev/null || true
