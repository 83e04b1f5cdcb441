import { isAscii } from 'node:buffer';
import { openSync, readSync, closeSync } from 'node:fs';

/**
 * Lines of a file, read in large chunks cut at newlines: bounded memory for any file size,
 * invalid UTF-8 bytes become U+FFFD (the line survives), `\r\n` endings tolerated. Calls
 * `fn(line, lineNumber)`; line numbers are 1-based.
 *
 * Each line is decoded on its own, as Latin-1 when its bytes are ASCII (several times faster
 * than UTF-8 decoding, the same text): the result is a flat string. Cutting lines out of one
 * decoded chunk would be cheaper here but gives sliced strings, each of which keeps the whole
 * chunk's text alive while any piece of it is kept (an address in the threshold table, say):
 * a tenth fewer lines a second through loginspect, and 90 MB more at peak (bench/RESULTS.md).
 * One U+FFFD in a chunk's text would also make it, and every line cut from it, a two-byte
 * string; decoded alone, only the lines holding such characters are. UTF-8 decoding never joins
 * bytes across a newline, so each line decodes as it would in its chunk.
 */
export function forEachLine(path: string, fn: (line: string, no: number) => void, chunkBytes = 8 << 20): number {
  let no = 0;
  readLines(path, chunkBytes, (line) => fn(line, ++no));
  return no;
}

/**
 * Where lines lie in the bytes they were read from: line k's bytes start at `starts[k]` of
 * `data` and run to its newline (`starts` holds one more entry: the end of the last line's
 * newline). `bytewise[k]` is 1 when each of its bytes is one character of the line: ASCII, or a
 * byte that is not UTF-8, read as U+FFFD. Its character offsets are then its byte offsets, and
 * an ASCII text occurs in its bytes exactly where it occurs in the line. Valid only during the
 * call it is passed to: the buffer is reused.
 */
export interface LineBytes {
  data: Buffer;
  starts: Uint32Array;
  bytewise: Uint8Array;
}

/**
 * Lines that came as strings (the service's records) written out as `LineBytes`, so the native
 * passes read them as they read a file's: an ASCII line is its bytes; any other line, and one
 * longer than `maxLength` (which no native pass would use), gets no bytes (its range is empty,
 * `bytewise` 0) and is read in JavaScript. One buffer, reused.
 */
export class LineWriter {
  private data = Buffer.allocUnsafe(1 << 16);
  private starts = new Uint32Array(0);
  private bytewise = new Uint8Array(0);

  write(lines: readonly string[], maxLength = Infinity): LineBytes {
    const n = lines.length;
    if (this.starts.length < n + 1) {
      this.starts = new Uint32Array(n + 1);
      this.bytewise = new Uint8Array(n);
    }
    let pos = 0;
    for (let k = 0; k < n; k++) {
      const line = lines[k]!;
      this.starts[k] = pos;
      this.bytewise[k] = 0;
      if (line.length > maxLength) continue;
      // room for three bytes a character, so a line is never written in part: it is ASCII
      // exactly when it writes as many bytes as it has characters
      if (pos + 3 * line.length > this.data.length) {
        const more = Buffer.allocUnsafe(Math.max(2 * this.data.length, pos + 3 * line.length));
        this.data.copy(more, 0, 0, pos);
        this.data = more;
      }
      if (this.data.write(line, pos, 'utf8') === line.length) {
        this.bytewise[k] = 1;
        pos += line.length;
      }
    }
    this.starts[n] = pos;
    return {
      data: this.data.subarray(0, pos),
      starts: this.starts.subarray(0, n + 1),
      bytewise: this.bytewise.subarray(0, n),
    };
  }
}

/**
 * The file's lines, each to `emit(line, buf, start, next, bytewise)`: its bytes start at `start` of
 * `buf`, the next line's at `next`; `buf` holds them until `emit` returns (and until the chunk's
 * `chunkEnd()`), then is overwritten.
 */
