import { createHash } from 'node:crypto';
import {
  blockActionFor,
  plainIpFamily,
  policyFileSchema,
  statusReport,
  type AssignmentView,
  type InventoryView,
  type PolicyDocument,
  type PolicyView,
  type VmInfo,
} from '@cordon/policy';
import {
  agentEnforcer,
  blockKey,
  codecFor,
  TOPICS,
  watchdogEnforcer,
  type Alert,
  type BlockDecision,
} from '@cordon/schemas';
import { ERR_RESPONDER_ALERT } from './errors.js';

/**
 * The responder stage, pure part: an alert plus the current views (policy, inventory,
 * assignments, blocks already decided) → at most one BlockDecision. No clock of its own
 * (`nowUs` is passed) and no I/O, so a decision is reproducible from its inputs.
 *
 * - The attacked VM is the alert's `vm`, else the inventory VM owning the alert's
 *   destination (then source) address; the target is the other side of the alert.
 * - The enforcer is the VM's agent when `assignments` says the VM is agent-protected,
 *   else the watchdog of the VM's host (inventory).
 * - Idempotent under replay: the block id is derived from the alert id; an alert whose
 *   block is already the current one, an alert that arrives while its target is still
 *   blocked on that enforcer, and an alert older than the current block are all no-ops —
 *   none of them creates, renews or extends a block.
 * - Repeat offenders: a target whose last block (on any enforcer) was created within
 *   `repeatWindowS` gets that block's TTL × `repeatMultiplier`, capped at `maxTtlS`.
 */

export type SkipReason =
  | 'not-blocking' // detect mode, pass rule, or an alert-only rule with no mode set
  | 'unresolved' // no VM, host or attacker side can be told from the alert and inventory
  | 'duplicate' // this alert's block is already the current decision
  | 'active' // the target is blocked on this enforcer right now
  | 'stale'; // the alert predates the current decision for this target

export type Decision =
  | {
      kind: 'block';
      key: Buffer;
      decision: BlockDecision;
      /** the target was blocked within the repeat window */ repeat: boolean;
    }
  | { kind: 'skip'; reason: SkipReason; detail: string };

/**
 * Decisions already on `cordon.blocks.v1`, by key and by target: idempotency and repeat
 * offenders; and the failures their enforcers reported on `cordon.block-status.v1`, which let a
 * new alert decide the target again (the enforcer tries once more).
 */
export class BlockHistory {
  private readonly byKey = new Map<string, BlockDecision>();
  private readonly byTarget = new Map<string, Map<string, BlockDecision>>();
  /** Block ids whose enforcer reported them failed, by key. */
  private readonly failedIds = new Map<string, string>();
  private readonly codec = codecFor(TOPICS.blocks);
  private readonly statusCodec = codecFor(TOPICS.blockStatus);

  /** Apply a record of the blocks topic (null value: lifted). Throws on a value that does not decode. */
  apply(key: Buffer | null, value: Buffer | null): void {
    const k = key?.toString() ?? '';
    this.put(k, value === null ? null : this.codec.decode(value));
  }

  put(key: string, d: BlockDecision | null): void {
    const old = this.byKey.get(key);
    if (old) this.byTarget.get(targetIp(old))?.delete(key);
    if (d === null) {
      this.byKey.delete(key);
      return;
    }
    this.byKey.set(key, d);
    const t = targetIp(d);
    let m = this.byTarget.get(t);
    if (!m) this.byTarget.set(t, (m = new Map()));
    m.set(key, d);
  }

  current(key: string): BlockDecision | undefined {
    return this.byKey.get(key);
  }

  /**
   * Apply a record of the status topic. A report whose value names another key is ignored
   * (statusReport); an unreadable one too — a report never makes, changes or lifts a decision.
   */
  applyStatus(key: Buffer | null, value: Buffer | null): void {
    const k = key?.toString() ?? '';
    const s = statusReport(key, value, this.statusCodec);
    if (value !== null && s === null) return; // unusable: changes nothing
    if (s?.status === 'failed') this.failedIds.set(k, s.block_id);
    else this.failedIds.delete(k);
  }

  /** Whether the decision under `key` is one its enforcer reported it could not put in force. */
  failed(key: string): boolean {
    const d = this.byKey.get(key);
    return d !== undefined && (d.status === 'failed' || this.failedIds.get(key) === d.block_id);
  }

  /** The newest decision for a target on any enforcer. */
  lastForTarget(ip: string): BlockDecision | undefined {
    let best: BlockDecision | undefined;
    for (const d of this.byTarget.get(ip)?.values() ?? []) if (!best || d.created_us > best.created_us) best = d;
    return best;
  }

  get size(): number {
    return this.byKey.size;
  }

  /** Every decision, with its key. */
  entries(): IterableIterator<[string, BlockDecision]> {
    return this.byKey.entries();
  }
}

/**
 * A VM's protector changed (it migrated, its agent took over or went silent): the VM's blocks
 * in force move to its new enforcer — the same decision, re-addressed, with its remaining TTL —
 * and their old keys are lifted. Blocks follow the VM, not the host it was on.
 */
export function readdress(
  vmId: string,
  enforcer: string,
  blocks: BlockHistory,
  nowUs: number,
): Array<{ from: string; key: Buffer; decision: BlockDecision }> {
  const out: Array<{ from: string; key: Buffer; decision: BlockDecision }> = [];
  for (const [key, d] of blocks.entries()) {
    if (d.scope !== vmId || d.enforcer === enforcer) continue;
    // A decision stands until it expires or is lifted: one the old enforcer reported failed
    // moves too, and the new enforcer tries it itself (a report is never a reason to drop one).
    if (d.status === 'expired' || d.expires_us <= nowUs) continue;
    const target = targetIp(d);
    if (!target) continue;
    out.push({ from: key, key: blockKey(enforcer, target), decision: { ...d, enforcer, status: 'requested' } });
  }
  return out;
}

