import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { forEachLine } from '../src/index.js';
import { LineWriter } from '../src/lines.js';
import { seededInts } from './seeded.js';

// forEachLine decodes a chunk holding non-ASCII bytes line by line: the lines must be those
// of decoding the whole file as UTF-8 and cutting it at newlines, invalid bytes and all.

/** The plain definition: the whole file decoded, cut at `\n`, one `\r` before it dropped. */
function plainLines(bytes: Buffer): string[] {
  const text = bytes.toString('utf8');
  const out = text.split('\n').map((l) => (l.endsWith('\r') ? l.slice(0, -1) : l));
  if (text.endsWith('\n')) out.pop();
  return out;
}

test('lines are decoded as the whole file is, whatever bytes they hold and wherever the chunks are cut', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-lines-'));
  try {
    const rnd = seededInts(9);
    // ASCII, valid multi-byte UTF-8, lone and truncated sequences (the truncation right before a newline), CR
    const pieces = ['GET /a', ' ', 'é', '€', '\u{1f600}', 'x'].map((s) => Buffer.from(s, 'utf8'));
    pieces.push(Buffer.from([0xe9]), Buffer.from([0xe2, 0x82]), Buffer.from([0xf0, 0x9f, 0x98]), Buffer.from([0xff]));
    pieces.push(Buffer.from('\r'), Buffer.from('\n'), Buffer.from('\n'));
    for (let round = 0; round < 40; round++) {
      const parts: Buffer[] = [];
      const ascii = round % 4 === 0;
      for (let k = rnd(400); k >= 0; k--) {
        const p = pieces[rnd(pieces.length)]!;
        parts.push(ascii ? Buffer.from(p.toString('latin1').replace(/[^\x00-\x7f]/g, 'a'), 'latin1') : p);
      }
      const bytes = Buffer.concat(parts);
      const file = join(dir, `f${round}`);
      writeFileSync(file, bytes);
      const want = plainLines(bytes);
      for (const chunk of [7, 64, 1 << 20]) {
        const got: string[] = [];
        const n = forEachLine(
          file,
          (line, no) => {
            assert.equal(no, got.length + 1);
            got.push(line);
          },
          chunk,
        );
        assert.equal(n, got.length);
        assert.deepEqual(got, want, `round ${round}, chunks of ${chunk} bytes`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('long files: runs of ASCII lines between lines holding other bytes, halved at newlines', () => {
  // a range that is not all ASCII is halved at a newline until it is (or is small): these files
  // are large enough to be halved many times, with the other bytes alone, in runs, spread evenly,
  // at a range's very start or end, and as the last line without its newline
  const dir = mkdtempSync(join(tmpdir(), 'cordon-lines-'));
  try {
    const rnd = seededInts(21);
    const ascii = (k: number) =>
      `10.0.0.${k % 250} - - [01/Jan/2024:00:00:00 +0000] "GET /p${k}?q=${'x'.repeat(k % 97)} HTTP/1.1" 200 ${k}`;
    const other = (k: number) =>
      Buffer.concat([Buffer.from(`line ${k} `), Buffer.from([0xc3, 0xa9, 0xff, 0xe2, 0x82]), Buffer.from(' end')]);
    const layouts: Array<(k: number) => boolean> = [
      () => false,
      (k) => k === 0,
      (k) => k === 4999,
      (k) => k >= 2000 && k < 2040,
      (k) => k % 97 === 0,
      (k) => k % 2 === 0,
      () => rnd(50) === 0,
    ];
    layouts.forEach((isOther, round) => {
      const parts: Buffer[] = [];
      for (let k = 0; k < 5000; k++) {
        parts.push(isOther(k) ? other(k) : Buffer.from(ascii(k)));
        if (k < 4999 || round % 2 === 0) parts.push(Buffer.from(k % 13 === 0 ? '\r\n' : '\n'));
      }
      const bytes = Buffer.concat(parts);
      const file = join(dir, `g${round}`);
      writeFileSync(file, bytes);
      const want = plainLines(bytes);
      for (const chunk of [4096, 65536, 1 << 20]) {
        const got: string[] = [];
        const n = forEachLine(file, (line) => got.push(line), chunk);
        assert.equal(n, want.length);
        assert.deepEqual(got, want, `layout ${round}, chunks of ${chunk} bytes`);
      }
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lines that came as strings are written out as bytes: ASCII lines their bytes, others none', () => {
  const w = new LineWriter();
  const lines = ['GET /a', 'caf\u00e9', '', 'x'.repeat(70_000), '\ud800 lone', 'tail'];
  const b = w.write(lines);
  assert.equal(b.starts.length, lines.length + 1);
  assert.deepEqual([...b.bytewise], [1, 0, 1, 1, 0, 1]);
  for (let k = 0; k < lines.length; k++) {
    const bytes = b.data.subarray(b.starts[k], b.starts[k + 1]).toString('latin1');
    assert.equal(bytes, b.bytewise[k] === 1 ? lines[k] : '', `line ${k}`);
  }
  // a line longer than the bound gets no bytes either: no native pass would read it
  const bounded = new LineWriter().write(['short', 'y'.repeat(100), 'z'], 64);
  assert.deepEqual([...bounded.bytewise], [1, 0, 1]);
  assert.deepEqual([...bounded.starts], [0, 5, 5, 6]);
  // reused: a second, shorter batch is written from the start
  const again = w.write(['a b', 'c']);
  assert.deepEqual([...again.starts], [0, 3, 4]);
  assert.equal(again.data.toString('latin1'), 'a bc');
});
