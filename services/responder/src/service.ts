import { randomUUID } from 'node:crypto';
import { childContext, describeError, type Context } from '@cordon/runtime';
import type { Batch, Bus, ConsumedRecord, ProduceRecord } from '@cordon/bus';
import { followTable, type TableFollower } from '@cordon/bus';
import { AssignmentView, InventoryView, PolicyView } from '@cordon/policy';
import { codecFor, TOPICS, type Alert, deadLetter } from '@cordon/schemas';
import { parseResponderConfig, type ResponderConfig, type ResponderConfigInput } from './config.js';
import { BlockHistory, decide, type Views } from './decide.js';

/**
 * The responder's adapter: `cordon.alerts.v1` (consumer group) → decide → `cordon.blocks.v1`,
 * bad alerts → `cordon.dlq.v1`. Policy, inventory, assignments and the blocks already
 * decided are followed as tables (read whole at start, then followed) by every instance, so
 * each instance decides with the full picture whatever alert partitions it owns.
 *
 * At-least-once: a batch's offsets are committed after its decisions are acknowledged; a
 * batch redelivered after a crash decides nothing new (see decide.ts on idempotency).
 */
const STAGE = 'responder';

export interface ResponderOptions {
  bus: Bus;
  ctx: Context;
  config?: ResponderConfigInput;
}

export interface ResponderHandle {
  readonly config: ResponderConfig;
  readonly views: Views;
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

export async function startResponder(opts: ResponderOptions): Promise<ResponderHandle> {
  const config = parseResponderConfig(opts.config ?? {});
  const { bus } = opts;
  const ctx = childContext(opts.ctx, STAGE);
  const { log, metrics, clock } = ctx;
  const alertsCodec = codecFor(TOPICS.alerts);
  const blocksCodec = codecFor(TOPICS.blocks);
  const views: Views = { policy: new PolicyView(), inventory: new InventoryView(), assignments: new AssignmentView(), blocks: new BlockHistory() };
  const producer = bus.producer();

  const dlq = (r: ConsumedRecord, err: unknown): ProduceRecord => deadLetter(STAGE, r, r, err, clock.now() * 1000);

  // Views: a record a view cannot use is skipped and counted (fail open: one bad policy
  // record must not stop blocking), and kept in the DLQ for the operator.
  const instance = randomUUID();
  const followers: TableFollower[] = [];
  const viewOf = (topic: string, apply: (k: Buffer | null, v: Buffer | null) => void) =>
    followTable(bus, topic, `cordon-${STAGE}-view-${instance}`, async (r) => {
      try {
        apply(r.key, r.value);
      } catch (err) {
        metrics.inc('errors');
        metrics.inc('view_records_bad');
        log.warn({ err: describeError(err), topic, offset: String(r.offset) }, 'A record of a followed table is not usable; it was skipped and sent to the DLQ.');
        await producer.send(TOPICS.dlq, [dlq(r, err)]);
      }
    });
  followers.push(await viewOf(TOPICS.policy, (k, v) => views.policy.apply(k, v)));
  followers.push(await viewOf(TOPICS.inventory, (k, v) => views.inventory.apply(k, v)));
  followers.push(await viewOf(TOPICS.assignments, (k, v) => views.assignments.apply(k, v)));
  followers.push(await viewOf(TOPICS.blocks, (k, v) => views.blocks.apply(k, v)));
  log.info({ policies: views.policy.policies.size, vms: views.inventory.vms.size, assignments: views.assignments.byVm.size, blocks: views.blocks.size }, 'Responder views are loaded.');

  const consumer = bus.consumer({ groupId: config.groupId, topics: [TOPICS.alerts], fromBeginning: true, maxBatchRecords: config.maxBatchRecords });

  async function handleBatch(batch: Batch): Promise<void> {
    const blocks: ProduceRecord[] = [];
    const letters: ProduceRecord[] = [];
    for (const r of batch.records) {
      metrics.inc('received');
      let alert: Alert;
      try {
        if (r.value === null) throw new Error('record has no value (null)');
        alert = alertsCodec.decode(r.value);
        const nowUs = clock.now() * 1000;
        const d = decide(alert, views, config.policyId, nowUs);
        if (d.kind === 'skip') {
          metrics.inc(`skipped_${d.reason}`);
          if (d.reason === 'unresolved') log.warn({ alert: alert.alert_id, detail: d.detail }, 'An alert that calls for a block could not be resolved to a VM and enforcer; no block.');
          continue;
        }
        // applied to the view now, so a later alert of the same batch sees it
        views.blocks.put(d.key.toString(), d.decision);
        blocks.push({ key: d.key, value: blocksCodec.encode(d.decision) });
        metrics.inc('blocks');
        if (d.repeat) metrics.inc('blocks_repeat');
      } catch (err) {
        metrics.inc('errors');
        metrics.inc('dropped');
        letters.push(dlq(r, err));
      }
    }
    if (blocks.length) await producer.send(TOPICS.blocks, blocks);
    if (letters.length) await producer.send(TOPICS.dlq, letters);
    metrics.inc('sent', blocks.length);
  }

  const running = consumer.run(handleBatch);
  const done = Promise.race([running, ...followers.map((f) => f.done.then(() => new Promise<void>(() => undefined)))]);
  let stopped: Promise<void> | null = null;
  return {
    config,
    views,
    done,
    stop: () =>
      (stopped ??= (async () => {
        await consumer.close();
        await running.catch(() => undefined);
        for (const f of followers) await f.close();
        await producer.close();
        log.info('Responder stopped.');
      })()),
  };
}
