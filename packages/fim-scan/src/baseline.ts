import { createHash } from 'node:crypto';
import { closeSync, fsyncSync, openSync, writeSync } from 'node:fs';
import { mkdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Entry, EntryType } from './attrs.js';
import { ERR_FIM_BASELINE_CORRUPT, ERR_FIM_STATE_DIR } from './errors.js';

/**
 * The local baseline database: the state every path was last seen (and reported) in.
 * It is what makes changes made while the agent was down visible at its next start.
 *
 * File format (`fim-baseline.cfim`), little endian, paths sorted:
 *   "CFIMBL01" | u32 header length | header JSON (version, created, roots, selection) |
 *   records | SHA-256 of everything before it (32 bytes).
 * A record: u16 bytes shared with the previous path | u16 suffix length | suffix |
 *   u8 type | u8 flags (1 sha, 2 link, 4 error) | u32 mode, uid, gid |
 *   f64 size, dev, ino, mtime_us, ctime_us | [32-byte sha] | [u32 len + link] | [u32 len + error].
 * Sorted paths share long prefixes, so a 100k-file tree takes ~8 MB instead of ~30 MB of JSON.
 * Written to a temp file, fsync'd, renamed over the old one and the directory fsync'd: a
 * crash leaves the old baseline or the new one, never half of one. The trailing digest
 * catches a truncated or damaged file.
 */

const MAGIC = Buffer.from('CFIMBL01');
export const BASELINE_FILE = 'fim-baseline.cfim';
const TYPES: EntryType[] = ['file', 'dir', 'symlink', 'other'];

export interface BaselineHeader {
  version: 1;
  created_us: number;
  /** The watched roots this baseline covers. */
  roots: string[];
  /** Fingerprint of include/exclude: a different selection means a different set of paths. */
  selection: string;
}

export interface Baseline {
  header: BaselineHeader;
  entries: Map<string, Entry>;
}

export function baselinePath(stateDir: string): string {
  return join(stateDir, BASELINE_FILE);
}

export function selectionFingerprint(include: readonly string[], exclude: readonly string[]): string {
  return createHash('sha256').update(JSON.stringify({ include, exclude })).digest('hex').slice(0, 16);
}

class Writer {
  buf = Buffer.allocUnsafe(1 << 20);
  n = 0;
  ensure(k: number): void {
    if (this.n + k <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.n + k));
    this.buf.copy(next, 0, 0, this.n);
    this.buf = next;
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf.writeUInt8(v, this.n);
    this.n += 1;
  }
  u16(v: number): void {
    this.ensure(2);
    this.buf.writeUInt16LE(v, this.n);
    this.n += 2;
  }
  u32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.n);
    this.n += 4;
  }
  f64(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.n);
    this.n += 8;
  }
  bytes(b: Buffer): void {
    this.ensure(b.length);
    b.copy(this.buf, this.n);
    this.n += b.length;
  }
  str32(s: string): void {
    const b = Buffer.from(s, 'utf8');
    this.u32(b.length);
    this.bytes(b);
  }
}

export function encodeBaseline(b: Baseline): Buffer {
  const w = new Writer();
  w.bytes(MAGIC);
  const header = Buffer.from(JSON.stringify(b.header), 'utf8');
  w.u32(header.length);
  w.bytes(header);
  w.u32(b.entries.size);
  let prev = Buffer.alloc(0);
  for (const path of [...b.entries.keys()].sort()) {
    const e = b.entries.get(path)!;
    const p = Buffer.from(path, 'utf8');
    if (p.length > 0xffff) continue; // longer than any Linux PATH_MAX; cannot be a real path
    let shared = 0;
    const lim = Math.min(prev.length, p.length, 0xffff);
    while (shared < lim && prev[shared] === p[shared]) shared++;
    w.u16(shared);
    w.u16(p.length - shared);
    w.bytes(p.subarray(shared));
    prev = p;
    w.u8(TYPES.indexOf(e.type));
    w.u8((e.sha256 ? 1 : 0) | (e.linkTarget !== null ? 2 : 0) | (e.error !== null ? 4 : 0));
    w.u32(e.mode);
    w.u32(e.uid);
    w.u32(e.gid);
    w.f64(e.size);
    w.f64(e.dev);
    w.f64(e.ino);
    w.f64(e.mtimeUs);
    w.f64(e.ctimeUs);
    if (e.sha256) w.bytes(Buffer.from(e.sha256, 'hex'));
    if (e.linkTarget !== null) w.str32(e.linkTarget);
    if (e.error !== null) w.str32(e.error);
  }
  const body = w.buf.subarray(0, w.n);
  return Buffer.concat([body, createHash('sha256').update(body).digest()]);
}

