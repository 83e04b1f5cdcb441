import type { ConnectorCursor, PlatformConnector, PlatformEvent, PlatformHost, PlatformVm } from '@cordon/platform';
import type { InventoryRecord, VmEvent } from '@cordon/schemas';

/**
 * The pure part of the inventory stage: what a connector reports → the records on the
 * `inventory` and `vm-events` topics.
 *
 * Host ids are qualified by the platform they come from where the platform's own ids are only
 * unique within it (vSphere's MoRef "host-21" exists on every vCenter, and every ESXi host
 * calls itself "ha-host"): `vc1.example.com/host-21`. File and libvirt host ids are host
 * names already.
 */
export interface Origin {
  connector: PlatformConnector['kind'];
  source: string;
}

export function hostIdOf(origin: Origin, id: string | null): string | null {
  if (id === null) return null;
  if (origin.connector !== 'vsphere') return id;
  return `${new URL(origin.source).host}/${id}`;
}

export function vmRecord(origin: Origin, vm: PlatformVm, nowUs: number): InventoryRecord {
  return {
    kind: 'vm',
    id: vm.id,
    name: vm.name,
    host: hostIdOf(origin, vm.host),
    power: vm.power,
    guest_os: vm.guestOs,
    nics: vm.nics.map((n) => ({ mac: n.mac, ips: [...n.ips], network: n.network })),
    updated_us: nowUs,
    cluster: null,
    connection: null,
    snapshot: vm.snapshot,
    template: vm.template,
    connector: origin.connector,
    source: origin.source,
  };
}

export function hostRecord(origin: Origin, h: PlatformHost, nowUs: number): InventoryRecord {
  return {
    kind: 'host',
    id: hostIdOf(origin, h.id)!,
    name: h.name,
    host: null,
    power: null,
    guest_os: null,
    nics: [],
    updated_us: nowUs,
    cluster: h.cluster,
    connection: h.connection,
    snapshot: null,
    template: false,
    connector: origin.connector,
    source: origin.source,
  };
}

/** The event's id on the topic: the platform's own, qualified by its source (stable across reconnects). */
export const eventIdOf = (origin: Origin, ev: PlatformEvent): string => `${origin.source}#${ev.id}`;

export function vmEventOf(origin: Origin, ev: PlatformEvent): VmEvent {
  return {
    event_id: eventIdOf(origin, ev),
    vm: ev.vm,
    ts_us: Math.round(ev.ts * 1000),
    kind: ev.kind,
    host: hostIdOf(origin, ev.host),
    from_host: hostIdOf(origin, ev.fromHost ?? null),
    snapshot: ev.snapshot ?? null,
    connector: origin.connector,
    vm_name: ev.vmName,
    source_vm: ev.sourceVm ?? null,
    source: origin.source,
  };
}

/** Equal apart from the update time: an unchanged record is not written again. */
export function sameRecord(a: InventoryRecord, b: InventoryRecord): boolean {
  return JSON.stringify({ ...a, updated_us: 0 }) === JSON.stringify({ ...b, updated_us: 0 });
}

/** What a source's checkpoint holds: where its connector resumes. */
export interface SourceCheckpoint {
  cursor: ConnectorCursor;
}
