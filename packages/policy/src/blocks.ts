import { readTable, type Bus } from '@cordon/bus';
import { codecFor, TOPICS, type BlockDecision, type BlockStatusReport } from '@cordon/schemas';

/**
 * The blocks in force, as the compacted `cordon.blocks.v1` holds them, each with the status its
 * enforcer reported on `cordon.block-status.v1` (same key): what `cordon blocks list` prints
 * and the manager serves. Lifting one is a tombstone on its key (`blockKey(enforcer,
 * target)`), written by the caller with its own audit event.
 */
export interface BlockView {
  enforcer: string;
  target: string;
  action: string;
  /** `requested` until the enforcer reports on this decision: `applied` or `failed`. */
  status: string;
  /** When the enforcer reported (null: it has not). */
  reported: string | null;
  /** Why it failed, as the enforcer said (an error code), or null. */
  error: string | null;
  ttl_s: number;
  created: string;
  expires: string;
  left_s: number;
  active: boolean;
  scope: string;
  reason_alert: string;
  block_id: string;
}

/** `enforcer|target`, as blockKey() builds it (the target may itself hold a "|": a 5-tuple does not, but the split is at the first). */
export function splitBlockKey(key: Buffer | null): { enforcer: string; target: string } {
  const k = key?.toString() ?? '';
  const i = k.indexOf('|');
  return i < 0 ? { enforcer: k, target: '' } : { enforcer: k.slice(0, i), target: k.slice(i + 1) };
}

/**
 * The compacted blocks topic as it stands: the newest decision per enforcer and target,
 * tombstoned ones gone, with their enforcers' reports.
 */
export async function blockTable(bus: Bus, nowMs: number): Promise<BlockView[]> {
  const codec = codecFor(TOPICS.blocks);
  const [decisions, reports] = await Promise.all([readTable(bus, TOPICS.blocks), readStatusTable(bus)]);
  const out: BlockView[] = [];
  for (const [k, r] of decisions) out.push(blockView(r.key, codec.decode(r.value!), nowMs, reports.get(k)));
  return sortBlocks(out);
}

/** The status topic as it stands, by key (base64, as readTable keys it); unreadable reports left out. */
async function readStatusTable(bus: Bus): Promise<Map<string, BlockStatusReport>> {
  const codec = codecFor(TOPICS.blockStatus);
  const out = new Map<string, BlockStatusReport>();
  for (const [k, r] of await readTable(bus, TOPICS.blockStatus)) {
    const s = statusReport(r.key, r.value, codec);
    if (s) out.set(k, s);
  }
  return out;
}

/**
 * A record of `cordon.block-status.v1` as a report, or null when it is unusable: it does not
 * decode, or its value names another enforcer or target than its key (the topic is written by
 * every enforcer; a report only ever describes the decision under its own key).
 */
export function statusReport(
  key: Buffer | null,
  value: Buffer | null,
  codec = codecFor(TOPICS.blockStatus),
): BlockStatusReport | null {
  if (value === null) return null;
  try {
    const s = codec.decode(value);
    const { enforcer, target } = splitBlockKey(key);
    return s.enforcer === enforcer && s.target === target ? s : null;
  } catch {
    return null;
  }
}

/**
 * The status of a decision: what its enforcer reported on it, when that report is about this
 * very decision (same block id: a report on an earlier decision for the target says nothing of
 * a new one), else the decision's own (`requested`).
 */
export function effectiveStatus(
  b: BlockDecision,
  report: BlockStatusReport | null | undefined,
): { status: string; reported: BlockStatusReport | null } {
  if (report && report.block_id === b.block_id && b.status !== 'expired')
    return { status: report.status, reported: report };
  return { status: b.status, reported: null };
}

/** One block decision as it is shown, with its enforcer's report and what is left of its TTL at `nowMs`. */
export function blockView(
  key: Buffer | null,
  b: BlockDecision,
  nowMs: number,
  report?: BlockStatusReport | null,
): BlockView {
  const { enforcer, target } = splitBlockKey(key);
  const left = Math.floor((b.expires_us / 1000 - nowMs) / 1000);
  const { status, reported } = effectiveStatus(b, report);
  return {
    enforcer,
    target,
    action: b.action,
    status,
    reported: reported ? new Date(reported.ts_us / 1000).toISOString() : null,
    error: reported?.error ?? null,
    ttl_s: Math.round(b.ttl_ms / 1000),
    created: new Date(b.created_us / 1000).toISOString(),
    expires: new Date(b.expires_us / 1000).toISOString(),
    left_s: left,
    active: left > 0 && b.status !== 'expired',
    scope: b.scope,
    reason_alert: b.reason_alert,
    block_id: b.block_id,
  };
}

/** Newest expiry first, then by enforcer: the order the list is printed in. */
export function sortBlocks(blocks: BlockView[]): BlockView[] {
  return blocks.sort((a, b) => b.expires.localeCompare(a.expires) || a.enforcer.localeCompare(b.enforcer));
}
