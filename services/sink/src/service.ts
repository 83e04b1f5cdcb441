import { childContext, type Context } from '@cordon/runtime';
import type { Bus } from '@cordon/bus';
import { codecFor, TOPICS } from '@cordon/schemas';
import { ERR_STORE_BAD_ROW, type Store } from '@cordon/store';
import { batchToRows, deadLetterOf } from './stage.js';
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
    const nowUs = ctx.clock.now() * 1000;
    const work = batchToRows(batch, nowUs);
    if (work.rows.length > 0) {
      try {
        await opts.store.insert(work.table, work.rows, { batchId: work.batchId });
        ctx.metrics.inc('sent', work.rows.length);
      } catch (err) {
        if (!ERR_STORE_BAD_ROW.is(err)) throw err; // the store is down: stop, the batch comes again
        // A row ClickHouse refuses (a date past 2299, a broken constraint) must not hold back the
        // rest: insert row by row, each with its own token, and dead-letter the refused ones.
        for (let i = 0; i < work.rows.length; i++) {
          const src = work.sources[i]!;
          try {
            await opts.store.insert(work.table, [work.rows[i]!], { batchId: `${batch.topic}:${batch.partition}:${src.offset}` });
            ctx.metrics.inc('sent');
          } catch (rowErr) {
            if (!ERR_STORE_BAD_ROW.is(rowErr)) throw rowErr;
            work.deadLetters.push(deadLetterOf(src, rowErr, nowUs));
          }
        }
      }
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
