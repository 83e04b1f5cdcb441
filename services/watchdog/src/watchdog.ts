import { randomUUID } from 'node:crypto';
import { childContext, describeError, type Context } from '@cordon/runtime';
import type { Bus, ConsumedRecord } from '@cordon/bus';
import { followTable, type TableFollower } from '@cordon/bus';
import { blockKey, blockKeyTarget, codecFor, TOPICS, watchdogEnforcer, type BlockDecision } from '@cordon/schemas';
import { parseWatchdogConfig, type WatchdogConfig, type WatchdogConfigInput } from './config.js';
import { BridgeEnforcer } from './enforce-bridge.js';
import { startCapture, type CaptureHandle } from './capture.js';

/**
 * The watchdog of one hypervisor host. Today: the enforcer — every block addressed to
 * `watchdog:<host>` on `cordon.blocks.v1` is applied on the host bridge, restored from the
 * compacted topic at start (a restarted or rebooted host gets its active blocks back,
 * with their remaining TTL), lifted on a tombstone, and reported back as `applied` or
 * `failed`. Live capture (capture-*.ts) plugs in beside it.
 */
export interface WatchdogOptions {
  bus: Bus;
  ctx: Context;
  config: WatchdogConfigInput;
}

export interface WatchdogHandle {
  readonly config: WatchdogConfig;
  readonly enforcer: BridgeEnforcer | null;
  /** The live capture, when enabled. */
  readonly capture: CaptureHandle | null;
  /** Blocks in force as the watchdog knows them (target → decision). */
  readonly active: ReadonlyMap<string, BlockDecision>;
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

export async function startWatchdog(opts: WatchdogOptions): Promise<WatchdogHandle> {
  const config = parseWatchdogConfig(opts.config);
  const { bus } = opts;
  const ctx = childContext(opts.ctx, 'watchdog');
  const { log, metrics, clock } = ctx;
  const me = watchdogEnforcer(config.host);
  const codec = codecFor(TOPICS.blocks);
  const producer = bus.producer();
  const active = new Map<string, BlockDecision>();
  let follower: TableFollower | null = null;
  let enforcer: BridgeEnforcer | null = null;

  if (config.enforce.enabled) {
    const e = new BridgeEnforcer({ ctx, bridge: config.bridge, table: config.enforce.table, ...(config.enforce.netns ? { netns: config.enforce.netns } : {}) });
    enforcer = e;
    await e.setup();

    const report = async (d: BlockDecision, ip: string, status: BlockDecision['status']) => {
      await producer.send(TOPICS.blocks, [{ key: blockKey(me, ip), value: codec.encode({ ...d, status }) }]);
    };
    /** Restored decisions not yet reported applied: reported once the restore is complete. */
    const toReport: Array<{ d: BlockDecision; ip: string }> = [];

    const handle = async (r: ConsumedRecord, restoring: boolean) => {
      const target = blockKeyTarget(r.key, me);
      if (target === null) return; // another enforcer's
      if (r.value === null) {
        active.delete(target);
        try {
          await e.lift(target);
          metrics.inc('blocks_lifted');
          log.info({ target }, 'Block lifted.');
        } catch (err) {
          metrics.inc('errors');
          log.error({ err: describeError(err), target }, 'A block could not be lifted.');
        }
        updateGauge();
        return;
      }
      let d: BlockDecision;
      try {
        d = codec.decode(r.value);
      } catch (err) {
        metrics.inc('errors');
        log.warn({ err: describeError(err), offset: String(r.offset) }, 'A block decision does not decode; it was skipped.');
        return;
      }
      // Our own status reports come back on the topic: while following, only requests are
      // work. While restoring, the newest record per key is the decision, whatever its status
      // (a `failed` one is retried: the decision still stands).
      if (!restoring && d.status !== 'requested') return;
      if (d.status === 'expired') return;
      const started = process.hrtime.bigint();
      try {
        const ip = BridgeEnforcer.targetOf(d).ip;
        if (ip !== target) throw new Error(`the decision's target ${ip} is not the key's ${target}`);
        active.set(ip, d);
        const applied = await e.apply(d, clock.now());
        if (!applied) {
          active.delete(ip);
          return;
        }
        metrics.inc(restoring ? 'blocks_restored' : 'blocks_applied');
        metrics.set('apply_latency_us', Number((process.hrtime.bigint() - started) / 1000n));
        if (restoring && d.status !== 'applied') toReport.push({ d, ip });
        else if (!restoring) await report(d, ip, 'applied');
        log.info({ target: ip, set: applied.set, ttlMs: applied.ttlMs, restoring }, 'Block applied.');
      } catch (err) {
        active.delete(target);
        metrics.inc('errors');
        metrics.inc('blocks_failed');
        log.error({ err: describeError(err), target }, 'A block could not be applied.');
        if (!restoring) await report(d, target, 'failed').catch(() => undefined);
      } finally {
        updateGauge();
      }
    };

    const updateGauge = () => metrics.set('blocks_active', active.size);

    follower = await followTable(bus, TOPICS.blocks, `cordon-watchdog-${config.host}-${randomUUID()}`, handle, {
      afterRestore: async () => {
        // Elements in the sets that the topic no longer holds were lifted while we were down.
        const removed = await e.reconcile(new Set(active.keys()));
        for (const { d, ip } of toReport.splice(0)) await report(d, ip, 'applied');
        log.info({ host: config.host, bridge: config.bridge, active: active.size, removed, ...e.capabilities }, 'Watchdog enforcer restored its blocks from the topic.');
      },
    });
  }

  let stopped: Promise<void> | null = null;
  const capture = config.capture.enabled
    ? await startCapture({ bus, ctx: opts.ctx, host: config.host, bridge: config.bridge, pollMs: config.capture.pollMs, ...(config.capture.netns ? { netns: config.capture.netns } : {}) })
    : null;

  return {
    config,
    enforcer,
    capture,
    active,
    done: follower?.done ?? new Promise<void>(() => undefined),
    stop: () =>
      (stopped ??= (async () => {
        await capture?.stop();
        await follower?.close();
        await producer.close();
        enforcer?.close();
        // The nft table stays: blocks keep being enforced (until their TTL) while the
        // watchdog restarts or is upgraded.
        log.info('Watchdog stopped.');
      })()),
  };
}
