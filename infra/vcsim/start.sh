#!/usr/bin/env bash
# Start the vSphere API simulator in the background, wait until it serves, and print the lines
# clients need (VCSIM_URL, VCSIM_CA, VCSIM_USERNAME, VCSIM_PASSWORD, VCSIM_MODE, VCSIM_PID).
#   infra/vcsim/start.sh [vcsim flags: -esx | -dc N -cluster N -host N -standalone-host N -vm N ...]
#   VCSIM_NAME (default)       several simulators run side by side under different names
#   VCSIM_RUN_DIR (run/NAME)   pid file, CA, stdout and log of this simulator
#   VCSIM_START_TIMEOUT_S (120) a 1,000-VM model takes a few seconds to create on 2 cores
# The binary comes from build.sh (run it first, or set CORDON_SETUP_TEST=1 for scripts/setup.sh).
set -euo pipefail
dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
name="${VCSIM_NAME:-default}"
[[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || { echo "vcsim/start.sh: VCSIM_NAME must be [A-Za-z0-9._-]+" >&2; exit 1; }
run="${VCSIM_RUN_DIR:-$dir/run/$name}"
timeout="${VCSIM_START_TIMEOUT_S:-120}"
bin="$dir/bin/vcsim"
[[ -x "$bin" ]] || { echo "vcsim/start.sh: $bin is missing; run infra/vcsim/build.sh" >&2; exit 1; }

if [[ -f "$run/vcsim.pid" ]] && kill -0 "$(cat "$run/vcsim.pid")" 2>/dev/null; then
  echo "vcsim/start.sh: a simulator named $name is already running (pid $(cat "$run/vcsim.pid")); stop it with VCSIM_NAME=$name infra/vcsim/stop.sh" >&2
  exit 1
fi
rm -rf "$run"
mkdir -p "$run"

# setsid: the simulator outlives this script and is not killed by the caller's Ctrl-C.
setsid "$bin" -ca-file "$run/ca.pem" "$@" >"$run/stdout" 2>"$run/vcsim.log" </dev/null &
pid=$!
echo "$pid" >"$run/vcsim.pid"

deadline=$((SECONDS + timeout))
until grep -q '^VCSIM_READY=1$' "$run/stdout" 2>/dev/null; do
  if ! kill -0 "$pid" 2>/dev/null; then
    echo "vcsim/start.sh: the simulator exited during start-up:" >&2
    tail -n 20 "$run/vcsim.log" >&2 || true
    rm -f "$run/vcsim.pid"
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    kill -TERM "$pid" 2>/dev/null || true
    echo "vcsim/start.sh: the simulator did not serve within ${timeout}s" >&2
    exit 1
  fi
  sleep 0.1
done
grep '^VCSIM_' "$run/stdout" | grep -v '^VCSIM_READY=' | tee "$run/env"
echo "VCSIM_RUN_DIR=$run"
echo "vcsim/start.sh: simulator $name running (pid $pid, $(grep '^VCSIM_URL=' "$run/stdout" | cut -d= -f2-))" >&2
