#!/usr/bin/env bash
# Install everything Cordon needs on a bare Debian machine (idempotent, fast when done):
# system packages (as root), npm dependencies, the TypeScript build.
#   CORDON_SETUP_SYSTEM=0   skip apt (packages already present or not root)
#   CORDON_SETUP_TEST=1     also the test world: tshark (independent flow counts), rsyslog, Kafka deps,
#                           libvirtd + QEMU (infra/libvirt), the vSphere simulator (infra/vcsim)
#   CORDON_SETUP_BENCH=1    also the benchmarks' baselines: AIDE, fail2ban, tcpreplay, yara
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
log() { echo "setup: $*" >&2; }

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if [[ "${CORDON_SETUP_SYSTEM:-1}" == 1 ]] && command -v apt-get >/dev/null; then
  pkgs=(iproute2 nftables)
  # tshark: independent flow counts; prometheus: its promtool checks the /metrics exposition;
  # rsyslog (+ gnutls, openssl for its test CA): the collector the syslog export is tested against;
  # fail2ban: its standard filters and fail2ban-regex, which the loginspect comparison test runs beside Cordon;
  # chromium: the manager console's browser test (playwright-core drives Debian's build)
  [[ "${CORDON_SETUP_TEST:-0}" == 1 ]] && pkgs+=(tshark prometheus rsyslog rsyslog-gnutls openssl fail2ban chromium)
  [[ "${CORDON_SETUP_BENCH:-0}" == 1 ]] && pkgs+=(aide fail2ban tcpreplay yara)
  for p in "${pkgs[@]}"; do have_pkg "$p" || need+=("$p"); done
  if ((${#need[@]})); then
    if [[ $(id -u) != 0 ]]; then
      log "missing system packages ${need[*]}; run as root or install them (apt-get install ${need[*]})"
    else
      log "installing ${need[*]}"
      export DEBIAN_FRONTEND=noninteractive
      echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections 2>/dev/null || true
      # Packages that ship a daemon (prometheus) must not start it: nothing here may listen
      # beyond what the tests start. policy-rc.d refuses service starts during the install.
      made_policy=0
      if [[ ! -e /usr/sbin/policy-rc.d ]]; then printf '#!/bin/sh\nexit 101\n' >/usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && made_policy=1; fi
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
      if ((made_policy)); then rm -f /usr/sbin/policy-rc.d; fi
    fi
  fi
  if [[ "${CORDON_SETUP_TEST:-0}" == 1 && $(id -u) == 0 ]]; then
    bash infra/kafka/deps.sh
    bash infra/libvirt/deps.sh
  fi
fi
# The vSphere API simulator (govmomi, from the Go module proxy) and its driver, for the
# @cordon/vsphere integration tests and bench/inventory-vsphere.mjs.
if [[ "${CORDON_SETUP_TEST:-0}" == 1 ]]; then
  if command -v go >/dev/null; then
    bash infra/vcsim/build.sh
  else
    log "Go (>= 1.25) is not installed: the vSphere simulator tests will be skipped"
  fi
fi

# npm dependencies: reinstall only when the lock file changed since the last install
stamp=node_modules/.cordon-lock-hash
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f $stamp || "$(cat "$stamp")" != "$want" ]]; then
  log "installing npm dependencies"
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" >"$stamp"
fi

bash native/build.sh
bash native/capture/build.sh
bash native/scan/build.sh
bash packages/libvirt/build.sh
log "building"
npm run --silent build
