/**
 * Kafka's record batch (magic 2), encoded in one pass into one buffer. Why not the client's
 * encoder: it builds a Writer and a DynamicBuffer per record and does BigInt arithmetic per
 * record — ~8 µs a 200-byte record on this machine, which capped the producer near 120k
 * records/s whatever the broker did (bench/RESULTS.md, "Kafka adapter produce"). Here: the
 * size is computed first, then every field is written once into a buffer of that size
 * (~1 µs a record), CRC-32C by the client's own (wasm) implementation.
 *
 *   baseOffset i64 | batchLength i32 | partitionLeaderEpoch i32 | magic i8 = 2 | crc u32 |
 *   attributes i16 | lastOffsetDelta i32 | firstTimestamp i64 | maxTimestamp i64 |
 *   producerId i64 | producerEpoch i16 | baseSequence i32 | count i32 | records…
 *   record: length varint | attributes i8 | timestampDelta varlong | offsetDelta varint |
 *           key (varint length, -1 = null) | value (same) | header count varint |
 *           headers: key (varint length + UTF-8) | value (varint length, -1 = null)
 */
import { crc32c } from '@platformatic/kafka';

/** One record as the batch carries it; headers as raw name/value pairs. */
export interface BatchRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<[Buffer, Buffer]> | null;
  /** Milliseconds since the epoch. */
  timestamp: number;
}

export interface BatchProducer {
  producerId: bigint;
  producerEpoch: number;
  baseSequence: number;
}

/** Bytes from the batch start to the first record. */
const HEADER = 61;
/** Where the CRC-covered part begins (attributes). */
const CRC_FROM = 21;

/** Bytes of a zigzag varint of a (safe) integer. */
function varintSize(n: number): number {
  let z = n >= 0 ? n * 2 : -n * 2 - 1;
  let size = 1;
  while (z >= 128) {
    z = Math.floor(z / 128);
    size++;
  }
  return size;
}

function writeVarint(buf: Buffer, at: number, n: number): number {
  let z = n >= 0 ? n * 2 : -n * 2 - 1;
  while (z >= 128) {
    buf[at++] = (z % 128) | 128;
    z = Math.floor(z / 128);
  }
  buf[at++] = z;
  return at;
}

const bytesSize = (b: Buffer | null): number => (b === null ? 1 : varintSize(b.length) + b.length);

function writeBytes(buf: Buffer, at: number, b: Buffer | null): number {
  if (b === null) return writeVarint(buf, at, -1);
  at = writeVarint(buf, at, b.length);
  b.copy(buf, at);
  return at + b.length;
}

/** The batch of `records` (at least one), as a produce request carries it. */
export function encodeRecordBatch(records: readonly BatchRecord[], producer: BatchProducer): Buffer {
  if (records.length === 0) throw new RangeError('a record batch holds at least one record');
  const first = records[0]!.timestamp;
  let max = first;
  const bodies = new Array<number>(records.length);
  let total = HEADER;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    if (r.timestamp > max) max = r.timestamp;
    let body = 1 + varintSize(r.timestamp - first) + varintSize(i) + bytesSize(r.key) + bytesSize(r.value);
    const h = r.headers;
    body += varintSize(h === null ? 0 : h.length);
    if (h !== null) for (const [k, v] of h) body += bytesSize(k) + bytesSize(v);
    bodies[i] = body;
    total += varintSize(body) + body;
  }
  const buf = Buffer.allocUnsafe(total);
  buf.writeBigInt64BE(0n, 0); // baseOffset: the broker assigns it
  buf.writeInt32BE(total - 12, 8);
  buf.writeInt32BE(-1, 12); // partitionLeaderEpoch: not known to producers
  buf.writeInt8(2, 16);
  buf.writeInt16BE(0, 21); // attributes: no compression, create time, not transactional
  buf.writeInt32BE(records.length - 1, 23);
  buf.writeBigInt64BE(BigInt(first), 27);
  buf.writeBigInt64BE(BigInt(max), 35);
  buf.writeBigInt64BE(producer.producerId, 43);
  buf.writeInt16BE(producer.producerEpoch, 51);
  buf.writeInt32BE(producer.baseSequence, 53);
  buf.writeInt32BE(records.length, 57);
  let at = HEADER;
  for (let i = 0; i < records.length; i++) {
    const r = records[i]!;
    at = writeVarint(buf, at, bodies[i]!);
    buf[at++] = 0;
    at = writeVarint(buf, at, r.timestamp - first);
    at = writeVarint(buf, at, i);
    at = writeBytes(buf, at, r.key);
    at = writeBytes(buf, at, r.value);
    const h = r.headers;
    at = writeVarint(buf, at, h === null ? 0 : h.length);
    if (h !== null)
      for (const [k, v] of h) {
        at = writeBytes(buf, at, k);
        at = writeBytes(buf, at, v);
      }
  }
  if (at !== total) throw new Error(`record batch: wrote ${at} bytes of ${total}`);
  buf.writeUInt32BE(crc32c(buf.subarray(CRC_FROM)) >>> 0, 17);
  return buf;
}
