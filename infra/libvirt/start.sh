#!/usr/bin/env bash
# Start virtlogd and libvirtd by hand (there is no systemd here) for the libvirt test world,
# and wait until `virsh -c qemu:///system version` answers.
#   - pid files, logs and a marker of what this script started go to infra/libvirt/run/;
#     stop.sh stops exactly that and nothing else.
#   - A libvirtd (or virtlogd) that is already running is used as it is and never stopped:
#     one started by this script earlier is reused, one started by someone else is left alone.
#   - The stock configuration is used: the QEMU driver runs guests as libvirt-qemu in TCG mode
#     (no KVM here). No network is started: the test domains use user-mode NICs and Debian's
#     "default" network is not autostarted, so nothing touches the host's interfaces.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"

for b in libvirtd virtlogd virsh; do
  command -v "$b" >/dev/null || { echo "start.sh: $b is not installed; run infra/libvirt/deps.sh as root" >&2; exit 1; }
done
if [[ $(id -u) != 0 ]]; then
  echo "start.sh: libvirtd for qemu:///system must run as root; not starting it" >&2
  exit 1
fi
mkdir -p "$LIBVIRT_RUN_DIR"

if libvirt_answers; then
  if libvirt_pid_alive "$LIBVIRTD_PID_FILE" libvirtd; then
    echo "start.sh: reusing libvirtd started earlier by this script (pid $(cat "$LIBVIRTD_PID_FILE"))" >&2
  else
    echo "start.sh: a libvirtd not started by this script already answers on $LIBVIRT_URI; using it as it is (stop.sh will not stop it)" >&2
  fi
  echo "LIBVIRT_URI=$LIBVIRT_URI"
  exit 0
fi
if pgrep -x libvirtd >/dev/null && ! libvirt_pid_alive "$LIBVIRTD_PID_FILE" libvirtd; then
  echo "start.sh: a libvirtd (pid $(pgrep -x libvirtd | tr '\n' ' ')) not started by this script is running but does not answer on $LIBVIRT_URI; not touching it, stop or fix it first" >&2
  exit 1
fi

# virtlogd holds the guests' console logs; libvirtd's QEMU driver refuses to start a guest without it.
if libvirt_pid_alive "$VIRTLOGD_PID_FILE" virtlogd; then
  echo "start.sh: reusing virtlogd started earlier by this script (pid $(cat "$VIRTLOGD_PID_FILE"))" >&2
elif pgrep -x virtlogd >/dev/null; then
  echo "start.sh: using the virtlogd already running (pid $(pgrep -x virtlogd | head -1)), not started by this script" >&2
else
  rm -f "$VIRTLOGD_PID_FILE"
  LIBVIRT_LOG_OUTPUTS="3:file:$LIBVIRT_RUN_DIR/virtlogd.log" virtlogd --daemon --pid-file "$VIRTLOGD_PID_FILE"
  for _ in $(seq 1 50); do libvirt_pid_alive "$VIRTLOGD_PID_FILE" virtlogd && break; sleep 0.1; done
  libvirt_pid_alive "$VIRTLOGD_PID_FILE" virtlogd || { echo "start.sh: virtlogd did not start; see $LIBVIRT_RUN_DIR/virtlogd.log" >&2; exit 1; }
  echo "start.sh: started virtlogd (pid $(cat "$VIRTLOGD_PID_FILE"))" >&2
fi

if ! libvirt_pid_alive "$LIBVIRTD_PID_FILE" libvirtd; then
  rm -f "$LIBVIRTD_PID_FILE"
  # Level 3 (warnings and errors) keeps the log small; set LIBVIRT_LOG_LEVEL=1 to debug.
  # A /dev/kvm that root can open but the guests' user (libvirt-qemu) cannot makes libvirt
  # probe QEMU as KVM-capable, then find KVM unusable and probe again on every define (35-45 s
  # each, measured). The test guests are TCG anyway: libvirtd gets a mount namespace of its own
  # where /dev/kvm is /dev/null, so every probe agrees (a define then takes about a second).
  # The shared device itself is not touched.
  launch=(libvirtd --daemon --pid-file "$LIBVIRTD_PID_FILE")
  if [[ -e /dev/kvm ]] && id libvirt-qemu >/dev/null 2>&1 && ! runuser -u libvirt-qemu -- test -r /dev/kvm -a -w /dev/kvm 2>/dev/null \
    && command -v unshare >/dev/null; then
    launch=(unshare --mount --propagation private -- sh -c 'mount --bind /dev/null /dev/kvm && exec "$@"' libvirtd-ns "${launch[@]}")
    echo "start.sh: /dev/kvm is not usable by libvirt-qemu: libvirtd runs with it hidden (TCG guests, no re-probe per define)" >&2
  fi
  LIBVIRT_LOG_OUTPUTS="${LIBVIRT_LOG_LEVEL:-3}:file:$LIBVIRT_RUN_DIR/libvirtd.log" "${launch[@]}"
fi
deadline=$((SECONDS + LIBVIRT_START_TIMEOUT_S))
until libvirt_answers; do
  if ((SECONDS >= deadline)); then
    echo "start.sh: libvirtd did not answer on $LIBVIRT_URI within ${LIBVIRT_START_TIMEOUT_S}s; last lines of $LIBVIRT_RUN_DIR/libvirtd.log:" >&2
    tail -n 20 "$LIBVIRT_RUN_DIR/libvirtd.log" >&2 2>/dev/null || true
    exit 1
  fi
  if [[ -f "$LIBVIRTD_PID_FILE" ]] && ! libvirt_pid_alive "$LIBVIRTD_PID_FILE" libvirtd; then
    echo "start.sh: libvirtd exited during start-up; last lines of $LIBVIRT_RUN_DIR/libvirtd.log:" >&2
    tail -n 20 "$LIBVIRT_RUN_DIR/libvirtd.log" >&2 2>/dev/null || true
    exit 1
  fi
  sleep 0.2
done
echo "start.sh: started libvirtd $(virsh -q -c "$LIBVIRT_URI" version --daemon | sed -n 's/.*libvirtd \([0-9.]*\).*/\1/p;s/^Running against daemon: *//p' | head -1) (pid $(cat "$LIBVIRTD_PID_FILE")), logs in $LIBVIRT_RUN_DIR" >&2
echo "LIBVIRT_URI=$LIBVIRT_URI"
