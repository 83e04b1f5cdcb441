/**
 * The producer's own record-batch encoder (src/kafka/record-batch.ts) against the Kafka
 * client's: the same bytes as its encoder (but the partition leader epoch, which producers do
 * not know: -1), and what its decoder reads back. The broker's own check of these batches is
 * the conformance suite (conformance.kafka.test.ts), which produces through this encoder.
 * Then the consumer's decoder of fetched batches (src/kafka/fetch-response.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRecordsBatch, crc32c, readRecordsBatch, Reader } from '@platformatic/kafka';
import { encodeRecordBatch, type BatchRecord } from '../src/kafka/record-batch.js';
import { decodeBatches } from '../src/kafka/fetch-response.js';

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

// ---- the consumer's side: decodeBatches (src/kafka/fetch-response.ts) ----

const pid0 = { producerId: 1n, producerEpoch: 0, baseSequence: 0 };
/** A batch as the broker hands it out: base offset set. */
function atOffset(buf: Buffer, base: bigint): Buffer {
  const b = Buffer.from(buf);
  b.writeBigInt64BE(base, 0);
  return b;
}

test('fetched batches decode to the records produced, records below the fetch offset left out', () => {
  const records = sample();
  const two = Buffer.concat([
    atOffset(encodeRecordBatch(records, pid0), 100n),
    atOffset(encodeRecordBatch(records.slice(0, 2), pid0), 104n),
  ]);
  const all = decodeBatches(two, 100n);
  assert.deepEqual(
    all.records.map((r) => r.offset),
    [100n, 101n, 102n, 103n, 104n, 105n],
  );
  assert.equal(all.next, 106n);
  all.records.slice(0, 4).forEach((r, i) => {
    assert.deepEqual(r.key, records[i]!.key);
    assert.deepEqual(r.value, records[i]!.value);
    assert.equal(r.timestamp, records[i]!.timestamp);
  });
  assert.deepEqual(all.records[3]!.headers, { 'cordon-agent': Buffer.from('agt-1'), empty: Buffer.alloc(0) });
  // a fetch from 102 gets the first batch's tail only
  assert.deepEqual(
    decodeBatches(two, 102n).records.map((r) => r.offset),
    [102n, 103n, 104n, 105n],
  );
  // the broker cuts the last batch at the fetch size: the whole ones are read, the cut one next time
  const cut = decodeBatches(two.subarray(0, two.length - 10), 100n);
  assert.equal(cut.records.length, 4);
  assert.equal(cut.next, 104n);
});

test('a batch of a LogAppendTime topic gives every record the broker’s append time, as Kafka’s clients do', () => {
  const records = sample();
  assert.ok(new Set(records.map((r) => r.timestamp)).size > 1, 'the sample has records of different create times');
  const b = atOffset(encodeRecordBatch(records, pid0), 0n);
  const appended = 1_800_000_000_123;
  // what the broker writes for message.timestamp.type=LogAppendTime: the type bit and maxTimestamp
  b.writeInt16BE(b.readInt16BE(21) | 0x08, 21);
  b.writeBigInt64BE(BigInt(appended), 35);
  assert.deepEqual(
    decodeBatches(b, 0n).records.map((r) => r.timestamp),
    records.map(() => appended),
  );
});

test('a control batch is stepped over; a compressed batch (as other clients write) is read', () => {
  const control = atOffset(encodeRecordBatch([{ key: null, value: null, headers: null, timestamp: 1 }], pid0), 7n);
  control.writeInt16BE(0x20, 21);
  const gz = createRecordsBatch(
    [
      { topic: 't', partition: 0, key: Buffer.from('k'), value: Buffer.from('gzipped'), timestamp: 5n },
      { topic: 't', partition: 0, key: Buffer.from('k'), value: Buffer.from('twice'), timestamp: 6n },
    ] as never,
    { compression: 'gzip' } as never,
  ).buffer;
  const got = decodeBatches(Buffer.concat([control, atOffset(gz, 8n)]), 7n);
  assert.equal(got.next, 10n);
  assert.deepEqual(
    got.records.map((r) => [r.offset, r.value?.toString(), r.timestamp]),
    [
      [8n, 'gzipped', 5],
      [9n, 'twice', 6],
    ],
  );
});

test('a record whose fields run past its batch is refused, not read out of bounds', () => {
  const b = atOffset(
    encodeRecordBatch([{ key: Buffer.from('k'), value: Buffer.alloc(50, 1), headers: null, timestamp: 1 }], pid0),
    0n,
  );
  // the value's length varint (zigzag 50 = 100) claims 127 bytes instead
  const at = b.indexOf(Buffer.from([100]), 61 + 5);
  b[at] = 127 * 2;
  b[at + 1] = 0;
  assert.throws(() => decodeBatches(b, 0n), RangeError);
});
