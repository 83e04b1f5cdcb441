import { openSync, readSync, closeSync } from 'node:fs';

/**
 * Lines of a file, read in large chunks cut at newlines: bounded memory for any file size,
 * one UTF-8 decode per chunk (invalid bytes become U+FFFD, the line survives), `\r\n` endings
 * tolerated. Calls `fn(line, lineNumber)`; line numbers are 1-based.
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
      if (upto > 0) {
        const text = buf.toString('utf8', 0, upto);
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
