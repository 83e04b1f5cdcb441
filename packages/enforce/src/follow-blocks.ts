import { describeError } from '@cordon/runtime';
import { readTable, type ConsumedRecord, type ProduceRecord } from '@cordon/bus';
import { MAX_BLOCK_TTL_S } from '@cordon/policy';
import type { Stage } from '@cordon/stage';
import {
  alertId,
  blockKey,
  blockKeyTarget,
  codecFor,
  complete,
  NO_FLOW,
  TOPICS,
  type BlockDecision,
  type BlockReportStatus,
} from '@cordon/schemas';
import { ERR_BLOCK_KEY_MISMATCH } from './errors.js';
import { BlockGuards, enforcerGuardsSchema, type EnforcerGuardsInput, type Refusal } from './guards.js';
import { NeverBlock, readLocalAddresses, type LocalAddresses } from './never-block.js';

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

/** Status reports sent at once at most (a restore after a flood reports thousands). */
const REPORT_CHUNK = 1000;

export interface FollowBlocksOptions {
  /** `watchdog:<host>` or `agent:<id>`: the decisions keyed for it are this follower's. */
  enforcer: string;
  applier: BlockApplier;
  /** Never-block ranges, the cap on elements and the rate of new ones (defaults when absent). */
  guards?: EnforcerGuardsInput;
  /** The network namespace whose addresses and gateways are never blocked: where the elements are applied. */
  netns?: string;
  /** The VM an agent runs in, named in its alerts. */
  vm?: string;
  /** Where this machine's addresses come from (default: `ip -json route show table all` in `netns`). */
  localAddresses?: () => Promise<LocalAddresses>;
}

export interface BlocksFollower {
  /** Decisions in force as this enforcer knows them, by target. */
  readonly active: ReadonlyMap<string, BlockDecision>;
}

/**
 * Follow the compacted `blocks` topic for one enforcer — the one behaviour shared by the
 * watchdog and the agent:
 *
 * - at start, the table as it is (restoring): the newest record per key is the decision (an
 *   `expired` one is not applied); then elements that the topic no longer holds are reconciled
 *   away (blocks lifted while the enforcer was down), then what was restored is reported —
 *   `applied`, or `failed` for a decision that could not be put in force;
 * - then every new record: a decision is applied and reported; a tombstone lifts.
 *
 * Reports go to `cordon.block-status.v1` under the decision's key (enforcer + target), never
 * to `blocks`: an enforcer may not write decisions (its principal has no WRITE on `blocks`), so
 * a compromised agent can neither block nor lift anything there. The status table mirrors the
 * enforcer's view: a report per decision that changed (this enforcer's own reports are read back
 * at start, so a restart re-sends only what differs), a tombstone when a block is lifted, and
 * tombstones for reports whose decision was lifted while the enforcer was down.
 *
 * A failure to apply one decision (an nft error, a target this enforcer cannot enforce) is
 * reported `failed` and never stops the others, and a failed reconcile leaves stale elements
 * to their TTL rather than stopping the enforcer. A record that does not decode, or whose key
 * and target disagree, goes to the DLQ and blocks nothing.
 *
 * Whoever can write the topic must not be able to cut the machine off or flood the kernel, so
 * before an element is applied (restoring included) the decision passes the guards: the
 * never-block list (built-in ranges, configured ones, this machine's own addresses, subnet
 * broadcasts and gateways), the cap on elements in force and the rate of new targets. A
 * refused decision is reported `failed`, logged with its code, and raised as an alert
 * (`cordon:enforce-never-block`, `-cap`, `-rate`; at most one per kind a minute, counting the
 * ones in between). A TTL past the longest a policy allows is cut to it.
 */
/** This enforcer's own reports on the status topic, by target: what a restart need not say again. */
async function readOwnReports(stage: Stage<unknown>, me: string): Promise<Map<string, OwnReport>> {
  const codec = codecFor(TOPICS.blockStatus);
  const out = new Map<string, OwnReport>();
  for (const r of (await readTable(stage.bus, TOPICS.blockStatus)).values()) {
    const target = blockKeyTarget(r.key, me);
    if (target === null) continue;
    try {
      const s = codec.decode(r.value!);
      out.set(target, { block_id: s.block_id, status: s.status });
    } catch {
      // an unreadable report is said again
    }
  }
  return out;
}

interface OwnReport {
  block_id: string;
  status: BlockReportStatus;
}

