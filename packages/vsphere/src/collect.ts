/**
 * The inventory as the PropertyCollector reports it: which properties we ask for, the raw values
 * per managed object, and their translation into PlatformVm / PlatformHost. Pure: no I/O, so the
 * recorded-response tests exercise all of it.
 */
import type { PlatformHost, PlatformNic, PlatformState, PlatformVm } from '@cordon/platform';
import type { MoRef, XmlElement } from './soap.js';
import type { ObjectContent, ObjectUpdate, PropertyFilterSpec, PropertySpec } from './vim25.js';
import { toMoRef } from './vim25.js';

export const VM_PROPS = [
  'name',
  'config.instanceUuid',
  'config.template',
  'config.guestFullName',
  'config.hardware.device',
  'runtime.powerState',
  'runtime.host',
  'guest.guestId',
  'guest.guestFullName',
  'guest.net',
  'snapshot',
];
export const HOST_PROPS = ['name', 'parent', 'runtime.connectionState', 'runtime.inMaintenanceMode'];
export const CLUSTER_PROPS = ['name'];
/** Network names for NIC backings (DistributedVirtualPortgroup is a Network too). */
export const NETWORK_PROPS = ['name'];

export const VIEW_TYPES = ['VirtualMachine', 'HostSystem', 'ClusterComputeResource', 'Network'];

export const INVENTORY_PROP_SPECS: PropertySpec[] = [
  { type: 'VirtualMachine', pathSet: VM_PROPS },
  { type: 'HostSystem', pathSet: HOST_PROPS },
  { type: 'ClusterComputeResource', pathSet: CLUSTER_PROPS },
  { type: 'Network', pathSet: NETWORK_PROPS },
];

/** Everything in a container view, with the inventory's properties. */
export function viewSpec(view: MoRef): PropertyFilterSpec {
  return {
    propSet: INVENTORY_PROP_SPECS,
    objectSet: [{ obj: view, skip: true, selectSet: [{ name: 'view', type: 'ContainerView', path: 'view' }] }],
  };
}

const WATCHED: Record<string, readonly string[]> = {
  VirtualMachine: VM_PROPS,
  HostSystem: HOST_PROPS,
  ClusterComputeResource: CLUSTER_PROPS,
};

/** vSphere escapes '%', '/' and '\' in entity names. */
export function unescapeName(name: string): string {
  return name.replace(/%(25|2[fF]|5[cC])/g, (_, h: string) => String.fromCharCode(parseInt(h, 16)));
}

function isNetworkType(type: string): boolean {
  return type === 'Network' || type === 'DistributedVirtualPortgroup' || type === 'OpaqueNetwork';
}

type Props = Map<string, XmlElement>;

/** What changed in one applied update, for the connector to report. */
export interface InventoryChange {
  vms: Set<string>;
  removedVms: Set<string>;
  hosts: Set<string>;
  /** Objects whose change named a sub-path we cannot apply in place: re-read them. */
  refetch: MoRef[];
}

export function emptyChange(): InventoryChange {
  return { vms: new Set(), removedVms: new Set(), hosts: new Set(), refetch: [] };
}

/**
 * Raw properties by MoRef value, and the MoRef → instanceUuid map that outlives a VM (a
 * removed VM's uuid must still be known to report it deleted).
 */
export class Inventory {
  readonly vms = new Map<string, Props>();
  readonly hosts = new Map<string, Props>();
  readonly clusters = new Map<string, string>();
  readonly networks = new Map<string, string>();
  private readonly uuids = new Map<string, string>();
  /**
   * VMs forgotten on their VmRemovedEvent before the property collector's leave arrived: a
   * modify still on its way for one must not bring it back (it would be reported again, then
   * removed a second time when the leave comes).
   */
  private readonly destroyed = new Set<string>();

  uuidOf(vmRef: string): string | null {
    return this.uuids.get(vmRef) ?? null;
  }

  learnUuid(vmRef: string, uuid: string): void {
    if (uuid !== '') this.uuids.set(vmRef, uuid);
  }

  /** Replace everything with a full read (RetrievePropertiesEx or the first WaitForUpdatesEx). */
  reset(): void {
    this.vms.clear();
    this.hosts.clear();
    this.clusters.clear();
    this.networks.clear();
    this.destroyed.clear();
  }

  loadContent(oc: ObjectContent, change: InventoryChange = emptyChange()): InventoryChange {
    return this.apply(
      {
        kind: 'enter',
        obj: oc.obj,
        changes: [...oc.props].map(([name, val]) => ({ name, op: 'assign', val })),
        missing: [],
      },
      change,
    );
  }

  apply(u: ObjectUpdate, change: InventoryChange = emptyChange()): InventoryChange {
    const { type, value } = u.obj;
    if (isNetworkType(type)) {
      const name = u.changes.find((c) => c.name === 'name');
      if (u.kind === 'leave') this.networks.delete(value);
      else if (name?.val) this.networks.set(value, unescapeName(name.val.text));
      return change;
    }
    if (type === 'ClusterComputeResource') {
      const name = u.changes.find((c) => c.name === 'name');
      if (u.kind === 'leave') this.clusters.delete(value);
      else if (name?.val) this.clusters.set(value, unescapeName(name.val.text));
      // Hosts report their cluster by name.
      for (const [h, props] of this.hosts) if (props.get('parent')?.text === value) change.hosts.add(h);
      return change;
    }
    const table = type === 'VirtualMachine' ? this.vms : type === 'HostSystem' ? this.hosts : null;
    if (table === null) return change;
    if (type === 'VirtualMachine' && this.destroyed.has(value)) {
      // the collector catching up on a VM already gone: its leave ends that; an enter is a new VM
      if (u.kind !== 'enter') {
        if (u.kind === 'leave') this.destroyed.delete(value);
        return change;
      }
      this.destroyed.delete(value);
    }
    if (u.kind === 'leave') {
      if (table.delete(value) && type === 'VirtualMachine') change.removedVms.add(value);
      if (type === 'HostSystem') change.hosts.delete(value);
      return change;
    }
    let props = table.get(value);
    if (props === undefined || u.kind === 'enter') {
      props = props ?? new Map();
      table.set(value, props);
    }
    const watched = WATCHED[type] ?? [];
    for (const c of u.changes) {
      if (watched.includes(c.name)) {
        if (c.op === 'remove' || c.op === 'indirectRemove' || c.val === null) props.delete(c.name);
        else props.set(c.name, c.val);
      } else if (watched.some((w) => c.name.startsWith(`${w}.`) || c.name.startsWith(`${w}[`))) {
        change.refetch.push(u.obj);
      }
    }
    if (type === 'VirtualMachine') {
      const uuid = props.get('config.instanceUuid')?.text;
      if (uuid) this.learnUuid(value, uuid);
      change.vms.add(value);
      change.removedVms.delete(value);
    } else change.hosts.add(value);
    return change;
  }

