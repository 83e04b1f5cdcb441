import { readTable, type Bus, type ProduceRecord } from '@cordon/bus';
import type { Context } from '@cordon/runtime';
import { codecFor, TOPICS, type InventoryRecord, type PolicyRecord } from '@cordon/schemas';
import { inventoryKey, inventoryRecords, readInventoryFile, sameInventory } from './inventory.js';
import { compilePolicyFile, policyRecordKey, rulesetId } from './policy.js';

/**
 * What `cordon policy apply FILE` and `cordon inventory apply FILE` do. The CLI parses the
 * command line and opens the bus (or asks the running instance to do this); the rest is here.
 * With `dryRun` the file is validated and compared with the topic, and nothing is written.
 * Applying is idempotent: records equal to what the topic holds are not written again, and
 * the policy's version only moves when its document changes.
 */
export interface ApplyDeps {
  bus: Bus;
  ctx: Context;
  /** The data dir, where `ruleSets` are installed (`cordon rules update`). */
  dataDir?: string;
}

export interface PolicyApplyResult {
  id: string;
  version: number;
  changed: boolean;
  rulesetRecords: number;
  /** Records that differ from the topic's: written, or with dryRun only counted. */
  records: number;
  written: number;
}

export async function applyPolicyFile(
  deps: Pick<ApplyDeps, 'bus' | 'ctx' | 'dataDir'>,
  file: string,
  opts: { by?: string; dryRun?: boolean } = {},
): Promise<PolicyApplyResult> {
  const { bus, ctx } = deps;
  const compiled = compilePolicyFile(file, deps.dataDir === undefined ? {} : { dataDir: deps.dataDir });
  const codec = codecFor(TOPICS.policy);
  const current = new Map<string, PolicyRecord>();
  for (const r of (await readTable(bus, TOPICS.policy)).values()) {
    if (r.key && r.value) current.set(r.key.toString(), codec.decode(r.value));
  }
  const now = ctx.clock.now() * 1000;
  const by = opts.by ?? `cli:${process.env.USER ?? 'unknown'}`;
  const records: ProduceRecord[] = [];
  const put = (kind: PolicyRecord['kind'], id: string, document: string, version: number) => {
    records.push({
      key: Buffer.from(policyRecordKey(kind, id)),
      value: codec.encode({ kind, id, version, document, updated_us: now, updated_by: by }),
    });
  };
  // rulesets first: a dpi instance that sees the new policy can already find its rules
  for (const rs of compiled.rulesets) {
    const id = rulesetId(rs.name, rs.part);
    const doc = JSON.stringify(rs);
    const old = current.get(policyRecordKey('ruleset', id));
    if (old?.document !== doc) put('ruleset', id, doc, (old?.version ?? 0) + 1);
  }
  // parts left over from a longer earlier version of the same file
  for (const rs of compiled.document.rulesets) {
    for (let part = rs.parts; current.has(policyRecordKey('ruleset', rulesetId(rs.name, part))); part++) {
      records.push({ key: Buffer.from(policyRecordKey('ruleset', rulesetId(rs.name, part))), value: null });
    }
  }
  const id = compiled.document.id;
  const doc = JSON.stringify(compiled.document);
  const old = current.get(policyRecordKey('policy', id));
  const changed = old?.document !== doc;
  const version = changed ? (old?.version ?? 0) + 1 : old!.version;
  if (changed) put('policy', id, doc, version);
  if (opts.dryRun) {
    ctx.log.info(
      { policy: id, version, changed, wouldWrite: records.length },
      'Policy checked (dry run): nothing was written.',
    );
    return { id, version, changed, rulesetRecords: compiled.rulesets.length, records: records.length, written: 0 };
  }
  if (records.length) await sendAll(bus, TOPICS.policy, records);
  ctx.log.info({ policy: id, version, changed, written: records.length }, 'Policy applied.');
  return {
    id,
    version,
    changed,
    rulesetRecords: compiled.rulesets.length,
    records: records.length,
    written: records.length,
  };
}

export interface InventoryApplyResult {
  hosts: number;
  vms: number;
  /** Records that differ from the topic's (including removals): written, or with dryRun only counted. */
  records: number;
  written: number;
  pruned: number;
}

export async function applyInventoryFile(
  deps: Pick<ApplyDeps, 'bus' | 'ctx'>,
  file: string,
  opts: { dryRun?: boolean; prune?: boolean } = {},
): Promise<InventoryApplyResult> {
  const { bus, ctx } = deps;
  const inv = readInventoryFile(file);
  const codec = codecFor(TOPICS.inventory);
  const wanted = inventoryRecords(inv, ctx.clock.now() * 1000);
  const current = new Map<string, InventoryRecord>();
  for (const r of (await readTable(bus, TOPICS.inventory)).values()) {
    if (r.key && r.value) current.set(r.key.toString(), codec.decode(r.value));
  }
  const records: ProduceRecord[] = [];
  for (const [key, rec] of wanted) {
    const old = current.get(key);
    if (!old || !sameInventory(old, rec)) records.push({ key: Buffer.from(key), value: codec.encode(rec) });
  }
  // Only with --prune: several files (one per host, say) may share the topic.
  let pruned = 0;
  if (opts.prune) {
    for (const key of current.keys()) {
      if (!wanted.has(key)) {
        records.push({ key: Buffer.from(key), value: null });
        pruned++;
      }
    }
  }
  const vms = [...wanted.keys()].filter((k) => k.startsWith(inventoryKey('vm', ''))).length;
  if (opts.dryRun) {
    ctx.log.info(
      { hosts: wanted.size - vms, vms, wouldWrite: records.length, wouldPrune: pruned },
      'Inventory checked (dry run): nothing was written.',
    );
    return { hosts: wanted.size - vms, vms, records: records.length, written: 0, pruned };
  }
  if (records.length) await sendAll(bus, TOPICS.inventory, records);
  ctx.log.info({ hosts: wanted.size - vms, vms, written: records.length, pruned }, 'Inventory applied.');
  return { hosts: wanted.size - vms, vms, records: records.length, written: records.length, pruned };
}

async function sendAll(bus: Bus, topic: string, records: ProduceRecord[]): Promise<void> {
  const producer = bus.producer();
  try {
    await producer.send(topic, records);
  } finally {
    await producer.close();
  }
}
