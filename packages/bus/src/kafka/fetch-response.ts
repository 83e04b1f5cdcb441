/**
 * The Fetch v17 response, read by the consumer itself: the client's parser turns every record
 * into a Reader call chain with a DynamicBuffer slice per field and BigInt arithmetic, which was
 * most of the consumer's CPU (~2.2 µs a 200-byte record). Here records are decoded straight
 * from the response buffer into the bus's own shape — key, value and header values are views
 * of that buffer, not copies.
 *
 * Also: tagged fields are skipped as the protocol defines them (count, then tag + size + data
 * each); the client reads their count as a zigzag varint and their size as the count, so a
 * response carrying one (a leader change names the new leader in one) could not be read.
 */
import { ResponseError, compressionsAlgorithmsByBitmask, type Reader } from '@platformatic/kafka';
import type { BusHeaders } from '../types.js';

export interface FetchedRecord {
  offset: bigint;
  key: Buffer | null;
  value: Buffer | null;
  headers: BusHeaders;
  timestamp: number;
}

export interface FetchedPartition {
  partitionIndex: number;
  errorCode: number;
  highWatermark: bigint;
  /** Data records in offset order (control batches left out). */
  records: FetchedRecord[];
  /** The offset after the last batch in the response (control batches included); -1n: no batch. */
  next: bigint;
}

export interface FetchResponse {
  errorCode: number;
  responses: { topicId: string; partitions: FetchedPartition[] }[];
}

const IS_CONTROL = 0x20;
const COMPRESSION = 0x07;
/** Timestamp type 1: LogAppendTime — the broker's append time (the batch's maxTimestamp) is every record's. */
const LOG_APPEND_TIME = 0x08;
/** baseOffset + batchLength: a batch is whole only if this and batchLength more bytes are there. */
const BATCH_HEAD = 12;

/** A cursor over one contiguous buffer, for the records. */
class Cursor {
  at: number;
  constructor(
    readonly buf: Buffer,
    at = 0,
  ) {
    this.at = at;
  }
  /** Zigzag varint of up to 53 bits (Kafka's varint and varlong). */
  varint(): number {
    const b = this.buf;
    let shift = 1;
    let z = 0;
    let byte: number;
    do {
      if (this.at >= b.length) throw new RangeError('record batch: a varint runs past the end');
      byte = b[this.at++]!;
      z += (byte & 0x7f) * shift;
      shift *= 128;
    } while (byte & 0x80);
    return z % 2 === 0 ? z / 2 : -(z + 1) / 2;
  }
  bytes(): Buffer | null {
    const n = this.varint();
    if (n < 0) return null;
    if (this.at + n > this.buf.length) throw new RangeError('record batch: a field runs past the end');
    const out = this.buf.subarray(this.at, this.at + n);
    this.at += n;
    return out;
  }
}

