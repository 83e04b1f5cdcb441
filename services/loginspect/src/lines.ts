import { isAscii } from 'node:buffer';
import { openSync, readSync, closeSync } from 'node:fs';

/**
 * Lines of a file, read in large chunks cut at newlines: bounded memory for any file size,
 * invalid UTF-8 bytes become U+FFFD (the line survives), `\r\n` endings tolerated. Calls
 * `fn(line, lineNumber)`; line numbers are 1-based.
 *
 * A chunk of ASCII is decoded once and cut into lines. A chunk holding other bytes is decoded
 * line by line: one U+FFFD would make the whole chunk's text (and every line cut from it) a
 * two-byte string, which every later string operation (regexes, lower-casing, the literal
 * scan) reads more slowly; decoded alone, only the lines holding such characters are. UTF-8
 * decoding never joins bytes across a newline, so each line decodes as it did in its chunk.
 */
export function forEachLine(path: string, fn: (line: string, no: number) => void, chunkBytes = 8 << 20): number {
  const fd = openSync(path, 'r');
  let no = 0;
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
      if (upto > 0 && !isAscii(buf.subarray(0, upto))) {
        let start = 0;
        while (start < upto) {
          let nl = buf.indexOf(0x0a, start);
          if (nl < 0 || nl >= upto) nl = upto;
          let stop = nl;
          if (stop > start && buf[stop - 1] === 0x0d) stop--;
          fn(buf.toString('utf8', start, stop), ++no);
          start = nl + 1;
        }
        buf.copy(buf, 0, upto, end);
        carry = end - upto;
      } else if (upto > 0) {
        const text = buf.toString('latin1', 0, upto);
        let start = 0;
        while (start < text.length) {
          let nl = text.indexOf('\n', start);
          if (nl < 0) nl = text.length;
          let stop = nl;
          if (stop > start && text.charCodeAt(stop - 1) === 0x0d) stop--;
          const line = text.slice(start, stop);
          fn(line, ++no);
          start = nl + 1;
        }
        buf.copy(buf, 0, upto, end);
        carry = end - upto;
      } else carry = end;
      if (n === 0) break;
    }
  } finally {
    closeSync(fd);
  }
  return no;
}

/**
 * `forEachLine` a batch at a time: `fn(lines, firstLineNumber)` with up to `batch` lines, for a
 * caller that searches a batch's lines at once (`LogInspector.prepare`). Returns the line count.
 */
export function forEachLines(
  path: string,
  fn: (lines: string[], first: number) => void,
  batch = 1024,
  chunkBytes = 8 << 20,
): number {
  let lines: string[] = [];
  let first = 1;
  const n = forEachLine(
    path,
    (line, no) => {
      if (lines.length === 0) first = no;
      lines.push(line);
      if (lines.length === batch) {
        fn(lines, first);
        lines = [];
      }
    },
    chunkBytes,
  );
  if (lines.length > 0) fn(lines, first);
  return n;
}
