import { closeSync, existsSync, fstatSync, ftruncateSync, openSync, readFileSync, renameSync, writeSync, fsyncSync } from 'node:fs';
import type { BusHeaders } from '../types.js';

/**
 * One partition's log: records in memory (sorted by offset, gaps allowed after compaction)
 * and an append-only file so a restart resumes where it stopped.
 *
 * File framing per record: u32 payload length, u32 CRC-32 of the payload, payload. A torn
 * write at the tail (a crash mid-append) fails the length or CRC check and is truncated on
 * load; everything before it is kept.
 */
export interface StoredRecord {
  offset: bigint;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: BusHeaders;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

export function crc32(buf: Buffer): number {
  let c = 0xffffffff;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function encodeRecord(r: StoredRecord): Buffer {
  const headerEntries = Object.entries(r.headers);
  let size = 8 + 8 + 4 + (r.key?.length ?? 0) + 4 + (r.value?.length ?? 0) + 4;
  const hk = headerEntries.map(([k, v]) => [Buffer.from(k), v] as const);
  for (const [k, v] of hk) size += 4 + k.length + 4 + v.length;
  const payload = Buffer.allocUnsafe(size);
  let o = 0;
  payload.writeBigInt64BE(r.offset, o); o += 8;
  payload.writeDoubleBE(r.timestamp, o); o += 8;
  o = writeBytes(payload, o, r.key);
  o = writeBytes(payload, o, r.value);
  payload.writeUInt32BE(hk.length, o); o += 4;
  for (const [k, v] of hk) {
    o = writeBytes(payload, o, k);
    o = writeBytes(payload, o, v);
  }
  const frame = Buffer.allocUnsafe(8);
  frame.writeUInt32BE(size, 0);
  frame.writeUInt32BE(crc32(payload), 4);
  return Buffer.concat([frame, payload]);
}

function writeBytes(buf: Buffer, o: number, b: Buffer | null): number {
  if (b === null) {
    buf.writeInt32BE(-1, o);
    return o + 4;
  }
  buf.writeInt32BE(b.length, o);
  b.copy(buf, o + 4);
  return o + 4 + b.length;
}

function readBytes(buf: Buffer, o: number): [Buffer | null, number] {
  const len = buf.readInt32BE(o);
  if (len < 0) return [null, o + 4];
  if (o + 4 + len > buf.length) throw new RangeError('field runs past the record');
  return [Buffer.from(buf.subarray(o + 4, o + 4 + len)), o + 4 + len];
}

function decodePayload(p: Buffer): StoredRecord {
  let o = 0;
  const offset = p.readBigInt64BE(o); o += 8;
  const timestamp = p.readDoubleBE(o); o += 8;
  let key: Buffer | null, value: Buffer | null;
  [key, o] = readBytes(p, o);
  [value, o] = readBytes(p, o);
  const n = p.readUInt32BE(o); o += 4;
  const headers: BusHeaders = {};
  for (let i = 0; i < n; i++) {
    let k: Buffer | null, v: Buffer | null;
    [k, o] = readBytes(p, o);
    [v, o] = readBytes(p, o);
    headers[(k ?? Buffer.alloc(0)).toString()] = v ?? Buffer.alloc(0);
  }
  return { offset, timestamp, key, value, headers };
}

export class PartitionLog {
  records: StoredRecord[] = [];
  /** Next offset to assign. Survives compaction and retention (offsets never go back). */
  nextOffset = 0n;
  private fd: number | null = null;
  /** Bytes appended since the file was last rewritten; drives file compaction. */
  private liveBytes = 0;
  private fileBytes = 0;

  constructor(
    private readonly file: string,
    private readonly fsync: boolean,
    private readonly onCorrupt: (detail: string) => void,
  ) {}

  open(): void {
    if (existsSync(this.file)) this.load();
    this.fd = openSync(this.file, 'a');
  }

  private load(): void {
    const buf = readFileSync(this.file);
    let o = 0;
    while (o < buf.length) {
      if (o + 8 > buf.length) break;
      const len = buf.readUInt32BE(o);
      const crc = buf.readUInt32BE(o + 4);
      if (o + 8 + len > buf.length) break;
      const payload = buf.subarray(o + 8, o + 8 + len);
      if (crc32(payload) !== crc) break;
      let rec: StoredRecord;
      try {
        rec = decodePayload(payload);
      } catch {
        break;
      }
      this.records.push(rec);
      if (rec.offset >= this.nextOffset) this.nextOffset = rec.offset + 1n;
      o += 8 + len;
    }
    if (o < buf.length) {
      this.onCorrupt(`${buf.length - o} bytes after offset ${o} do not form a record`);
      const fd = openSync(this.file, 'r+');
      ftruncateSync(fd, o);
      closeSync(fd);
    }
    // A compaction pass can leave records in the file out of order only if a rewrite was
    // interrupted; rewrites go through a temp file + rename, so sorted order holds. Tombstone
    // markers for trimmed prefixes are stored as the "next offset" header record.
    this.records = this.records.filter((r) => !r.headers['__cordon_next_offset']);
    this.fileBytes = o;
    this.liveBytes = o;
  }

  append(batch: Array<Omit<StoredRecord, 'offset'>>): StoredRecord[] {
    const stored: StoredRecord[] = [];
    const frames: Buffer[] = [];
    for (const r of batch) {
      const rec = { ...r, offset: this.nextOffset++ };
      stored.push(rec);
      frames.push(encodeRecord(rec));
    }
    const data = frames.length === 1 ? frames[0]! : Buffer.concat(frames);
    if (this.fd === null) throw new Error('partition log is closed');
    writeSync(this.fd, data);
    if (this.fsync) fsyncSync(this.fd);
    this.fileBytes += data.length;
    this.liveBytes += data.length;
    for (const r of stored) this.records.push(r);
    return stored;
  }

  /** Index of the first record with offset >= `offset`. */
  indexOf(offset: bigint): number {
    let lo = 0;
    let hi = this.records.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.records[mid]!.offset < offset) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  startOffset(): bigint {
    return this.records[0]?.offset ?? this.nextOffset;
  }

  /**
   * Replace the record list (after retention or compaction) and rewrite the file when at
   * least half of it is dead. The rewrite is a temp file + rename, so a crash leaves either
   * the old or the new file, never a mix. A marker record keeps nextOffset when the newest
   * records were removed.
   */
  replace(records: StoredRecord[]): void {
    const removedBytes = this.records.length - records.length;
    this.records = records;
    if (removedBytes === 0) return;
    const frames = records.map(encodeRecord);
    const live = frames.reduce((n, f) => n + f.length, 0);
    this.liveBytes = live;
    if (live * 2 > this.fileBytes) return;
    const marker = encodeRecord({ offset: this.nextOffset - 1n, timestamp: 0, key: null, value: null, headers: { __cordon_next_offset: Buffer.from('1') } });
    const tmp = `${this.file}.tmp`;
    const fd = openSync(tmp, 'w');
    writeSync(fd, Buffer.concat([...frames, marker]));
    fsyncSync(fd);
    closeSync(fd);
    if (this.fd !== null) closeSync(this.fd);
    renameSync(tmp, this.file);
    this.fd = openSync(this.file, 'a');
    this.fileBytes = fstatSync(this.fd).size;
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd);
    this.fd = null;
  }
}
