import { ERR_RULES_ARCHIVE, ERR_RULES_TOO_LARGE, ERR_RULES_UNSAFE_ENTRY } from './errors.js';

/**
 * A tar reader for hostile archives: a pure function over a buffer that the caller has
 * already bounded (download and gunzip limits), returning the regular files it holds and
 * refusing — not repairing — anything unsafe. It reads POSIX ustar, pax extended headers
 * (`path`, `linkpath`, `size`) and GNU long names (`L`/`K`), which is what GNU tar, bsdtar
 * and the Emerging Threats archives produce.
 *
 * Refused (the whole archive, with the entry named): a path that is absolute, has a `..`
 * component, a backslash, a drive letter or a NUL; a symbolic or hard link whose target
 * leaves the archive's tree; character and block devices and FIFOs; entry types it does
 * not know (sparse, multi-volume, …); a header whose checksum is wrong; a size that runs
 * past the end. Links that stay inside the tree and directories are skipped, never
 * created: the installer writes regular files only.
 *
 * Why our own and not an npm tar package: the archive is in memory and bounded anyway, the
 * policy has to refuse rather than sanitize, and the maintained parsers sniff and transparently
 * decompress gzip/zstd/brotli inside the parser (a second, unbounded decompression path to
 * police) or pull in a runtime shim; this is ~150 lines with every failure a coded error.
 */

export interface TarFile {
  /** The normalized path inside the archive (no leading "./", no empty components). */
  path: string;
  data: Buffer;
}

export interface TarListing {
  files: TarFile[];
  /** Directories and in-tree links: not unpacked, counted. */
  skipped: string[];
  entries: number;
}

export interface TarLimits {
  maxEntries: number;
}

const BLOCK = 512;
/** Longest pax or GNU long-name payload accepted. */
const MAX_META = 64 * 1024;

/** Whether the buffer starts like a ustar/GNU tar header (the magic at offset 257). */
export function looksLikeTar(buf: Buffer): boolean {
  return buf.length >= BLOCK && buf.toString('latin1', 257, 262) === 'ustar';
}

export function readTar(buf: Buffer, source: string, limits: TarLimits): TarListing {
  const files: TarFile[] = [];
  const skipped: string[] = [];
  let entries = 0;
  let pax: Map<string, string> | null = null;
  let longName: string | null = null;
  let longLink: string | null = null;
  let off = 0;
  const bad = (detail: string) => ERR_RULES_ARCHIVE(source, `${detail} (at byte ${off})`);

  while (off + BLOCK <= buf.length) {
    const h = buf.subarray(off, off + BLOCK);
    if (h.every((b) => b === 0)) return { files, skipped, entries }; // end of archive
    if (++entries > limits.maxEntries)
      throw ERR_RULES_TOO_LARGE(source, `more than ${limits.maxEntries} archive entries`);
    if (!checksumOk(h)) throw bad('a header checksum is wrong');
    const type = String.fromCharCode(h[156]!);
    const size = pax?.get('size') !== undefined ? paxSize(pax.get('size')!, bad) : readSize(h.subarray(124, 136), bad);
    const dataStart = off + BLOCK;
    const dataEnd = dataStart + size;
    if (dataEnd > buf.length) throw bad(`an entry of ${size} bytes runs past the end of the archive`);
    const data = buf.subarray(dataStart, dataEnd);
    off = dataStart + Math.ceil(size / BLOCK) * BLOCK;

    // metadata entries describe the next entry
    if (type === 'x' || type === 'g' || type === 'L' || type === 'K') {
      if (size > MAX_META) throw bad(`a ${type} metadata entry of ${size} bytes (more than ${MAX_META})`);
      if (type === 'x') pax = parsePax(data, bad);
      else if (type === 'L') longName = cString(data);
      else if (type === 'K') longLink = cString(data);
      // 'g' (global pax) carries archive-wide defaults such as a comment: nothing we use
      continue;
    }

    const rawPath = pax?.get('path') ?? longName ?? headerPath(h);
    const rawLink = pax?.get('linkpath') ?? longLink ?? cString(h.subarray(157, 257));
    pax = null;
    longName = null;
    longLink = null;
    const path = safePath(rawPath, (detail) => ERR_RULES_UNSAFE_ENTRY(source, printable(rawPath), detail));

    switch (type) {
      case '0':
      case '\0':
      case '7': // contiguous file: a regular file everywhere but a few old systems
        files.push({ path, data });
        break;
      case '5':
        skipped.push(`${path}/`);
        break;
      case '1':
      case '2': {
        // hard link targets are archive paths; symbolic link targets are relative to the link
        const base = type === '2' ? path.split('/').slice(0, -1) : [];
        const escapes = linkEscapes(rawLink, base);
        const what = type === '2' ? 'symbolic link' : 'hard link';
        if (escapes)
          throw ERR_RULES_UNSAFE_ENTRY(
            source,
            printable(rawPath),
            `is a ${what} to "${printable(rawLink)}", ${escapes}`,
          );
        skipped.push(`${path} -> ${rawLink}`);
        break;
      }
      case '3':
      case '4':
      case '6':
        throw ERR_RULES_UNSAFE_ENTRY(
          source,
          printable(rawPath),
          `is a ${type === '6' ? 'FIFO' : type === '3' ? 'character device' : 'block device'}`,
        );
      default:
        throw ERR_RULES_UNSAFE_ENTRY(
          source,
          printable(rawPath),
          `has an entry type ("${printable(type)}") that is not a file, directory or link`,
        );
    }
  }
  // GNU tar and bsdtar always end with zero blocks; a buffer that stops mid-way was cut short
  throw bad('the archive ends without its end-of-archive blocks (truncated)');
}