/** Throws a plain Error describing what is wrong; loadBaseline wraps it. */
export function decodeBaseline(data: Buffer): Baseline {
  if (data.length < MAGIC.length + 8 + 32 || !data.subarray(0, MAGIC.length).equals(MAGIC))
    throw new Error('not a Cordon FIM baseline (bad magic)');
  const body = data.subarray(0, data.length - 32);
  if (
    !createHash('sha256')
      .update(body)
      .digest()
      .equals(data.subarray(data.length - 32))
  )
    throw new Error('checksum mismatch (truncated or damaged)');
  let o = MAGIC.length;
  const need = (k: number) => {
    if (o + k > body.length) throw new Error(`record runs past the end at byte ${o}`);
  };
  const hlen = body.readUInt32LE(o);
  o += 4;
  need(hlen);
  const header = JSON.parse(body.toString('utf8', o, o + hlen)) as BaselineHeader;
  o += hlen;
  if (header.version !== 1) throw new Error(`unsupported version ${String(header.version)}`);
  need(4);
  const count = body.readUInt32LE(o);
  o += 4;
  const entries = new Map<string, Entry>();
  let prev = Buffer.alloc(0);
  const str32 = () => {
    need(4);
    const len = body.readUInt32LE(o);
    o += 4;
    need(len);
    const s = body.toString('utf8', o, o + len);
    o += len;
    return s;
  };
  for (let i = 0; i < count; i++) {
    need(4);
    const shared = body.readUInt16LE(o);
    const slen = body.readUInt16LE(o + 2);
    o += 4;
    need(slen + 2 + 12 + 40);
    if (shared > prev.length) throw new Error(`bad path prefix at byte ${o}`);
    const p = Buffer.concat([prev.subarray(0, shared), body.subarray(o, o + slen)]);
    o += slen;
    prev = p;
    const type = TYPES[body.readUInt8(o)];
    const flags = body.readUInt8(o + 1);
    if (!type) throw new Error(`bad entry type at byte ${o}`);
    o += 2;
    const e: Entry = {
      path: p.toString('utf8'),
      type,
      mode: body.readUInt32LE(o),
      uid: body.readUInt32LE(o + 4),
      gid: body.readUInt32LE(o + 8),
      size: body.readDoubleLE(o + 12),
      dev: body.readDoubleLE(o + 20),
      ino: body.readDoubleLE(o + 28),
      mtimeUs: body.readDoubleLE(o + 36),
      ctimeUs: body.readDoubleLE(o + 44),
      sha256: null,
      linkTarget: null,
      error: null,
    };
    o += 52;
    if (flags & 1) {
      need(32);
      e.sha256 = body.toString('hex', o, o + 32);
      o += 32;
    }
    if (flags & 2) e.linkTarget = str32();
    if (flags & 4) e.error = str32();
    entries.set(e.path, e);
  }
  if (o !== body.length) throw new Error(`${body.length - o} trailing bytes after ${count} records`);
  return { header, entries };
}

export type LoadResult = { baseline: Baseline } | { baseline: null; corrupt?: Error };

/**
 * The baseline in `stateDir`, or null when there is none. A corrupt one is moved aside
 * (kept for inspection) and reported through `corrupt`; the caller starts a new baseline.
 */
export async function loadBaseline(stateDir: string): Promise<LoadResult> {
  const file = baselinePath(stateDir);
  let data: Buffer;
  try {
    data = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { baseline: null };
    throw ERR_FIM_STATE_DIR.withCause(err, stateDir, (err as Error).message);
  }
  try {
    return { baseline: decodeBaseline(data) };
  } catch (err) {
    const aside = `${file}.corrupt-${Date.now()}`;
    await rename(file, aside).catch(() => undefined);
    return {
      baseline: null,
      corrupt: ERR_FIM_BASELINE_CORRUPT.withCause(err, file, `${(err as Error).message}; kept as ${aside}`),
    };
  }
}

/** Atomic replace: temp file, fsync, rename, fsync of the directory. */
export async function saveBaseline(stateDir: string, b: Baseline): Promise<void> {
  const file = baselinePath(stateDir);
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    await mkdir(stateDir, { recursive: true });
    const data = encodeBaseline(b);
    const fd = openSync(tmp, 'w', 0o600);
    try {
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    await rename(tmp, file);
    const dfd = openSync(dirname(file), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch (err) {
    await rm(tmp, { force: true }).catch(() => undefined);
    throw ERR_FIM_STATE_DIR.withCause(err, stateDir, (err as Error).message);
  }
}