export async function followBlocks(stage: Stage<unknown>, opts: FollowBlocksOptions): Promise<BlocksFollower> {
  const { enforcer: me, applier } = opts;
  const { log, metrics, clock } = stage.ctx;
  const codec = codecFor(TOPICS.blocks);
  const statusCodec = codecFor(TOPICS.blockStatus);
  const alertCodec = codecFor(TOPICS.alerts);
  const active = new Map<string, BlockDecision>();
  const toReport: Array<{ d: BlockDecision; target: string; status: BlockReportStatus; error?: string }> = [];
  /** What this enforcer last reported per target (its own keys on the status topic). */
  const reported = await readOwnReports(stage, me);
  /** Targets the blocks topic holds a decision for at start (restoring): reports of others are stale. */
  const restored = new Set<string>();
  const gauge = () => metrics.set('blocks_active', active.size);
  const guardConfig = enforcerGuardsSchema.parse(opts.guards ?? {});
  const guards = new BlockGuards(guardConfig, new NeverBlock(guardConfig.neverBlock), clock);

  // this machine's addresses and gateways, now and every minute (DHCP moves them)
  const readLocal = opts.localAddresses ?? (() => readLocalAddresses(opts.netns));
  let localKnown = true;
  const refreshLocal = async () => {
    try {
      guards.neverBlock.setLocal(await readLocal());
      localKnown = true;
    } catch (err) {
      if (localKnown)
        log.error(
          { err: describeError(err) },
          "This machine's own addresses are unknown; the built-in and configured never-block ranges still hold.",
        );
      localKnown = false;
      metrics.inc('errors');
    } finally {
      metrics.set('local_addresses_known', localKnown ? 1 : 0);
    }
  };
  await refreshLocal();
  stage.every(60_000, "Reading this machine's addresses", refreshLocal);

  // refusals are logged and raise an alert at most once per kind a minute (a flood of forged
  // decisions is one line and one alert, with its count; the counters count every one)
  const lastAlert = new Map<Refusal['kind'], { at: number; since: number }>();
  const SIGNATURES: Record<Refusal['kind'], string> = {
    'never-block': 'Block decision refused: its target must never be blocked',
    cap: 'Block decisions refused: the cap on blocks in force is reached',
    rate: 'Block decisions refused: too many new blocks a minute',
  };
  const raise = async (kind: Refusal['kind'], err: Error & { code?: string }, target: string, r: ConsumedRecord) => {
    const now = clock.now();
    const prev = lastAlert.get(kind);
    if (prev && now - prev.at < 60_000) {
      prev.since++;
      return;
    }
    lastAlert.set(kind, { at: now, since: 0 });
    log.warn(
      { err: describeError(err), target, refusedSinceLastAlert: prev?.since ?? 0 },
      "A block decision was refused by the enforcer's guards; an alert says so.",
    );
    const alert = complete(TOPICS.alerts, {
      alert_id: alertId('enforce', me, kind, r.topic, r.partition, r.offset),
      ts_us: now * 1000,
      stage: stage.name,
      vm: opts.vm ?? null,
      sensor: me,
      rule_id: `cordon:enforce-${kind}`,
      rule_rev: 1,
      signature: SIGNATURES[kind],
      severity: 2,
      category: 'enforcer-protection',
      action: 'alert',
      // no addresses: an alert about a refused block must never itself become a block
      ...NO_FLOW,
      evidence: JSON.stringify({
        code: err.code,
        message: err.message,
        target,
        key: r.key?.toString() ?? null,
        offset: String(r.offset),
        refusedSinceLastAlert: prev?.since ?? 0,
      }),
    });
    await stage.send(TOPICS.alerts, [{ key: Buffer.from(opts.vm ?? me), value: alertCodec.encode(alert) }]);
  };

  type Report = { d: BlockDecision; target: string; status: BlockReportStatus; error?: string | undefined };
  const reportMany = async (items: Report[]) => {
    const records: ProduceRecord[] = [];
    for (const { d, target, status, error } of items) {
      const was = reported.get(target);
      if (was && was.block_id === d.block_id && was.status === status) continue; // said already
      reported.set(target, { block_id: d.block_id, status });
      records.push({
        key: blockKey(me, target),
        value: statusCodec.encode(
          complete(TOPICS.blockStatus, {
            block_id: d.block_id,
            enforcer: me,
            target,
            status,
            ts_us: clock.now() * 1000,
            expires_us: d.expires_us,
            error: error ?? null,
          }),
        ),
      });
    }
    for (let i = 0; i < records.length; i += REPORT_CHUNK)
      await stage.send(TOPICS.blockStatus, records.slice(i, i + REPORT_CHUNK));
  };
  const report = (d: BlockDecision, target: string, status: BlockReportStatus, error?: string) =>
    reportMany([{ d, target, status, error }]);
  /** Take back the reports of blocks that are gone (lifted): tombstones on the status topic. */
  const unreport = async (targets: string[]) => {
    const gone = targets.filter((t) => reported.delete(t));
    for (let i = 0; i < gone.length; i += REPORT_CHUNK)
      await stage.send(
        TOPICS.blockStatus,
        gone.slice(i, i + REPORT_CHUNK).map((t) => ({ key: blockKey(me, t), value: null })),
      );
  };
  // Refusals come in floods: their reports go out together, one send (one fsync of the
  // embedded bus's control topic) per turn of the event loop rather than one per decision.
  let refusedReports: Report[] = [];
  let refusedFlush: Promise<void> | null = null;
  const reportRefused = (item: Report) => {
    refusedReports.push(item);
    refusedFlush ??= new Promise<void>((resolve) => setImmediate(resolve)).then(async () => {
      const items = refusedReports;
      refusedReports = [];
      refusedFlush = null;
      await reportMany(items).catch((err: unknown) => {
        metrics.inc('errors');
        log.error(
          { err: describeError(err), reports: items.length },
          'Refused block decisions could not be reported failed.',
        );
      });
    });
  };
  stage.onStop(async () => {
    while (refusedFlush) await refusedFlush;
  });
  const reject = async (r: ConsumedRecord, err: unknown) => {
    metrics.inc('blocks_rejected');
    log.warn(
      { err: describeError(err), offset: String(r.offset) },
      'A block decision is unusable; it was sent to the DLQ and blocks nothing.',
    );
    await stage.send(TOPICS.dlq, [stage.deadLetter(r, r, err)]);
  };

  const onRecord = async (r: ConsumedRecord, restoring: boolean) => {
    const target = blockKeyTarget(r.key, me);
    if (target === null) return; // another enforcer's
    if (r.value === null) {
      active.delete(target);
      restored.delete(target);
      gauge();
      await unreport([target]).catch((err: unknown) => {
        metrics.inc('errors');
        log.error({ err: describeError(err), target }, "A lifted block's status could not be taken back.");
      });
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
    if (restoring) restored.add(target);
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
      const refused = guards.check(target, active.size, active.has(target), restoring);
      if (refused) {
        metrics.inc('blocks_refused');
        metrics.inc(`blocks_refused_${refused.kind.replace('-', '_')}`);
        const error = describeError(refused.err).code;
        if (!restoring) reportRefused({ d, target, status: 'failed', error });
        else toReport.push({ d, target, status: 'failed', error });
        if (refused.kind === 'never-block' && active.delete(target)) {
          // in force from before the address became protected (DHCP gave it to this machine)
          await applier
            .lift(target)
            .catch((err: unknown) => log.error({ err: describeError(err), target }, 'A block could not be lifted.'));
        }
        await raise(refused.kind, refused.err, target, r);
        return;
      }
      const longest = (clock.now() + MAX_BLOCK_TTL_S * 1000) * 1000;
      if (d.expires_us > longest) d = { ...d, expires_us: longest };
      const applied = await applier.apply(d, clock.now());
      if (!applied) {
        active.delete(target);
        return;
      }
      active.set(target, d);
      metrics.inc(restoring ? 'blocks_restored' : 'blocks_applied');
      metrics.set('apply_latency_us', Number((process.hrtime.bigint() - started) / 1000n));
      if (!restoring) await report(d, target, 'applied');
      else toReport.push({ d, target, status: 'applied' });
      log.info({ target, ttlMs: applied.ttlMs, restoring }, 'Block applied.');
    } catch (err) {
      active.delete(target);
      metrics.inc('errors');
      metrics.inc('blocks_failed');
      log.error({ err: describeError(err), target, restoring }, 'A block could not be applied.');
      const error = describeError(err).code;
      if (!restoring) await report(d, target, 'failed', error).catch(() => undefined);
      else toReport.push({ d, target, status: 'failed', error });
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
        log.error(
          { err: describeError(err) },
          'Blocks lifted while the enforcer was down could not be taken out; they stay until their TTL.',
        );
      }
      await reportMany(toReport.splice(0));
      // reports of decisions the topic no longer holds (lifted while this enforcer was down)
      await unreport([...reported.keys()].filter((t) => !restored.has(t)));
      log.info({ enforcer: me, active: active.size, removed }, 'Blocks restored from the topic.');
    },
  });
  return { active };
}