const targetIp = (d: BlockDecision): string => d.target.ip ?? d.target.src_ip ?? '';

export interface Views {
  policy: PolicyView;
  inventory: InventoryView;
  assignments: AssignmentView;
  blocks: BlockHistory;
}

/** The policy in force when none is published: modes unset (rule actions decide), default TTLs. */
const NO_POLICY: PolicyDocument = { ...policyFileSchema.parse({}), rulesets: [] };

/** Deterministic: the same alert always names the same block. */
export const blockIdFor = (alertId: string): string =>
  `blk-${createHash('sha256').update(alertId).digest('hex').slice(0, 32)}`;

const sidOf = (ruleId: string): string | null => /^(?:sid:)?([0-9]{1,10})$/.exec(ruleId)?.[1] ?? null;

/** Throws CORDON_ERR_RESPONDER_ALERT for an alert whose fields are hostile or malformed (it belongs in the DLQ). */
export function decide(alert: Alert, views: Views, policyId: string, nowUs: number): Decision {
  for (const ip of [alert.src_ip, alert.dst_ip]) {
    if (ip !== null && plainIpFamily(ip) === 0)
      throw ERR_RESPONDER_ALERT(alert.alert_id, `"${ip}" is not a plain IP address`);
  }
  const policy = views.policy.policies.get(policyId)?.doc ?? NO_POLICY;

  // the attacked VM
  let vm: VmInfo | undefined;
  let vmId = alert.vm;
  if (vmId !== null) vm = views.inventory.vms.get(vmId);
  else {
    vm =
      (alert.dst_ip !== null ? views.inventory.vmByIp(alert.dst_ip) : undefined) ??
      (alert.src_ip !== null ? views.inventory.vmByIp(alert.src_ip) : undefined);
    vmId = vm?.id ?? null;
  }
  const sid = sidOf(alert.rule_id);
  const action = blockActionFor(policy, sid, vmId, alert.action);
  if (action === null)
    return {
      kind: 'skip',
      reason: 'not-blocking',
      detail: `${alert.rule_id} on ${vmId ?? 'an unknown VM'} is not in prevent mode`,
    };
  if (vmId === null || vm === undefined)
    return {
      kind: 'skip',
      reason: 'unresolved',
      detail: `the attacked VM of alert ${alert.alert_id} is not in the inventory`,
    };

  // the attacker: the side of the alert that is not the VM (never block the VM itself)
  const mine = new Set(vm.ips);
  const sides = [alert.src_ip, alert.dst_ip].filter((ip): ip is string => ip !== null);
  const others = sides.filter((ip) => !mine.has(ip));
  if (others.length !== 1 || sides.length !== 2) {
    return {
      kind: 'skip',
      reason: 'unresolved',
      detail: `alert ${alert.alert_id} does not have exactly one side outside VM ${vmId} (${sides.join(' ↔ ') || 'no addresses'})`,
    };
  }
  const target = others[0]!;

  // the enforcer
  const assignment = views.assignments.byVm.get(vmId);
  let enforcer: string;
  if (assignment?.enforcer && assignment.mode !== 'none') enforcer = assignment.enforcer;
  else if (assignment?.mode === 'agent' && assignment.agent) enforcer = agentEnforcer(assignment.agent);
  else {
    const host = vm.host ?? assignment?.host ?? null;
    if (host === null) return { kind: 'skip', reason: 'unresolved', detail: `VM ${vmId} has no host in the inventory` };
    enforcer = watchdogEnforcer(host);
  }

  // idempotency
  const key = blockKey(enforcer, target);
  const blockId = blockIdFor(alert.alert_id);
  const current = views.blocks.current(key.toString());
  if (current) {
    if (current.block_id === blockId)
      return { kind: 'skip', reason: 'duplicate', detail: `block ${blockId} is already decided` };
    if (!views.blocks.failed(key.toString()) && current.status !== 'expired' && current.expires_us > nowUs) {
      return {
        kind: 'skip',
        reason: 'active',
        detail: `${target} is blocked on ${enforcer} until ${new Date(current.expires_us / 1000).toISOString()}`,
      };
    }
    if (alert.ts_us < current.created_us)
      return { kind: 'skip', reason: 'stale', detail: `alert ${alert.alert_id} predates block ${current.block_id}` };
  }

  // TTL, longer for repeat offenders
  const b = policy.blocks;
  let ttlMs = b.ttlS * 1000;
  const last = views.blocks.lastForTarget(target);
  const repeat = last !== undefined && nowUs - last.created_us <= b.repeatWindowS * 1e6;
  if (repeat) ttlMs = Math.max(ttlMs, Math.round(last.ttl_ms * b.repeatMultiplier));
  ttlMs = Math.min(ttlMs, b.maxTtlS * 1000);

  const decision: BlockDecision = {
    block_id: blockId,
    enforcer,
    target: {
      kind: 'ip',
      ip: target,
      proto: null,
      src_ip: null,
      src_port: null,
      dst_ip: null,
      dst_port: null,
      vm: null,
    },
    scope: vmId,
    action,
    ttl_ms: ttlMs,
    created_us: nowUs,
    expires_us: nowUs + ttlMs * 1000,
    reason_alert: alert.alert_id,
    status: 'requested',
  };
  return { kind: 'block', key, decision, repeat };
}
