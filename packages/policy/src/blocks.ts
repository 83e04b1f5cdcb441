import { readTable, type Bus } from '@cordon/bus';
import { codecFor, TOPICS, type BlockDecision } from '@cordon/schemas';

/**
 * The blocks in force, as the compacted `cordon.blocks.v1` holds them: what `cordon blocks
 * list` prints and the manager serves. Lifting one is a tombstone on its key
 * (`blockKey(enforcer, target)`), written by the caller with its own audit event.
 */
export interface BlockView {
  enforcer: string;
  target: string;
  action: string;
  status: string;
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

/** The compacted blocks topic as it stands: the newest decision per enforcer and target, tombstoned ones gone. */
export async function blockTable(bus: Bus, nowMs: number): Promise<BlockView[]> {
  const codec = codecFor(TOPICS.blocks);
  const out: BlockView[] = [];
  for (const r of (await readTable(bus, TOPICS.blocks)).values())
    out.push(blockView(r.key, codec.decode(r.value!), nowMs));
  return sortBlocks(out);
}

/** One block decision as it is shown, with what is left of its TTL at `nowMs`. */
export function blockView(key: Buffer | null, b: BlockDecision, nowMs: number): BlockView {
  const { enforcer, target } = splitBlockKey(key);
  const left = Math.floor((b.expires_us / 1000 - nowMs) / 1000);
  return {
    enforcer,
    target,
    action: b.action,
    status: b.status,
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