/** Decode the whole batches in `buf` (a partial last one, cut by the fetch size, is left out). */
export function decodeBatches(buf: Buffer, from: bigint): { records: FetchedRecord[]; next: bigint } {
  const records: FetchedRecord[] = [];
  let next = -1n;
  let at = 0;
  while (buf.length - at >= BATCH_HEAD + 49) {
    const batchLength = buf.readInt32BE(at + 8);
    const end = at + BATCH_HEAD + batchLength;
    if (batchLength < 49 || end > buf.length) break;
    const baseOffset = buf.readBigInt64BE(at);
    const magic = buf.readInt8(at + 16);
    const attributes = buf.readInt16BE(at + 21);
    const lastOffsetDelta = buf.readInt32BE(at + 23);
    const batchEnd = baseOffset + BigInt(lastOffsetDelta) + 1n;
    if (batchEnd > next) next = batchEnd;
    if (magic !== 2) throw new RangeError(`record batch: magic ${magic} is not supported (only 2)`);
    if (attributes & IS_CONTROL || batchEnd <= from) {
      at = end;
      continue;
    }
    const firstTimestamp = Number(buf.readBigInt64BE(at + 27));
    const appendTime = attributes & LOG_APPEND_TIME ? Number(buf.readBigInt64BE(at + 35)) : null;
    const count = buf.readInt32BE(at + 57);
    let c: Cursor;
    const compression = attributes & COMPRESSION;
    if (compression !== 0) {
      const algorithm = (
        compressionsAlgorithmsByBitmask as Record<number, { decompressSync(b: Buffer): Buffer } | undefined>
      )[compression];
      if (!algorithm) throw new RangeError(`record batch: unknown compression ${compression}`);
      c = new Cursor(algorithm.decompressSync(buf.subarray(at + 61, end)));
    } else c = new Cursor(buf.subarray(0, end), at + 61);
    for (let i = 0; i < count; i++) {
      c.varint(); // length
      c.at++; // attributes
      const tsDelta = c.varint();
      const offsetDelta = c.varint();
      const key = c.bytes();
      const value = c.bytes();
      const nh = c.varint();
      const headers: BusHeaders = {};
      for (let h = 0; h < nh; h++) {
        const k = c.bytes();
        const v = c.bytes();
        if (k) headers[k.toString()] = v ?? Buffer.alloc(0);
      }
      const offset = baseOffset + BigInt(offsetDelta);
      if (offset < from) continue;
      records.push({ offset, key, value, headers, timestamp: appendTime ?? firstTimestamp + tsDelta });
    }
    at = end;
  }
  return { records, next };
}

/** Tagged fields as the protocol has them: a count, then per field its tag, size and bytes. */
function skipTags(r: Reader): void {
  const n = r.readUnsignedVarInt();
  for (let i = 0; i < n; i++) {
    r.readUnsignedVarInt(); // tag
    r.skip(r.readUnsignedVarInt());
  }
}

function compactArray<T>(r: Reader, each: (r: Reader, i: number) => T): T[] {
  const n = r.readUnsignedVarInt() - 1;
  const out: T[] = [];
  for (let i = 0; i < n; i++) {
    out.push(each(r, i));
    skipTags(r);
  }
  return out;
}

/**
 * A response parser for the client's Connection.send: Fetch v17. `fromOf(topicId, partition)`
 * is the offset the fetch asked for (records below it, in the first batch, are left out).
 * Partition errors are left in the response; a top-level error throws a ResponseError with
 * the response, as the client's parser does.
 */
export function fetchV17Parser(fromOf: (topicId: string, partition: number) => bigint) {
  return (_correlationId: number, apiKey: number, apiVersion: number, r: Reader): FetchResponse => {
    r.readInt32(); // throttle_time_ms
    const errorCode = r.readInt16();
    r.readInt32(); // session_id
    const responses = compactArray(r, (r) => {
      const topicId = r.readUUID();
      const partitions = compactArray(r, (r): FetchedPartition => {
        const partitionIndex = r.readInt32();
        const code = r.readInt16();
        const highWatermark = r.readInt64();
        r.readInt64(); // last_stable_offset
        r.readInt64(); // log_start_offset
        compactArray(r, (r) => {
          r.readInt64();
          r.readInt64();
        }); // aborted_transactions (bus consumers read uncommitted)
        r.readInt32(); // preferred_read_replica
        const size = r.readUnsignedVarInt() - 1; // COMPACT_RECORDS, null as -1
        let records: FetchedRecord[] = [];
        let next = -1n;
        if (size > 0) {
          ({ records, next } = decodeBatches(
            r.buffer.slice(r.position, r.position + size),
            fromOf(topicId, partitionIndex),
          ));
          r.skip(size);
        }
        return { partitionIndex, errorCode: code, highWatermark, records, next };
      });
      return { topicId, partitions };
    });
    skipTags(r);
    const response: FetchResponse = { errorCode, responses };
    if (errorCode !== 0) throw new ResponseError(apiKey, apiVersion, { '': [errorCode, null] }, response);
    return response;
  };
}
