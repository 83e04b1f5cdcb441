#!/usr/bin/env bash
# Define a tiny test domain on the libvirt of env.sh (qemu:///system) and print its UUID.
#   domain.sh define NAME MAC [--disk] [--os LIBOSINFO_ID]
#   domain.sh remove NAME          destroy (if running), undefine with its snapshots, delete its disk
#
# What a test domain is: <domain type='qemu'> (TCG; there is no KVM here), 16 MiB of RAM, one
# vCPU, no OS: SeaBIOS finds nothing to boot and idles. One NIC with the given MAC on a
# user-mode (slirp) backend inside the QEMU process: no tap, no bridge, no libvirt network, so
# qemu:///system needs no "default" network and nothing reaches the host's interfaces. The
# NIC's option ROM is disabled, so the firmware never tries a network boot: the guest sends
# nothing at all. With --disk, a 1 MiB qcow2 disk (in infra/libvirt/run/disks/) makes internal
# snapshots (virsh snapshot-create-as / snapshot-revert) possible. --os puts a libosinfo id in
# <metadata>, as virt-install does, which is where connectors read the guest OS from.
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/env.sh"
virsh_() { timeout 60 virsh -q -c "$LIBVIRT_URI" "$@"; }
usage() { echo "usage: domain.sh define NAME MAC [--disk] [--os ID] | domain.sh remove NAME" >&2; exit 2; }

cmd="${1:-}"; name="${2:-}"
[[ -n "$cmd" && -n "$name" ]] || usage
[[ "$name" =~ ^[A-Za-z0-9_.-]{1,64}$ ]] || { echo "domain.sh: bad domain name '$name'" >&2; exit 2; }
disk_dir="$LIBVIRT_RUN_DIR/disks"
disk="$disk_dir/$name.qcow2"

case "$cmd" in
define)
  mac="${3:-}"
  [[ "$mac" =~ ^([0-9a-f]{2}:){5}[0-9a-f]{2}$ ]] || { echo "domain.sh: MAC must be lower-case aa:bb:cc:dd:ee:ff" >&2; exit 2; }
  shift 3
  with_disk=0; os_id=""
  while (($#)); do
    case "$1" in
    --disk) with_disk=1 ;;
    --os) os_id="${2:?--os needs an id}"; shift ;;
    *) usage ;;
    esac
    shift
  done
  disk_xml=""
  if ((with_disk)); then
    mkdir -p "$disk_dir"
    qemu-img create -q -f qcow2 "$disk" 1M
    disk_xml="<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='$disk'/><target dev='vda' bus='virtio'/></disk>"
  fi
  metadata=""
  if [[ -n "$os_id" ]]; then
    metadata="<metadata><libosinfo:libosinfo xmlns:libosinfo='http://libosinfo.org/xmlns/libvirt/domain/1.0'><libosinfo:os id='$os_id'/></libosinfo:libosinfo></metadata>"
  fi
  xml="$(mktemp)"
  trap 'rm -f "$xml"' EXIT
  cat >"$xml" <<XML
<domain type='qemu'>
  <name>$name</name>
  <title>Cordon test domain</title>
  $metadata
  <memory unit='MiB'>16</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    $disk_xml
    <interface type='user'>
      <mac address='$mac'/>
      <model type='e1000'/>
      <rom enabled='no'/>
    </interface>
    <serial type='null'/>
    <memballoon model='none'/>
  </devices>
</domain>
XML
  virsh_ define "$xml" >/dev/null
  virsh_ domuuid "$name"
  ;;
remove)
  if virsh_ dominfo "$name" >/dev/null 2>&1; then
    virsh_ destroy "$name" >/dev/null 2>&1 || true
    virsh_ undefine "$name" --snapshots-metadata --managed-save >/dev/null 2>&1 || virsh_ undefine "$name" >/dev/null
  fi
  rm -f "$disk"
  ;;
*) usage ;;
esac
