import type { PlatformHost, PlatformState, PlatformVm } from './types.js';

/** Equal in everything a consumer of the inventory sees (NIC and IP order does not matter). */
export function sameVm(a: PlatformVm, b: PlatformVm): boolean {
  return JSON.stringify(canonicalVm(a)) === JSON.stringify(canonicalVm(b));
}

export function sameHost(a: PlatformHost, b: PlatformHost): boolean {
  return a.id === b.id && a.name === b.name && a.cluster === b.cluster && a.connection === b.connection;
}

function canonicalVm(v: PlatformVm): PlatformVm {
  const nics = v.nics
    .map((n) => ({ mac: n.mac, network: n.network, ips: [...n.ips].sort() }))
    .sort((x, y) => (x.mac < y.mac ? -1 : x.mac > y.mac ? 1 : 0));
  return {
    id: v.id,
    name: v.name,
    host: v.host,
    power: v.power,
    guestOs: v.guestOs,
    nics,
    snapshot: v.snapshot,
    template: v.template,
  };
}

export interface StateDiff {
  /** New or changed VMs, as they are now. */
  vms: PlatformVm[];
  /** Ids of VMs that are gone. */
  vmsRemoved: string[];
  hosts: PlatformHost[];
  hostsRemoved: string[];
}

/** What changed from `prev` to `next` (pure). */
export function diffStates(prev: PlatformState, next: PlatformState): StateDiff {
  const pv = new Map(prev.vms.map((v) => [v.id, v]));
  const nv = new Map(next.vms.map((v) => [v.id, v]));
  const ph = new Map(prev.hosts.map((h) => [h.id, h]));
  const nh = new Map(next.hosts.map((h) => [h.id, h]));
  return {
    vms: next.vms.filter((v) => !pv.has(v.id) || !sameVm(pv.get(v.id)!, v)),
    vmsRemoved: prev.vms.filter((v) => !nv.has(v.id)).map((v) => v.id),
    hosts: next.hosts.filter((h) => !ph.has(h.id) || !sameHost(ph.get(h.id)!, h)),
    hostsRemoved: prev.hosts.filter((h) => !nh.has(h.id)).map((h) => h.id),
  };
}
