import { blockView, sortBlocks, statusReport, vmRow, type BlockView, type VmRow } from '@cordon/policy';
import {
  codecFor,
  TOPICS,
  type AgentRecord,
  type Assignment,
  type BlockDecision,
  type BlockStatusReport,
  type InventoryRecord,
} from '@cordon/schemas';
import type { GroupDocument } from './documents.js';
import type { Stored } from './state.js';

/**
 * The pipeline's compacted tables the manager serves from memory (inventory, assignments,
 * agents' heartbeats, blocks), followed live: a list of 10,000 VMs is a walk over a map, not
 * a read of four topics.
 */
export class PipelineViews {
  readonly inventory = new Map<string, InventoryRecord>();
  readonly assignments = new Map<string, Assignment>();
  readonly sensors = new Map<string, AgentRecord>();
  readonly blocks = new Map<string, { key: Buffer; decision: BlockDecision }>();
  /** What the enforcers reported on them (`cordon.block-status.v1`), by the same key. */
  readonly blockReports = new Map<string, BlockStatusReport>();
  /** Each VM's newest alert (last 30 days), refreshed from ClickHouse every few seconds. */
  readonly lastAlerts = new Map<string, { ts: string; signature: string }>();
  /** Bumped by every record applied: what caches of derived rows compare against. */
  version = 0;
  private readonly codecs = {
    inventory: codecFor(TOPICS.inventory),
    assignments: codecFor(TOPICS.assignments),
    agents: codecFor(TOPICS.agents),
    blocks: codecFor(TOPICS.blocks),
    blockStatus: codecFor(TOPICS.blockStatus),
  };

  applyInventory(key: Buffer | null, value: Buffer | null): void {
    this.version++;
    const k = key?.toString() ?? '';
    if (value === null) this.inventory.delete(k);
    else this.inventory.set(k, this.codecs.inventory.decode(value));
  }

  applyAssignment(key: Buffer | null, value: Buffer | null): void {
    this.version++;
    const vm = key?.toString() ?? '';
    if (value === null) {
      this.assignments.delete(vm);
      return;
    }
    const a = this.codecs.assignments.decode(value);
    const have = this.assignments.get(vm);
    if (!have || a.epoch >= have.epoch) this.assignments.set(vm, a);
  }

  applyAgent(key: Buffer | null, value: Buffer | null): void {
    this.version++;
    const id = key?.toString() ?? '';
    if (value === null) this.sensors.delete(id);
    else {
      const a = this.codecs.agents.decode(value);
      this.sensors.set(a.agent, a);
    }
  }

  applyBlock(key: Buffer | null, value: Buffer | null): void {
    this.version++;
    const k = key?.toString() ?? '';
    if (value === null) this.blocks.delete(k);
    else this.blocks.set(k, { key: key!, decision: this.codecs.blocks.decode(value) });
  }

  /** An enforcer's report; one whose value names another key's enforcer or target is ignored (statusReport). */
  applyBlockStatus(key: Buffer | null, value: Buffer | null): void {
    this.version++;
    const k = key?.toString() ?? '';
    const s = statusReport(key, value, this.codecs.blockStatus);
    if (value !== null && s === null) return; // unusable: changes nothing
    if (s === null) this.blockReports.delete(k);
    else this.blockReports.set(k, s);
  }

  hostName(id: string): string {
    return this.inventory.get(`host:${id}`)?.name ?? id;
  }

  hosts(): InventoryRecord[] {
    return [...this.inventory.values()].filter((r) => r.kind === 'host');
  }

  vmRecords(): InventoryRecord[] {
    return [...this.inventory.values()].filter((r) => r.kind === 'vm');
  }

  /** One VM's row with its protection (the same rows `cordon vms` prints). */
  row(rec: InventoryRecord, nowUs: number, names: ReadonlyMap<string, string>): VmRow {
    return vmRow(rec, names, this.assignments, this.sensors, nowUs);
  }

  hostNames(): Map<string, string> {
    return new Map(this.hosts().map((h) => [h.id, h.name]));
  }

  blockViews(nowMs: number): BlockView[] {
    return sortBlocks(
      [...this.blocks.entries()].map(([k, b]) => blockView(b.key, b.decision, nowMs, this.blockReports.get(k))),
    );
  }

  /** The VM a block protects, as far as the tables say: its scope when that is a VM, else the agent's VM. */
  vmOfBlock(b: BlockView): string | null {
    if (this.inventory.has(`vm:${b.scope}`)) return b.scope;
    if (b.enforcer.startsWith('agent:')) return this.sensors.get(b.enforcer.slice(6))?.vm ?? null;
    return null;
  }

  /** The platform a record came from: its connector's URL, or the inventory file. */
  platformOf(rec: InventoryRecord): string {
    return rec.source ?? rec.connector ?? 'inventory file';
  }

  /** The groups (ids, in priority order) a VM belongs to. */
  groupsOf(vm: InventoryRecord, groups: Iterable<Stored<GroupDocument>>): string[] {
    const host = vm.host === null ? undefined : this.inventory.get(`host:${vm.host}`);
    const out: Array<{ id: string; priority: number }> = [];
    for (const g of groups)
      if (matches(g.doc, vm, host, this.platformOf(vm))) out.push({ id: g.id, priority: g.doc.priority });
    return out.sort((a, b) => a.priority - b.priority || a.id.localeCompare(b.id)).map((g) => g.id);
  }
}

const globCache = new Map<string, RegExp>();
function glob(pattern: string): RegExp {
  let re = globCache.get(pattern);
  if (!re) {
    re = new RegExp(
      `^${pattern
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    );
    globCache.set(pattern, re);
  }
  return re;
}

export function matches(
  g: GroupDocument,
  vm: InventoryRecord,
  host: InventoryRecord | undefined,
  platform: string,
): boolean {
  const m = g.match;
  if (m.vms.includes(vm.id) || m.vms.includes(vm.name)) return true;
  if (vm.host !== null && (m.hosts.includes(vm.host) || (host && m.hosts.includes(host.name)))) return true;
  if (host?.cluster && m.clusters.includes(host.cluster)) return true;
  if (m.platforms.includes(platform)) return true;
  return m.names.some((p) => glob(p).test(vm.id) || glob(p).test(vm.name));
}
