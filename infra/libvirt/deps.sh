#!/usr/bin/env bash
# System packages for the libvirt test world, for scripts/setup.sh to call (as root):
# libvirtd with the QEMU driver, virsh, QEMU (TCG is enough: there is no KVM here) and
# qemu-img for the tiny qcow2 disks that make internal snapshots possible.
set -euo pipefail

pkgs=(libvirt-daemon-system libvirt-clients qemu-system-x86 qemu-utils)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
((${#missing[@]} == 0)) && exit 0
if [[ $(id -u) != 0 ]]; then
  echo "libvirt deps.sh: missing ${missing[*]}; not root, so not installing them (apt-get install --no-install-recommends ${missing[*]})" >&2
  exit 0
fi
echo "libvirt deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
