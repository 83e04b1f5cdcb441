import { describeError } from '@cordon/runtime';
import type { ConsumedRecord } from '@cordon/bus';
import type { Stage } from '@cordon/stage';
import { blockKey, blockKeyTarget, codecFor, TOPICS, type BlockDecision } from '@cordon/schemas';
import { ERR_BLOCK_KEY_MISMATCH } from './errors.js';

/** Where blocks are put into effect: the watchdog's bridge sets, an agent's own sets. */
export interface BlockApplier {
  /** The address a decision blocks (its key's target); throws a coded error for targets this enforcer cannot enforce. */
  targetOf(d: BlockDecision): string;
  /** Put a decision in force with its remaining TTL; null when there is none left. */
  apply(d: BlockDecision, nowMs: number): Promise<{ ttlMs: number } | null>;
  lift(target: string): Promise<void>;
  /** Take out every element whose target is not in `keep`; how many were taken out. */
  reconcile(keep: ReadonlySet<string>): Promise<number>;
}

export interface BlocksFollower {
  /** Decisions in force as this enforcer knows them, by target. */
  readonly active: ReadonlyMap<string, BlockDecision>;
}

/**
 * Follow the compacted `blocks` topic for one enforcer — the one behaviour shared by the
 * watchdog and the agent:
 *
 * - at start, the table as it is (restoring): the newest record per key is the decision,
 *   whatever its status (a `failed` one is tried again: the decision still stands; an
 *   `expired` one is not); then elements that the topic no longer holds are reconciled away
 *   (blocks lifted while the enforcer was down), then what was restored is reported back —
 *   `applied`, or `failed` for a decision that could not be put in force;
 * - then every new record: a `requested` decision is applied and reported; the enforcers'
 *   own reports coming back are not work; a tombstone lifts.
 *
 * A failure to apply one decision (an nft error, a target this enforcer cannot enforce) is
 * reported `failed` and never stops the others, and a failed reconcile leaves stale elements
 * to their TTL rather than stopping the enforcer. A record that does not decode, or whose key
 * and target disagree, goes to the DLQ and blocks nothing.
 */
export async function followBlocks(stage: Stage<unknown>, opts: { enforcer: string; applier: BlockApplier }): Promise<BlocksFollower> {
  const { enforcer: me, applier } = opts;
  const { log, metrics, clock } = stage.ctx;
  const codec = codecFor(TOPICS.blocks);
  const active = new Map<string, BlockDecision>();
  const toReport: Array<{ d: BlockDecision; target: string; status: 'applied' | 'failed' }> = [];
  const gauge = () => metrics.set('blocks_active', active.size);

  const report = async (d: BlockDecision, target: string, status: BlockDecision['status']) => {
    await stage.send(TOPICS.blocks, [{ key: blockKey(me, target), value: codec.encode({ ...d, status }) }]);
  };
  const reject = async (r: ConsumedRecord, err: unknown) => {
    metrics.inc('blocks_rejected');
    log.warn({ err: describeError(err), offset: String(r.offset) }, 'A block decision is unusable; it was sent to the DLQ and blocks nothing.');
    await stage.send(TOPICS.dlq, [stage.deadLetter(r, r, err)]);
  };

  const onRecord = async (r: ConsumedRecord, restoring: boolean) => {
    const target = blockKeyTarget(r.key, me);
    if (target === null) return; // another enforcer's
    if (r.value === null) {
      active.delete(target);
      gauge();
      try {
        await applier.lift(target);
        metrics.inc('blocks_lifted');
        log.info({ target }, 'Block lifted.');
      } catch (err) {
        metrics.inc('errors');
        log.error({ err: describeError(err), target }, 'A block could not be lifted.');
      }
      return;
    }
    let d: BlockDecision;
    try {
      d = codec.decode(r.value);
    } catch (err) {
      await reject(r, err);
      return;
    }
    // Our own status reports come back on the topic: while following, only requests are work.
    if (!restoring && d.status !== 'requested') return;
    if (d.status === 'expired') return;
    const started = process.hrtime.bigint();
    try {
      // a target this enforcer cannot enforce (not an address, a hostile string) throws here
      // and is reported failed below; a key that names another target is a forgery: DLQ
      const t = applier.targetOf(d);
      if (t !== target) {
        await reject(r, ERR_BLOCK_KEY_MISMATCH(target, t));
        return;
      }
      const applied = await applier.apply(d, clock.now());
      if (!applied) {
        active.delete(target);
        return;
      }
      active.set(target, d);
      metrics.inc(restoring ? 'blocks_restored' : 'blocks_applied');
      metrics.set('apply_latency_us', Number((process.hrtime.bigint() - started) / 1000n));
      if (!restoring) await report(d, target, 'applied');
      else if (d.status !== 'applied') toReport.push({ d, target, status: 'applied' });
      log.info({ target, ttlMs: applied.ttlMs, restoring }, 'Block applied.');
    } catch (err) {
      active.delete(target);
      metrics.inc('errors');
      metrics.inc('blocks_failed');
      log.error({ err: describeError(err), target, restoring }, 'A block could not be applied.');
      if (!restoring) await report(d, target, 'failed').catch(() => undefined);
      else if (d.status !== 'failed') toReport.push({ d, target, status: 'failed' });
    } finally {
      gauge();
    }
  };

  await stage.follow(TOPICS.blocks, onRecord, {
    afterRestore: async () => {
      let removed = 0;
      try {
        removed = await applier.reconcile(new Set(active.keys()));
      } catch (err) {
        metrics.inc('errors');
        log.error({ err: describeError(err) }, 'Blocks lifted while the enforcer was down could not be taken out; they stay until their TTL.');
      }
      for (const { d, target, status } of toReport.splice(0)) await report(d, target, status);
      log.info({ enforcer: me, active: active.size, removed }, 'Blocks restored from the topic.');
    },
  });
  return { active };
}
