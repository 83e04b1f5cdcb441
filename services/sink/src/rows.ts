import { createHash } from 'node:crypto';
import type { ConsumedRecord } from '@cordon/bus';
import type { Store } from '@cordon/store';
import { codecFor, deadLetter, TOPICS, type DeadLetter, type TopicName } from '@cordon/schemas';
import { mappingFor } from './tables.js';

/**
 * The pure part of the sink: one record → one row of its topic's table. A record that does not
 * decode throws (the runtime dead-letters it) — except on the DLQ topic itself, where a dead
 * letter that does not decode is landed raw as a dead letter of the sink, never sent back to
 * the DLQ (that would loop).
 */
export function rowOf(record: ConsumedRecord, value: Buffer, nowUs: number): Record<string, unknown> {
  const mapping = mappingFor(record.topic);
  if (!mapping) throw new Error(`the sink has no table for topic ${record.topic}`);
  try {
    return mapping.toRow(codecFor(mapping.topic as TopicName).decode(value) as never);
  } catch (err) {
    if (record.topic !== TOPICS.dlq) throw err;
    return mappingFor(TOPICS.dlq)!.toRow(deadLetterOf(record, err, nowUs) as never);
  }
}

/** The table a topic lands in. */
export function tableOf(topic: string): string {
  const mapping = mappingFor(topic);
  if (!mapping) throw new Error(`the sink has no table for topic ${topic}`);
  return mapping.table;
}

/** Deterministic per input batch, so a redelivered batch is deduplicated by ClickHouse. */
export function batchIdOf(topic: string, partition: number, first: bigint, last: bigint): string {
  return `${topic}:${partition}:${first}-${last}`;
}

export function deadLetterOf(r: ConsumedRecord, err: unknown, nowUs: number): DeadLetter {
  return deadLetter('sink', r, r, err, nowUs).letter;
}

export interface NewRows<R> {
  /** The rows to insert, in input order: those whose id is neither stored nor earlier in the batch. */
  rows: R[];
  /** The insert's dedup token: the batch id, plus a digest of the ids kept when some were dropped. */
  batchId: string;
  /** Rows left out: already stored, or repeated within the batch. */
  skipped: number;
}

/**
 * The rows of a batch that the table does not hold yet, by their deterministic id. A replay of
 * the same input as new records (the same capture replayed, the same alerts re-sent) carries
 * new offsets, so the insert's offset-derived dedup token does not catch it; the ids do.
 *
 * The token changes with the rows kept: a batch retried after a partial insert keeps fewer rows,
 * and must not be dropped as a repeat of the first attempt's first block.
 */
export async function newRowsOnly<R extends Record<string, unknown>>(
  store: Store,
  table: string,
  identity: { id: string | readonly string[]; time: string },
  rows: readonly R[],
  batchId: string,
): Promise<NewRows<R>> {
  if (rows.length === 0) return { rows: [], batchId, skipped: 0 };
  const { sql, of } = idOf(identity.id);
  let lo = String(rows[0]![identity.time]);
  let hi = lo;
  const ids = new Set<string>();
  for (const r of rows) {
    const t = String(r[identity.time]);
    if (t < lo) lo = t;
    if (t > hi) hi = t;
    ids.add(of(r));
  }
  const stored = new Set(
    (
      await store.query<{ id: string }>(
        `SELECT DISTINCT ${sql} AS id FROM ${table}
          WHERE ${identity.time} >= parseDateTime64BestEffort({lo:String}, 6, 'UTC') AND ${identity.time} <= parseDateTime64BestEffort({hi:String}, 6, 'UTC')
            AND ${sql} IN {ids:Array(String)}`,
        { lo, hi, ids: [...ids] },
      )
    ).map((r) => r.id),
  );
  const kept: R[] = [];
  const seen = new Set<string>();
  for (const r of rows) {
    const id = of(r);
    if (stored.has(id) || seen.has(id)) continue;
    seen.add(id);
    kept.push(r);
  }
  if (kept.length === rows.length) return { rows: kept, batchId, skipped: 0 };
  const digest = createHash('sha256')
    .update([...seen].join('\n'))
    .digest('hex')
    .slice(0, 16);
  return { rows: kept, batchId: `${batchId}#${digest}`, skipped: rows.length - kept.length };
}

/**
 * A row's identity as one string, computed alike in SQL and here. Several columns are joined
 * with each one but the last prefixed by its length in bytes, so no value can pass for another
 * pair ("a:b" + "c" and "a" + "b:c" differ).
 */
function idOf(id: string | readonly string[]): { sql: string; of: (r: Record<string, unknown>) => string } {
  const cols = typeof id === 'string' ? [id] : id;
  if (cols.length === 1) return { sql: cols[0]!, of: (r) => String(r[cols[0]!]) };
  const last = cols.length - 1;
  return {
    sql: `concat(${cols.map((c, i) => (i < last ? `toString(length(${c})), ':', ${c}` : c)).join(', ')})`,
    of: (r) =>
      cols
        .map((c, i) => {
          const v = String(r[c]);
          return i < last ? `${Buffer.byteLength(v)}:${v}` : v;
        })
        .join(''),
  };
}
