#!/usr/bin/env bash
# Shared settings of the libvirt test-world scripts (sourced, not run).
#   LIBVIRT_RUN_DIR (infra/libvirt/run)   pid files, logs and the marker of what start.sh started
#   LIBVIRT_URI (qemu:///system)          the URI start.sh waits for and the tests use
#   LIBVIRT_START_TIMEOUT_S (60)
LIBVIRT_INFRA_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LIBVIRT_RUN_DIR="${LIBVIRT_RUN_DIR:-$LIBVIRT_INFRA_DIR/run}"
LIBVIRT_URI="${LIBVIRT_URI:-qemu:///system}"
LIBVIRT_START_TIMEOUT_S="${LIBVIRT_START_TIMEOUT_S:-60}"
LIBVIRTD_PID_FILE="$LIBVIRT_RUN_DIR/libvirtd.pid"
VIRTLOGD_PID_FILE="$LIBVIRT_RUN_DIR/virtlogd.pid"

# True when the pid file names a live process whose command is the expected daemon (a stale
# pid file whose number was reused by another process does not count).
libvirt_pid_alive() { # <pid file> <comm>
  local pid
  [[ -f "$1" ]] || return 1
  pid="$(cat "$1" 2>/dev/null)"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$2" ]]
}
libvirt_answers() { timeout 10 virsh -q -c "$LIBVIRT_URI" version >/dev/null 2>&1; }
