import type { ConsumedRecord } from '@cordon/bus';
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
