#!/usr/bin/env bash
# Stop the libvirtd and virtlogd that start.sh started (their pid files in infra/libvirt/run/)
# and remove what start.sh wrote. A daemon that start.sh did not start is left running.
# Domains are not undefined here: the tests remove the ones they define. QEMU processes still
# running when libvirtd stops keep running (that is libvirt's design); the ones of the test
# domains (named cordon-t-*) are destroyed first so nothing is left behind.
# LIBVIRT_KEEP_LOGS=1 keeps the logs for a post-mortem.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

stop_daemon() { # <pid file> <comm>
  local pid
  if ! libvirt_pid_alive "$1" "$2"; then
    [[ -f "$1" ]] && echo "stop.sh: $2 from $1 is not running" >&2
    rm -f "$1"
    return 0
  fi
  pid="$(cat "$1")"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then
    echo "stop.sh: $2 $pid did not stop within 10s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  echo "stop.sh: stopped $2 $pid" >&2
  rm -f "$1"
}

if libvirt_pid_alive "$LIBVIRTD_PID_FILE" libvirtd; then
  for d in $(timeout 20 virsh -q -c "$LIBVIRT_URI" list --name 2>/dev/null | grep '^cordon-t-' || true); do
    timeout 20 virsh -q -c "$LIBVIRT_URI" destroy "$d" >/dev/null 2>&1 || true
  done
else
  [[ -f "$LIBVIRTD_PID_FILE" ]] || echo "stop.sh: no libvirtd started by start.sh; nothing to stop" >&2
fi
stop_daemon "$LIBVIRTD_PID_FILE" libvirtd
stop_daemon "$VIRTLOGD_PID_FILE" virtlogd
if [[ "${LIBVIRT_KEEP_LOGS:-0}" != 1 ]]; then rm -f "$LIBVIRT_RUN_DIR/libvirtd.log" "$LIBVIRT_RUN_DIR/virtlogd.log"; fi
rmdir "$LIBVIRT_RUN_DIR/disks" "$LIBVIRT_RUN_DIR" 2>/dev/null || true
