import {
  closeSync,
  existsSync,
  fchmodSync,
  fstatSync,
  openSync,
  readFileSync,
  renameSync,
  writeSync,
  fsync,
  fsyncSync,
} from 'node:fs';
import * as zlib from 'node:zlib';
import type { BusHeaders } from '../types.js';

/**
 * One partition's log: records in memory (sorted by offset, gaps allowed after compaction or
 * damage) and an append-only file so a restart resumes where it stopped.
 *
 * File format (v2): the 8-byte header `CRDLOG2\n`, then one frame per record:
 *
 *     magic u32 (0xC0DB10C2) | length u32 | CRC-32 u32 of (length, payload) | payload
 *
 * where the payload holds offset, timestamp, key, value and headers. The magic lets a reader
 * find the next record after damaged bytes, so a flipped bit costs the record it hit, not
 * everything after it. Damaged bytes are handed to `onDamage` (the bus quarantines them to a
 * file and the DLQ) and skipped; the file is rewritten without them.
 *
 * Offsets never go back: the next offset is past every record read, past the records the
 * damaged bytes could have held, and past `floor` (the highest offset a consumer group
 * committed). A v1 file (the same frames without magic or header, from Cordon before this
 * format) is read as such, its damaged tail quarantined, and rewritten as v2 on open.
 */
export interface StoredRecord {
  offset: bigint;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: BusHeaders;
}

/** When appends reach the disk: before the send returns, on a timer, or when the OS decides. */
export type FsyncPolicy = 'every-batch' | 'interval' | 'never';

/** Bytes of a log that do not form records. */
export interface LogDamage {
  /** Byte position in the file where the damage starts. */
  position: number;
  bytes: Buffer;
  /** The first offset that may have been lost (the one after the last good record before it). */
  firstOffset: bigint;
  detail: string;
}

