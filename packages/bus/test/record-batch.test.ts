/**
 * The producer's own record-batch encoder (src/kafka/record-batch.ts) against the Kafka
 * client's: the same bytes as its encoder (but the partition leader epoch, which producers do
 * not know: -1), and what its decoder reads back. The broker's own check of these batches is
 * the conformance suite (conformance.kafka.test.ts), which produces through this encoder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRecordsBatch, crc32c, readRecordsBatch, Reader } from '@platformatic/kafka';
import { encodeRecordBatch, type BatchRecord } from '../src/kafka/record-batch.js';

const PID = { producerId: 4711n, producerEpoch: 3, baseSequence: 1234 };

function clientBytes(records: BatchRecord[]): Buffer {
  const messages = records.map((r) => ({
    topic: 't',
    partition: 0,
    key: r.key ?? undefined,
    value: r.value ?? undefined,
    headers: new Map(r.headers ?? []),
    timestamp: BigInt(r.timestamp),
  }));
  const sequences = new Map([['t:0', PID.baseSequence]]) as unknown as Map<string, number> & {
    getWithDefault(k: string, d: number): number;
  };
  sequences.getWithDefault = (k, d) => sequences.get(k) ?? d;
  return createRecordsBatch(
    messages as never,
    {
      producerId: PID.producerId,
      producerEpoch: PID.producerEpoch,
      sequences,
    } as never,
  ).buffer;
}

const sample = (): BatchRecord[] => {
  const t = 1_796_000_000_000;
  return [
    { key: Buffer.from('vm-1'), value: Buffer.alloc(200, 7), headers: null, timestamp: t },
    // timestamps need not grow; deltas are signed
    { key: null, value: Buffer.from('no key'), headers: null, timestamp: t - 5 },
    { key: Buffer.from('tomb'), value: null, headers: null, timestamp: t + 1000 },
    {
      key: Buffer.from('h'),
      value: Buffer.alloc(70_000, 1), // a length of three varint bytes
      headers: [
        [Buffer.from('cordon-agent'), Buffer.from('agt-1')],
        [Buffer.from('empty'), Buffer.alloc(0)],
      ],
      timestamp: t + 2,
    },
  ];
};

test('a record batch is byte for byte the client encoder’s, leader epoch aside', () => {
  const records = sample();
  const ours = encodeRecordBatch(records, PID);
  const theirs = clientBytes(records);
  assert.equal(ours.length, theirs.length);
  assert.equal(ours.readInt32BE(12), -1, 'partition leader epoch: unknown to a producer');
  const mask = (b: Buffer) => Buffer.concat([b.subarray(0, 12), b.subarray(16)]);
  assert.deepEqual(mask(ours), mask(theirs));
});

test('the client decoder reads back every field; the CRC covers attributes to the end', () => {
  const records = sample();
  const buf = encodeRecordBatch(records, PID);
  assert.equal(buf.readUInt32BE(17), crc32c(buf.subarray(21)) >>> 0);
  const batch = readRecordsBatch(Reader.from(buf));
  assert.equal(batch.magic, 2);
  assert.equal(batch.producerId, PID.producerId);
  assert.equal(batch.producerEpoch, PID.producerEpoch);
  assert.equal(batch.firstSequence, PID.baseSequence);
  assert.equal(batch.lastOffsetDelta, records.length - 1);
  assert.equal(batch.maxTimestamp, BigInt(records[0]!.timestamp + 1000));
  assert.equal(batch.records.length, records.length);
  batch.records.forEach((r, i) => {
    const want = records[i]!;
    assert.equal(r.offsetDelta, i);
    assert.equal(batch.firstTimestamp + r.timestampDelta, BigInt(want.timestamp));
    assert.deepEqual(r.key ?? null, want.key, `key of ${i}`);
    assert.deepEqual(r.value ?? null, want.value, `value of ${i}`);
    assert.deepEqual(
      r.headers.map(([k, v]) => [k?.toString(), v]),
      (want.headers ?? []).map(([k, v]) => [k.toString(), v]),
    );
  });
});

test('an empty batch is refused (Kafka has no such thing)', () => {
  assert.throws(() => encodeRecordBatch([], PID), RangeError);
});
