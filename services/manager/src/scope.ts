import type { InventoryRecord } from '@cordon/schemas';
import type { ManagerDeps } from './deps.js';
import type { Identity } from './identity.js';

/**
 * Scoping: an identity whose role is scoped to VM groups sees and acts on the VMs of those
 * groups only. `vmsInScope` is null for an unscoped identity (every VM).
 */
export function vmsInScope(d: ManagerDeps, identity: Identity): Set<string> | null {
  if (identity.groups.length === 0) return null;
  const groups = [...d.state.groups.values()].filter((g) => identity.groups.includes(g.id));
  const out = new Set<string>();
  for (const vm of d.views.vmRecords()) if (d.views.groupsOf(vm, groups).length) out.add(vm.id);
  return out;
}

export function vmInScope(d: ManagerDeps, identity: Identity, vm: InventoryRecord | string | null): boolean {
  if (identity.groups.length === 0) return true;
  if (vm === null) return false;
  const rec = typeof vm === 'string' ? d.views.inventory.get(`vm:${vm}`) : vm;
  if (!rec) return false;
  const groups = [...d.state.groups.values()].filter((g) => identity.groups.includes(g.id));
  return d.views.groupsOf(rec, groups).length > 0;
}