const HEADER = Buffer.from('CRDLOG2\n');
const MAGIC = 0xc0db10c2;
const MAGIC_BYTES = Buffer.from([0xc0, 0xdb, 0x10, 0xc2]);
const FRAME = 12;
/** The smallest frame: header, offset, timestamp, null key, null value, no headers. */
const MIN_FRAME = FRAME + 8 + 8 + 4 + 4 + 4;
const MIN_FRAME_V1 = MIN_FRAME - 4;

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (zlib's when this Node has it, 20.15+). */
export function crc32(buf: Buffer, init = 0): number {
  const native = (zlib as { crc32?: (data: Buffer, value?: number) => number }).crc32;
  if (native) return native(buf, init);
  let c = (init ^ 0xffffffff) >>> 0;
  for (let i = 0; i < buf.length; i++) c = CRC_TABLE[(c ^ buf[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function payloadSize(r: StoredRecord): number {
  let size = 8 + 8 + 4 + (r.key?.length ?? 0) + 4 + (r.value?.length ?? 0) + 4;
  for (const [k, v] of Object.entries(r.headers)) size += 4 + Buffer.byteLength(k) + 4 + v.length;
  return size;
}

function encodePayload(r: StoredRecord): Buffer {
  const hk = Object.entries(r.headers).map(([k, v]) => [Buffer.from(k), v] as const);
  const payload = Buffer.allocUnsafe(payloadSize(r));
  let o = 0;
  payload.writeBigInt64BE(r.offset, o);
  o += 8;
  payload.writeDoubleBE(r.timestamp, o);
  o += 8;
  o = writeBytes(payload, o, r.key);
  o = writeBytes(payload, o, r.value);
  payload.writeUInt32BE(hk.length, o);
  o += 4;
  for (const [k, v] of hk) {
    o = writeBytes(payload, o, k);
    o = writeBytes(payload, o, v);
  }
  return payload;
}

function encodeRecord(r: StoredRecord): Buffer {
  const payload = encodePayload(r);
  const frame = Buffer.allocUnsafe(FRAME);
  frame.writeUInt32BE(MAGIC, 0);
  frame.writeUInt32BE(payload.length, 4);
  frame.writeUInt32BE(crc32(payload, crc32(frame.subarray(4, 8))), 8);
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
  const offset = p.readBigInt64BE(o);
  o += 8;
  const timestamp = p.readDoubleBE(o);
  o += 8;
  let key: Buffer | null, value: Buffer | null;
  [key, o] = readBytes(p, o);
  [value, o] = readBytes(p, o);
  const n = p.readUInt32BE(o);
  o += 4;
  const headers: BusHeaders = {};
  for (let i = 0; i < n; i++) {
    let k: Buffer | null, v: Buffer | null;
    [k, o] = readBytes(p, o);
    [v, o] = readBytes(p, o);
    headers[(k ?? Buffer.alloc(0)).toString()] = v ?? Buffer.alloc(0);
  }
  if (o !== p.length) throw new RangeError('bytes after the last field');
  return { offset, timestamp, key, value, headers };
}

/** The v2 frame at `o`, if one is there whole and its CRC holds. */
function frameAt(buf: Buffer, o: number): { rec: StoredRecord; end: number } | null {
  if (o + FRAME > buf.length || buf.readUInt32BE(o) !== MAGIC) return null;
  const len = buf.readUInt32BE(o + 4);
  if (o + FRAME + len > buf.length) return null;
  const payload = buf.subarray(o + FRAME, o + FRAME + len);
  if (crc32(payload, crc32(buf.subarray(o + 4, o + 8))) !== buf.readUInt32BE(o + 8)) return null;
  try {
    return { rec: decodePayload(payload), end: o + FRAME + len };
  } catch {
    return null;
  }
}

/** The v1 frame at `o` (length, CRC of the payload, payload). */
function frameV1At(buf: Buffer, o: number): { rec: StoredRecord; end: number } | null {
  if (o + 8 > buf.length) return null;
  const len = buf.readUInt32BE(o);
  if (o + 8 + len > buf.length) return null;
  const payload = buf.subarray(o + 8, o + 8 + len);
  if (crc32(payload) !== buf.readUInt32BE(o + 4)) return null;
  try {
    return { rec: decodePayload(payload), end: o + 8 + len };
  } catch {
    return null;
  }
}

export interface PartitionLogOptions {
  file: string;
  fsync: FsyncPolicy;
  /** The highest offset a consumer group committed on this partition: the next offset is at least this. */
  floor?: bigint;
  onDamage: (damage: LogDamage) => void;
}

export class PartitionLog {
  records: StoredRecord[] = [];
  /** Next offset to assign. Survives compaction, retention and damage (offsets never go back). */
  nextOffset = 0n;
  private fd: number | null = null;
  private fileBytes = 0;
  /** Appends so far, and how many of them an fsync has covered (both only grow). */
  private written = 0;
  private synced = 0;
  /** An fsync is under way on a libuv pool thread. */
  private syncing = false;
  /** Bumped when the file is rewritten or closed: an fsync of the file before does not count. */
  private fileGen = 0;
  /** Sends waiting for their appends to be on disk (`durable`). */
  private waiters: Array<{ upTo: number; resolve: () => void; reject: (err: Error) => void }> = [];

  constructor(private readonly opts: PartitionLogOptions) {}

  get file(): string {
    return this.opts.file;
  }

  open(): void {
    const rewrite = existsSync(this.opts.file) ? this.load() : true;
    if (this.opts.floor !== undefined && this.opts.floor > this.nextOffset) this.nextOffset = this.opts.floor;
    if (rewrite) this.rewrite(this.records);
    else {
      this.fd = openSync(this.opts.file, 'a', 0o600);
      fchmodSync(this.fd, 0o600);
    }
  }

  /** Read the file; true when it must be rewritten (damaged, or in the v1 format). */
  private load(): boolean {
    const buf = readFileSync(this.opts.file);
    const headerOk = buf.length >= HEADER.length && buf.subarray(0, HEADER.length).equals(HEADER);
    // a damaged header must not turn a v2 log into an unreadable v1 one: its first frame says which it is
    const v2 = headerOk || (buf.length >= HEADER.length + 4 && buf.readUInt32BE(HEADER.length) === MAGIC);
    let o = v2 ? HEADER.length : 0;
    let damaged = false;
    while (o < buf.length) {
      const f = v2 ? frameAt(buf, o) : frameV1At(buf, o);
      if (f) {
        this.take(f.rec);
        o = f.end;
        continue;
      }
      // damaged bytes: a v2 log resumes at the next frame whose magic and CRC hold; a v1 log has
      // no marker to find one by, so everything after the damage is set aside
      let next = buf.length;
      if (v2) {
        for (let m = buf.indexOf(MAGIC_BYTES, o + 1); m >= 0; m = buf.indexOf(MAGIC_BYTES, m + 1)) {
          const g = frameAt(buf, m);
          if (g && g.rec.offset >= this.nextOffset) {
            next = m;
            break;
          }
        }
      }
      const bytes = Buffer.from(buf.subarray(o, next));
      const firstOffset = this.nextOffset;
      // a damaged tail may have held records that were handed out: their offsets are not
      // handed out again (damage in the middle is bounded by the records after it)
      if (next === buf.length) this.nextOffset += BigInt(Math.floor(bytes.length / (v2 ? MIN_FRAME : MIN_FRAME_V1)));
      this.opts.onDamage({
        position: o,
        bytes,
        firstOffset,
        detail: `${bytes.length} bytes at byte ${o} do not form a record${next < buf.length ? `; records resume at byte ${next}` : ' (the end of the file)'}`,
      });
      damaged = true;
      o = next;
    }
    // Tombstone markers for trimmed prefixes are stored as the "next offset" header record.
    this.records = this.records.filter((r) => !r.headers['__cordon_next_offset']);
    this.fileBytes = buf.length;
    return damaged || !headerOk;
  }

  private take(rec: StoredRecord): void {
    this.records.push(rec);
    if (rec.offset >= this.nextOffset) this.nextOffset = rec.offset + 1n;
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
    this.written++;
    this.fileBytes += data.length;
    for (const r of stored) this.records.push(r);
    return stored;
  }

  /**
   * Resolves once every append so far is on disk — under the `every-batch` policy (control
   * topics), where a send awaits it; at once under the others. The fsync runs on a libuv pool
   * thread, never on the event loop: while another process writes to the disk one can take
   * hundreds of milliseconds, and waiting for it there stalled every stage of the process (a
   * 700 ms stall of the detection → block loop, bench/RESULTS.md "Detection → block"). One
   * fsync at a time per log; appends during it are covered by the next. A consumer may read a
   * record before it is on disk, as a Kafka consumer reads what the leader has appended.
   */
  durable(): Promise<void> {
    if (this.opts.fsync !== 'every-batch' || this.synced >= this.written || this.fd === null) return Promise.resolve();
    const upTo = this.written;
    const done = new Promise<void>((resolve, reject) => this.waiters.push({ upTo, resolve, reject }));
    this.flush();
    return done;
  }

  /** fsync what was appended since the last one, now (closing). */
  sync(): void {
    if (this.fd === null || this.opts.fsync === 'never' || (this.synced >= this.written && !this.syncing)) return;
    fsyncSync(this.fd);
    this.covered(this.written);
  }

  /**
   * The `interval` policy's tick: fsync on a pool thread what was appended since the last one
   * (see `durable`). A failed one leaves the appends unsynced for the next tick. Should the file
   * be closed or rewritten meanwhile, close() and rewrite() fsync themselves.
   */
  syncInBackground(): void {
    if (this.opts.fsync !== 'never') this.flush();
  }

  private flush(): void {
    if (this.syncing || this.fd === null || this.synced >= this.written) return;
    const upTo = this.written;
    const gen = this.fileGen;
    this.syncing = true;
    fsync(this.fd, (err) => {
      // a rewrite or close since has put everything on disk and settled the waiters
      if (gen !== this.fileGen) return;
      this.syncing = false;
      if (err) {
        const failed = this.waiters.filter((w) => w.upTo <= upTo);
        this.waiters = this.waiters.filter((w) => w.upTo > upTo);
        for (const w of failed) w.reject(err);
      } else this.covered(upTo);
      if (this.waiters.length > 0) this.flush();
    });
  }

  /** Appends up to `upTo` are on disk: their senders go on. */
  private covered(upTo: number): void {
    if (upTo > this.synced) this.synced = upTo;
    if (this.waiters.length === 0) return;
    const still: typeof this.waiters = [];
    for (const w of this.waiters)
      if (w.upTo <= this.synced) w.resolve();
      else still.push(w);
    this.waiters = still;
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
   * least half of it is dead.
   */
  replace(records: StoredRecord[]): void {
    const removed = this.records.length - records.length;
    this.records = records;
    if (removed === 0) return;
    const live = records.reduce((n, r) => n + FRAME + payloadSize(r), 0);
    if (live * 2 > this.fileBytes) return;
    this.rewrite(records);
  }

  /**
   * Write `records` as a fresh v2 file: a temp file + fsync + rename, so a crash leaves either
   * the old or the new file, never a mix. A marker record keeps nextOffset when the newest
   * records were removed (or lost).
   */
  private rewrite(records: StoredRecord[]): void {
    const marker = encodeRecord({
      offset: this.nextOffset - 1n,
      timestamp: 0,
      key: null,
      value: null,
      headers: { __cordon_next_offset: Buffer.from('1') },
    });
    const data = Buffer.concat([HEADER, ...records.map(encodeRecord), ...(this.nextOffset > 0n ? [marker] : [])]);
    const tmp = `${this.opts.file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    fchmodSync(fd, 0o600);
    writeSync(fd, data);
    fsyncSync(fd);
    closeSync(fd);
    if (this.fd !== null) closeSync(this.fd);
    renameSync(tmp, this.opts.file);
    this.fd = openSync(this.opts.file, 'a', 0o600);
    this.fileBytes = fstatSync(this.fd).size;
    this.fileGen++;
    this.syncing = false;
    this.covered(this.written);
  }

  close(): void {
    if (this.fd !== null) {
      if ((this.synced < this.written || this.syncing) && this.opts.fsync !== 'never') fsyncSync(this.fd);
      closeSync(this.fd);
      this.fileGen++;
      this.syncing = false;
    }
    this.fd = null;
    this.covered(this.written);
  }
}
