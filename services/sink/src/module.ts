import { z } from 'zod';
import { defineStage } from '@cordon/stage';
import { TOPICS } from '@cordon/schemas';
import { ERR_STORE_BAD_ROW } from '@cordon/store';
import { batchIdOf, rowOf, tableOf } from './rows.js';
import { TABLE_MAPPINGS } from './tables.js';

export const sinkConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-sink'),
    /** Topics to land (default: every topic that has a table). */
    topics: z.array(z.string().min(1)).min(1).optional(),
    maxBatchRecords: z.number().int().positive().default(5000),
  })
  .strict();

const topicsOf = (c: { topics?: string[] | undefined }) => c.topics ?? TABLE_MAPPINGS.map((m) => m.topic);

/**
 * Lands topics in ClickHouse. Offsets are committed only after the insert is acknowledged
 * (at-least-once), and each insert carries a batch id derived from the input offsets, so a
 * batch delivered again after a crash is deduplicated instead of counted twice.
 */
export const sinkStage = defineStage({
  name: 'sink',
  summary: 'every topic with a table → ClickHouse (batched, idempotent inserts)',
  config: sinkConfigSchema,
  inputs: (c) => topicsOf(c).map((topic) => ({ group: c.groupId, topic })),
  outputs: () => [],
  async start(stage) {
    const { config, ctx } = stage;
    const store = await stage.env.store();
    const nowUs = () => ctx.clock.now() * 1000;
    stage.consume<Record<string, unknown>>({
      group: config.groupId,
      topics: topicsOf(config),
      maxBatchRecords: config.maxBatchRecords,
      decode: (value, record) => rowOf(record, value, nowUs()),
      tombstones: 'skip', // a tombstone on a compacted topic is not a row
      async handle(batch) {
        if (batch.records.length === 0) return;
        const table = tableOf(batch.topic);
        const batchId = batchIdOf(batch.topic, batch.partition, batch.firstOffset, batch.nextOffset - 1n);
        try {
          await store.insert(table, batch.records.map((r) => r.value), { batchId });
        } catch (err) {
          if (!ERR_STORE_BAD_ROW.is(err)) throw err; // the store is down: stop, the batch comes again
          // A row ClickHouse refuses (a date past 2299, a broken constraint) must not hold back the
          // rest: insert row by row, each with its own token, and dead-letter the refused ones.
          for (const { value, record } of batch.records) {
            try {
              await store.insert(table, [value], { batchId: `${batch.topic}:${batch.partition}:${record.offset}` });
            } catch (rowErr) {
              if (!ERR_STORE_BAD_ROW.is(rowErr)) throw rowErr;
              if (batch.topic !== TOPICS.dlq) {
                batch.reject(record, rowErr);
                continue;
              }
              // a dead letter ClickHouse refuses stays where it is (on the DLQ topic): sending it
              // back there would loop
              ctx.metrics.inc('dlq_rows_refused');
              ctx.log.error({ err: rowErr, offset: String(record.offset) }, 'A dead letter could not be landed in ClickHouse; it stays on the DLQ topic.');
            }
          }
        }
        ctx.metrics.inc('rows', batch.records.length);
      },
    });
    return { store };
  },
});
