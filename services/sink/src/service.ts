import { childContext, type Context } from '@cordon/runtime';
import type { Bus } from '@cordon/bus';
import { codecFor, TOPICS } from '@cordon/schemas';
import type { Store } from '@cordon/store';
import { batchToRows } from './stage.js';
import { mappingFor, TABLE_MAPPINGS } from './tables.js';

export interface SinkService {
  /** Resolves when the sink stops; rejects if it failed. */
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

export interface SinkOptions {
  bus: Bus;
  store: Store;
  ctx: Context;
  groupId?: string;
  topics?: string[];
  maxBatchRecords?: number;
}

/**
 * Lands topics in ClickHouse. Offsets are committed only after the insert is acknowledged
 * (at-least-once), and each insert carries a batch id derived from the input offsets, so a
 * batch delivered again after a crash is deduplicated instead of counted twice.
 */
export function startSink(opts: SinkOptions): SinkService {
  const ctx = childContext(opts.ctx, 'sink');
  const dlq = codecFor(TOPICS.dlq);
  const producer = opts.bus.producer();
  const consumer = opts.bus.consumer({
    groupId: opts.groupId ?? 'cordon-sink',
    topics: opts.topics ?? TABLE_MAPPINGS.map((m) => m.topic),
    maxBatchRecords: opts.maxBatchRecords ?? 5000,
  });
  const done = consumer.run(async (batch) => {
    ctx.metrics.inc('received', batch.records.length);
    const work = batchToRows(batch, ctx.clock.now() * 1000);
    if (work.rows.length > 0) {
      await opts.store.insert(work.table, work.rows, { batchId: work.batchId });
      ctx.metrics.inc('sent', work.rows.length);
    }
    if (work.deadLetters.length > 0) {
      ctx.metrics.inc('errors', work.deadLetters.length);
      ctx.log.warn({ topic: batch.topic, count: work.deadLetters.length, first: work.deadLetters[0]!.error }, 'Records that do not decode were sent to the DLQ.');
      if (batch.topic === TOPICS.dlq) {
        // a dead letter that is itself undecodable must not loop: land it raw
        const toRow = mappingFor(TOPICS.dlq)!.toRow;
        await opts.store.insert('dlq', work.deadLetters.map((d) => toRow(d)), { batchId: `${work.batchId}:undecodable` });
      } else {
        await producer.send(TOPICS.dlq, work.deadLetters.map((d) => ({ key: Buffer.from(batch.topic), value: dlq.encode(d) })));
      }
    }
  });
  return {
    done,
    stop: async () => {
      await consumer.close();
      await producer.close();
    },
  };
}
