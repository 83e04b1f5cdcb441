import type { Context } from '@cordon/runtime';
import type { Store } from '@cordon/store';

/** The tables whose retention the sink's `retentionDays` sets, and what their TTL counts from (when rows arrived, never the capture's clock). */
const TTL_FROM = {
  flows: 'toDateTime(ingested_at)',
  alerts: 'toDateTime(ingested_at)',
  blocks: 'toDateTime(ingested_at)',
  block_status: 'toDateTime(ingested_at)',
  fim_events: 'toDateTime(ingested_at)',
  dlq: 'toDateTime(ingested_at)',
  alerts_hourly: 'ingested',
  talkers_hourly: 'ingested',
} as const;

export type RetentionTable = keyof typeof TTL_FROM;
export const RETENTION_TABLES = Object.keys(TTL_FROM) as RetentionTable[];

/**
 * Set each named table's TTL to its configured days, when it differs from what the table has.
 * Existing parts are not rewritten at once (materialize_ttl_after_modify = 0): expired rows go
 * at the next merges, so a changed setting never stalls the start on a large table.
 */
export async function applyRetention(
  store: Store,
  days: Partial<Record<RetentionTable, number>>,
  ctx: Context,
): Promise<string[]> {
  const changed: string[] = [];
  for (const [table, n] of Object.entries(days) as Array<[RetentionTable, number]>) {
    const [row] = await store.query<{ engine_full: string }>(
      'SELECT engine_full FROM system.tables WHERE database = currentDatabase() AND name = {t:String}',
      { t: table },
    );
    if (!row) continue;
    if (new RegExp(`TTL ${TTL_FROM[table].replace(/[()]/g, '\\$&')} \\+ toIntervalDay\\(${n}\\)`).test(row.engine_full))
      continue;
    await store.command(
      `ALTER TABLE ${table} MODIFY TTL ${TTL_FROM[table]} + INTERVAL ${n} DAY DELETE SETTINGS materialize_ttl_after_modify = 0`,
    );
    changed.push(table);
    ctx.log.info({ table, days: n }, 'Table retention set from the configuration.');
  }
  return changed;
}