  /** Forget a VM (VmRemovedEvent when the property collector missed the leave). True when it was known. */
  removeVm(vmRef: string): boolean {
    if (!this.vms.delete(vmRef)) return false;
    this.destroyed.add(vmRef);
    return true;
  }

  vm(vmRef: string): PlatformVm | null {
    const props = this.vms.get(vmRef);
    return props === undefined ? null : this.toVm(props);
  }

  host(hostRef: string): PlatformHost | null {
    const props = this.hosts.get(hostRef);
    return props === undefined ? null : this.toHost(hostRef, props);
  }

  /** The VM's host MoRef value as last reported. */
  vmHost(vmRef: string): string | null {
    return this.vms.get(vmRef)?.get('runtime.host')?.text ?? null;
  }

  state(): PlatformState {
    const hosts: PlatformHost[] = [];
    for (const [ref, props] of this.hosts) hosts.push(this.toHost(ref, props));
    const vms: PlatformVm[] = [];
    for (const props of this.vms.values()) {
      const vm = this.toVm(props);
      if (vm !== null) vms.push(vm);
    }
    hosts.sort((a, b) => a.id.localeCompare(b.id));
    vms.sort((a, b) => a.id.localeCompare(b.id));
    return { hosts, vms };
  }

  private toHost(ref: string, props: Props): PlatformHost {
    const parent = props.get('parent');
    const parentRef = parent ? toMoRef(parent) : null;
    const cluster =
      parentRef?.type === 'ClusterComputeResource' ? (this.clusters.get(parentRef.value) ?? parentRef.value) : null;
    let connection: PlatformHost['connection'] = 'unknown';
    const state = props.get('runtime.connectionState')?.text;
    if (props.get('runtime.inMaintenanceMode')?.text === 'true') connection = 'maintenance';
    else if (state === 'connected') connection = 'connected';
    else if (state === 'disconnected' || state === 'notResponding') connection = 'disconnected';
    return { id: ref, name: unescapeName(props.get('name')?.text ?? ref), cluster, connection };
  }

  /** Null while the VM has no instanceUuid yet (being created). */
  private toVm(props: Props): PlatformVm | null {
    const id = props.get('config.instanceUuid')?.text;
    if (!id) return null;
    const power = props.get('runtime.powerState')?.text;
    return {
      id,
      name: unescapeName(props.get('name')?.text ?? ''),
      host: props.get('runtime.host')?.text ?? null,
      power: power === 'poweredOn' ? 'on' : power === 'suspended' ? 'suspended' : 'off',
      guestOs:
        props.get('guest.guestFullName')?.text ||
        props.get('config.guestFullName')?.text ||
        props.get('guest.guestId')?.text ||
        null,
      nics: this.nics(props.get('config.hardware.device'), props.get('guest.net')),
      snapshot: snapshotName(props.get('snapshot')),
      template: props.get('config.template')?.text === 'true',
    };
  }

  private nics(devices: XmlElement | undefined, guestNet: XmlElement | undefined): PlatformNic[] {
    const ips = new Map<string, string[]>();
    for (const nic of guestNet?.children ?? []) {
      const mac = nic.str('macAddress')?.toLowerCase();
      if (!mac) continue;
      const list = ips.get(mac) ?? [];
      for (const ip of nic.all('ipAddress')) if (ip.text && !list.includes(ip.text)) list.push(ip.text);
      ips.set(mac, list);
    }
    const out: PlatformNic[] = [];
    for (const dev of devices?.children ?? []) {
      const mac = dev.str('macAddress');
      if (!mac) continue; // not a network card
      const m = mac.toLowerCase();
      out.push({ mac: m, network: this.networkOf(dev.child('backing')), ips: ips.get(m) ?? [] });
    }
    return out;
  }

  private networkOf(backing: XmlElement | null): string | null {
    if (backing === null) return null;
    const net = backing.child('network');
    if (net !== null) return this.networks.get(net.text) ?? backing.str('deviceName') ?? net.text;
    const pg = backing.at('port', 'portgroupKey')?.text;
    if (pg) return this.networks.get(pg) ?? pg;
    return backing.str('deviceName') ?? backing.str('opaqueNetworkId') ?? null;
  }
}

/** The name of `currentSnapshot` in the snapshot tree. */
export function snapshotName(info: XmlElement | undefined): string | null {
  const current = info?.child('currentSnapshot')?.text;
  if (!info || !current) return null;
  const stack = [...info.all('rootSnapshotList')];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (node.child('snapshot')?.text === current) return unescapeName(node.str('name') ?? '');
    stack.push(...node.all('childSnapshotList'));
  }
  return null;
}