function readLines(path: string, chunkBytes: number, emit: LineEmit, chunkEnd: () => void = NO_CHUNK_END): void {
  const fd = openSync(path, 'r');
  try {
    let buf = Buffer.allocUnsafe(chunkBytes);
    let carry = 0; // bytes of an unfinished line at the start of buf
    for (;;) {
      if (carry === buf.length) {
        // one line longer than the chunk: grow rather than split it
        const bigger = Buffer.allocUnsafe(buf.length * 2);
        buf.copy(bigger, 0, 0, carry);
        buf = bigger;
      }
      const n = readSync(fd, buf, carry, buf.length - carry, null);
      const end = carry + n;
      const lastNl = n === 0 ? end : buf.lastIndexOf(0x0a, end - 1);
      if (end === 0) break;
      const upto = lastNl < 0 ? (n === 0 ? end : -1) : n === 0 ? end : lastNl + 1;
      if (upto > 0) {
        decodeLines(buf, 0, upto, emit);
        chunkEnd();
        buf.copy(buf, 0, upto, end);
        carry = end - upto;
      } else carry = end;
      if (n === 0) break;
    }
  } finally {
    closeSync(fd);
  }
}

type LineEmit = (line: string, buf: Buffer, start: number, next: number, bytewise: boolean) => void;

const NO_CHUNK_END = (): void => {};

/** Below this many bytes a range that is not all ASCII is decoded line by line as UTF-8. */
const SMALL_RANGE = 4096;

/**
 * The lines of `buf[s .. e)` (`e` is just after a newline, or the end of the data), each to
 * `emit`: a range that is all ASCII line by line as Latin-1; another is halved at a newline
 * until it is, or is small, then line by line as UTF-8. Lines holding other bytes are rare and
 * come in runs, so few ranges are halved; spread evenly, they cost ~11 halvings' `isAscii` (SIMD)
 * over the chunk, ~4 ms for 8 MB, beside the decoding.
 */
function decodeLines(buf: Buffer, s: number, e: number, emit: LineEmit): void {
  let enc: 'latin1' | 'utf8' = 'utf8';
  if (isAscii(buf.subarray(s, e))) enc = 'latin1';
  else if (e - s > SMALL_RANGE) {
    // a newline near the middle, not the range's last byte: the halves are whole lines
    const mid = s + ((e - s) >> 1);
    let m = buf.indexOf(0x0a, mid);
    if (m < 0 || m + 1 >= e) m = buf.lastIndexOf(0x0a, mid - 1);
    if (m >= s && m + 1 < e) {
      decodeLines(buf, s, m + 1, emit);
      decodeLines(buf, m + 1, e, emit);
      return;
    }
  }
  let start = s;
  while (start < e) {
    let nl = buf.indexOf(0x0a, start);
    if (nl < 0 || nl >= e) nl = e;
    let stop = nl;
    if (stop > start && buf[stop - 1] === 0x0d) stop--;
    const line = buf.toString(enc, start, stop);
    // each byte gave at most one character: as many characters as bytes means each gave one
    // (an overflow payload of bytes that are not UTF-8 is such a line)
    emit(line, buf, start, Math.min(nl + 1, e), line.length === stop - start);
    start = nl + 1;
  }
}

/**
 * `forEachLine` a batch at a time: `fn(lines, firstLineNumber, bytes)` with up to `batch` lines,
 * for a caller that searches a batch's lines at once (`LogInspector.prepare`), which can search
 * the bytes the lines were read from rather than write them out again. A batch ends early at
 * the end of a chunk, so its bytes are all in the buffer. Returns the line count.
 */
export function forEachLines(
  path: string,
  fn: (lines: string[], first: number, bytes: LineBytes) => void,
  batch = 1024,
  chunkBytes = 8 << 20,
): number {
  let lines: string[] = [];
  let starts = new Uint32Array(batch + 1);
  let bytewise = new Uint8Array(batch);
  let data: Buffer = EMPTY;
  let no = 0;
  const flush = (): void => {
    const n = lines.length;
    if (n === 0) return;
    fn(lines, no - n + 1, { data, starts: starts.subarray(0, n + 1), bytewise: bytewise.subarray(0, n) });
    // the callee may keep what it was given but the buffer: fresh arrays for the next batch
    lines = [];
    starts = new Uint32Array(batch + 1);
    bytewise = new Uint8Array(batch);
  };
  readLines(
    path,
    chunkBytes,
    (line, buf, start, next, oneByOne) => {
      no++;
      const k = lines.length;
      data = buf;
      starts[k] = start;
      starts[k + 1] = next;
      bytewise[k] = oneByOne ? 1 : 0;
      lines.push(line);
      if (k + 1 === batch) flush();
    },
    flush,
  );
  return no;
}

const EMPTY = Buffer.alloc(0);
