import { z } from 'zod';
import { defineStage } from '@cordon/stage';
import { TOPICS } from '@cordon/schemas';
import { ERR_STORE_BAD_ROW } from '@cordon/store';
import { batchIdOf, newRowsOnly, rowOf, tableOf } from './rows.js';
import { mappingFor, TABLE_MAPPINGS } from './tables.js';
import { applyRetention, RETENTION_TABLES, type RetentionTable } from './retention.js';

export const sinkConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-sink'),
    /** Topics to land (default: every topic that has a table). */
    topics: z.array(z.string().min(1)).min(1).optional(),
    maxBatchRecords: z.number().int().positive().default(5000),
    /**
     * Days each table keeps its rows, counted from when they were stored, applied
     * to the tables at start. A table not named keeps the retention of its migration.
     */
    retentionDays: z
      .object(
        Object.fromEntries(RETENTION_TABLES.map((t) => [t, z.number().int().min(1).max(36500)])) as Record<
          RetentionTable,
          z.ZodNumber
        >,
      )
      .partial()
      .strict()
      .default({}),
  })
  .strict();

const topicsOf = (c: { topics?: string[] | undefined }) => c.topics ?? TABLE_MAPPINGS.map((m) => m.topic);

/**
 * Lands topics in ClickHouse. Offsets are committed only after the insert is acknowledged
 * (at-least-once), and each insert carries a batch id derived from the input offsets, so a
 * batch delivered again after a crash is deduplicated instead of counted twice.
 *
 * Rows with a deterministic id (alerts, flows, file events, block decisions) are also looked up
 * before the insert and only new ids are written: the same capture replayed, or alerts re-sent,
 * arrive as new records with new offsets, and a batch redelivered after a crash may be cut
 * elsewhere than the first time — neither carries the first insert's dedup token; the ids do. That keeps plain
 * `count()` exact without FINAL (measured against ReplacingMergeTree read through FINAL views
 * in bench/store-dedup.mjs, bench/RESULTS.md). The tables stay ReplacingMergeTree on the id as
 * the backstop for two sinks racing on one id (an id is on one partition unless the record's
 * key differs, e.g. an alert without a VM keyed by sensor).
 */
export const sinkStage = defineStage({
  name: 'sink',
  summary: 'every topic with a table → ClickHouse (batched, idempotent inserts)',
  config: sinkConfigSchema,
  inputs: (c) => topicsOf(c).map((topic) => ({ group: c.groupId, topic })),
  outputs: () => [TOPICS.dlq],
  reads: () => [],
  async start(stage) {
    const { config, ctx } = stage;
    const store = await stage.env.store();
    await applyRetention(store, config.retentionDays, ctx);
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
        let batchId = batchIdOf(batch.topic, batch.partition, batch.firstOffset, batch.nextOffset - 1n);
        let rows = batch.records.map((r) => r.value);
        const identity = mappingFor(batch.topic)?.identity;
        if (identity) {
          const fresh = await newRowsOnly(store, table, identity, rows, batchId);
          if (fresh.skipped) ctx.metrics.inc('rows_already_stored', fresh.skipped);
          ({ rows, batchId } = fresh);
          if (rows.length === 0) return;
        }
        try {
          await store.insert(table, rows, { batchId });
        } catch (err) {
          if (!ERR_STORE_BAD_ROW.is(err)) throw err; // the store is down: stop, the batch comes again
          // A row ClickHouse refuses (a date past 2299, a broken constraint) must not hold back the
          // rest: insert row by row, each with its own token, and dead-letter the refused ones.
          const keep = new Set(rows);
          for (const { value, record } of batch.records) {
            if (!keep.has(value)) continue;
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
              ctx.log.error(
                { err: rowErr, offset: String(record.offset) },
                'A dead letter could not be landed in ClickHouse; it stays on the DLQ topic.',
              );
            }
          }
        }
        ctx.metrics.inc('rows', rows.length);
      },
    });
    return { store };
  },
});