function checksumOk(h: Buffer): boolean {
  const stored = parseOctal(h.subarray(148, 156));
  if (stored === null) return false;
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const b = i >= 148 && i < 156 ? 0x20 : h[i]!;
    unsigned += b;
    signed += b > 127 ? b - 256 : b;
  }
  // historic tars summed signed bytes; both are accepted, as GNU tar does
  return stored === unsigned || stored === signed;
}

function parseOctal(field: Buffer): number | null {
  const s = field
    .toString('latin1')
    .replace(/[\0 ]+$/, '')
    .replace(/^ +/, '');
  if (s === '') return 0;
  if (!/^[0-7]+$/.test(s)) return null;
  return parseInt(s, 8);
}

function readSize(field: Buffer, bad: (d: string) => Error): number {
  if (field[0]! & 0x80) {
    // GNU base-256: big-endian, high bit of the first byte set; anything past 2^53 is absurd here
    let n = 0;
    for (let i = 0; i < field.length; i++) {
      n = n * 256 + (i === 0 ? field[0]! & 0x7f : field[i]!);
      if (n > Number.MAX_SAFE_INTEGER) throw bad('an entry size does not fit');
    }
    return n;
  }
  const n = parseOctal(field);
  if (n === null) throw bad('an entry size is not an octal number');
  return n;
}

function paxSize(v: string, bad: (d: string) => Error): number {
  if (!/^[0-9]{1,15}$/.test(v)) throw bad(`a pax size "${printable(v)}" is not a number`);
  return Number(v);
}

/** pax records: "<len> <key>=<value>\n", len counting the whole record. */
function parsePax(data: Buffer, bad: (d: string) => Error): Map<string, string> {
  const out = new Map<string, string>();
  let i = 0;
  while (i < data.length) {
    if (data[i] === 0) break; // padding
    const sp = data.indexOf(0x20, i);
    if (sp < 0) throw bad('a pax record has no length');
    const lenText = data.toString('latin1', i, sp);
    if (!/^[0-9]{1,6}$/.test(lenText)) throw bad('a pax record length is not a number');
    const len = Number(lenText);
    if (len <= sp - i + 1 || i + len > data.length || data[i + len - 1] !== 0x0a)
      throw bad('a pax record is malformed');
    const rec = data.toString('utf8', sp + 1, i + len - 1);
    const eq = rec.indexOf('=');
    if (eq <= 0) throw bad('a pax record has no key');
    out.set(rec.slice(0, eq), rec.slice(eq + 1));
    i += len;
  }
  return out;
}

function cString(b: Buffer): string {
  const nul = b.indexOf(0);
  return b.toString('utf8', 0, nul < 0 ? b.length : nul);
}

function headerPath(h: Buffer): string {
  const name = cString(h.subarray(0, 100));
  // POSIX ustar ("ustar\0" + "00") splits long paths into prefix/name; GNU's "ustar  \0"
  // keeps other fields where the prefix would be
  const posix = h.toString('latin1', 257, 263) === 'ustar\0';
  const prefix = posix ? cString(h.subarray(345, 500)) : '';
  return prefix ? `${prefix}/${name}` : name;
}

/** The path as a list of plain components, or the reason it is unsafe. */
function safePath(raw: string, unsafe: (detail: string) => Error): string {
  if (raw.includes('\0')) throw unsafe('has a NUL byte in its path');
  if (raw.includes('\\')) throw unsafe('has a backslash in its path (a path separator elsewhere)');
  if (raw.startsWith('/')) throw unsafe('has an absolute path');
  if (/^[A-Za-z]:/.test(raw)) throw unsafe('has a drive letter in its path');
  const parts = raw.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw unsafe('has a ".." component in its path (path traversal)');
  if (parts.length === 0) throw unsafe('has an empty path');
  return parts.join('/');
}

/** Why a link target leaves the tree rooted at the archive, or null when it stays inside. */
function linkEscapes(target: string, base: string[]): string | null {
  if (target === '') return 'an empty target';
  if (target.includes('\0') || target.includes('\\')) return 'a target with a NUL or backslash';
  if (target.startsWith('/') || /^[A-Za-z]:/.test(target)) return 'an absolute target outside the archive';
  const stack = [...base];
  for (const p of target.split('/')) {
    if (p === '' || p === '.') continue;
    if (p === '..') {
      if (stack.length === 0) return 'a target outside the archive';
      stack.pop();
    } else stack.push(p);
  }
  return null;
}

/** Entry names in error messages: control characters shown, length capped. */
function printable(s: string): string {
  const t = s.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return t.length > 200 ? `${t.slice(0, 200)}…` : t;
}
