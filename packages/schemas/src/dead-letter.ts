import { describeError } from '@cordon/runtime';
import { codecFor } from './codec.js';
import type { DeadLetter } from './generated.js';

/** Where a bad record came from (offset null: it came from no topic, e.g. a capture file). */
export interface DeadLetterSource {
  topic: string | null;
  partition: number | null;
  offset: bigint | number | null;
}

/**
 * The one way a stage writes a dead letter: the bad record whole, where it came from, and
 * the error's stable code and message. Returned as a record for `cordon.dlq.v1`, keyed by
 * the source topic (so one topic's dead letters stay in order).
 */
export function deadLetter(
  stage: string,
  source: DeadLetterSource,
  record: { key: Buffer | null; value: Buffer | null },
  err: unknown,
  nowUs: number,
): { letter: DeadLetter; key: Buffer; value: Buffer } {
  const { code, message } = describeError(err);
  const letter: DeadLetter = {
    ts_us: nowUs,
    stage,
    source_topic: source.topic,
    source_partition: source.partition,
    source_offset: source.offset === null ? null : Number(source.offset),
    error_code: code,
    error: message,
    key: record.key,
    value: record.value,
  };
  return { letter, key: Buffer.from(source.topic ?? stage), value: codecFor('cordon.dlq.v1').encode(letter) };
}
