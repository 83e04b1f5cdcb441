import type { Batch, ConsumedRecord } from '@cordon/bus';
import { codecFor, deadLetter, type DeadLetter } from '@cordon/schemas';
import { mappingFor } from './tables.js';

export interface SinkWork {
  table: string;
  rows: Record<string, unknown>[];
  /** The record each row came from (same index), to dead-letter a row ClickHouse refuses. */
  sources: ConsumedRecord[];
  /** Deterministic per input batch, so a redelivered batch is deduplicated by ClickHouse. */
  batchId: string;
  deadLetters: DeadLetter[];
}

/**
 * The pure part of the sink: one bus batch → rows for one table plus dead letters for the
 * records that do not decode. Nothing is dropped: a record is either a row or a dead letter.
 */
export function batchToRows(batch: Batch, nowUs: number): SinkWork {
  const mapping = mappingFor(batch.topic);
  if (!mapping) throw new Error(`the sink has no table for topic ${batch.topic}`);
  const codec = codecFor(mapping.topic);
  const rows: Record<string, unknown>[] = [];
  const sources: ConsumedRecord[] = [];
  const deadLetters: DeadLetter[] = [];
  for (const r of batch.records) {
    try {
      if (r.value === null) continue; // a tombstone on a compacted topic is not a row
      rows.push(mapping.toRow(codec.decode(r.value) as never));
      sources.push(r);
    } catch (err) {
      deadLetters.push(deadLetterOf(r, err, nowUs));
    }
  }
  const first = batch.records[0]!.offset;
  const last = batch.records[batch.records.length - 1]!.offset;
  return { table: mapping.table, rows, sources, batchId: `${batch.topic}:${batch.partition}:${first}-${last}`, deadLetters };
}

export function deadLetterOf(r: ConsumedRecord, err: unknown, nowUs: number): DeadLetter {
  return deadLetter('sink', r, r, err, nowUs).letter;
}
