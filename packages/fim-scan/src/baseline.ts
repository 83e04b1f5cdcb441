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

/**
 * One growing output buffer; each record is written in place (its path straight from the
 * string, prefix-compressed against the previous one) without a Buffer per path or field.
 */
export function encodeBaseline(b: Baseline): Buffer {
  const header = Buffer.from(JSON.stringify(b.header), 'utf8');
  let buf = Buffer.allocUnsafe(Math.max(1 << 16, MAGIC.length + 8 + header.length + b.entries.size * 96));
  let dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  let n = 0;
  const ensure = (k: number) => {
    if (n + k <= buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(buf.length * 2, n + k));
    buf.copy(next, 0, 0, n);
    buf = next;
    dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  };
  const str32 = (v: string) => {
    ensure(4 + v.length * 3);
    const len = buf.write(v, n + 4, 'utf8');
    dv.setUint32(n, len, true);
    n += 4 + len;
  };
  MAGIC.copy(buf, 0);
  n = MAGIC.length;
  dv.setUint32(n, header.length, true);
  header.copy(buf, n + 4);
  n += 4 + header.length;
  const countAt = n;
  n += 4;
  let count = 0;
  // The previous path's bytes, for the shared prefix.
  let prev = Buffer.allocUnsafe(1024);
  let prevLen = 0;
  for (const path of [...b.entries.keys()].sort()) {
    const e = b.entries.get(path)!;
    // A record's fixed part is 4 + 2 + 12 + 40 + 32 bytes; a path is at most 3 bytes per UTF-16 unit.
    ensure(90 + path.length * 3);
    const at = n + 4;
    const len = buf.write(path, at, 'utf8');
    if (len > 0xffff) continue; // longer than any Linux PATH_MAX; cannot be a real path
    let shared = 0;
    const lim = Math.min(prevLen, len);
    while (shared < lim && prev[shared] === buf[at + shared]) shared++;
    if (len > prev.length) {
      const bigger = Buffer.allocUnsafe(Math.max(len, prev.length * 2));
      prev.copy(bigger, 0, 0, shared);
      prev = bigger;
    }
    // Byte loops: the suffixes are a few bytes, less than Buffer.copy's own overhead.
    for (let i = shared; i < len; i++) prev[i] = buf[at + i]!;
    prevLen = len;
    if (shared) for (let i = shared; i < len; i++) buf[at + i - shared] = buf[at + i]!;
    dv.setUint16(n, shared, true);
    dv.setUint16(n + 2, len - shared, true);
    n = at + len - shared;
    buf[n] = TYPES.indexOf(e.type);
    buf[n + 1] = (e.sha256 ? 1 : 0) | (e.linkTarget !== null ? 2 : 0) | (e.error !== null ? 4 : 0);
    dv.setUint32(n + 2, e.mode >>> 0, true);
    dv.setUint32(n + 6, e.uid >>> 0, true);
    dv.setUint32(n + 10, e.gid >>> 0, true);
    dv.setFloat64(n + 14, e.size, true);
    dv.setFloat64(n + 22, e.dev, true);
    dv.setFloat64(n + 30, e.ino, true);
    dv.setFloat64(n + 38, e.mtimeUs, true);
    dv.setFloat64(n + 46, e.ctimeUs, true);
    n += 54;
    if (e.sha256) n += buf.write(e.sha256, n, 32, 'hex');
    if (e.linkTarget !== null) str32(e.linkTarget);
    if (e.error !== null) str32(e.error);
    count++;
  }
  dv.setUint32(countAt, count, true);
  ensure(32);
  createHash('sha256').update(buf.subarray(0, n)).digest().copy(buf, n);
  return buf.subarray(0, n + 32);
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
  const dv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let o = MAGIC.length;
  const need = (k: number) => {
    if (o + k > body.length) throw new Error(`record runs past the end at byte ${o}`);
  };
  const hlen = dv.getUint32(o, true);
  o += 4;
  need(hlen);
  const header = JSON.parse(body.toString('utf8', o, o + hlen)) as BaselineHeader;
  o += hlen;
  if (header.version !== 1) throw new Error(`unsupported version ${String(header.version)}`);
  need(4);
  const count = dv.getUint32(o, true);
  o += 4;
  const entries = new Map<string, Entry>();
  // The current path's bytes: each record replaces what follows the prefix it shares.
  const path = Buffer.allocUnsafe(0x20000);
  let prevLen = 0;
  const str32 = () => {
    need(4);
    const len = dv.getUint32(o, true);
    o += 4;
    need(len);
    const s = body.toString('utf8', o, o + len);
    o += len;
    return s;
  };
  for (let i = 0; i < count; i++) {
    need(4);
    const shared = dv.getUint16(o, true);
    const slen = dv.getUint16(o + 2, true);
    o += 4;
    need(slen + 2 + 12 + 40);
    if (shared > prevLen) throw new Error(`bad path prefix at byte ${o}`);
    for (let k = 0; k < slen; k++) path[shared + k] = body[o + k]!; // a few bytes: cheaper than Buffer.copy
    prevLen = shared + slen;
    o += slen;
    const type = TYPES[body[o]!];
    const flags = body[o + 1]!;
    if (!type) throw new Error(`bad entry type at byte ${o}`);
    o += 2;
    const e: Entry = {
      path: path.toString('utf8', 0, prevLen),
      type,
      mode: dv.getUint32(o, true),
      uid: dv.getUint32(o + 4, true),
      gid: dv.getUint32(o + 8, true),
      size: dv.getFloat64(o + 12, true),
      dev: dv.getFloat64(o + 20, true),
      ino: dv.getFloat64(o + 28, true),
      mtimeUs: dv.getFloat64(o + 36, true),
      ctimeUs: dv.getFloat64(o + 44, true),
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
