import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LiteralMatcher } from '@cordon/native';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decodeLine, forEachLines, LiteralScanner, RAW, type LineBytes, type LogEvent } from '../src/index.js';
import { seededInts } from './seeded.js';

// A batch's literals searched ahead natively (Hyperscan, when the DPI engine is built with it)
// must give exactly the answers of the scan in JavaScript and of `toLowerCase().includes`,
// whatever the lines hold.

const REF = Date.UTC(2024, 5, 1);
const native = LiteralMatcher.create(['ab']) !== null;
const why = 'the DPI engine is not built with Hyperscan here (bash native/build.sh with libhyperscan-dev)';

const ALPHABET = [
  'a',
  'B',
  'o',
  'R',
  'k',
  'K',
  'i',
  'I',
  '/',
  '.',
  '-',
  ' ',
  '%',
  '2',
  '\u212a',
  '\u0130',
  '\u0131',
  'ß',
  'é',
  '\ufffd',
];
const rnd = seededInts(11);
const word = (max: number, ascii: boolean): string =>
  Array.from({ length: rnd(max) }, () => ALPHABET[rnd(ascii ? 14 : ALPHABET.length)]!).join('');

const LITS = [
  'or',
  'aa',
  'ab',
  'ki',
  '%2',
  '-i',
  '..',
  'abc',
  'kor',
  'or/',
  'aaa',
  'a/b',
  'ki/',
  'ikk',
  'bor.',
  'orab',
  '%2e%2e',
  ' a',
  'b\r', // a bare carriage return in a line; at a line's end, part of its line break
];

function scanners(): { nat: LiteralScanner; js: LiteralScanner; ids: number[][]; fields: number[] } {
  const nat = new LiteralScanner();
  const js = new LiteralScanner({ native: false });
  const names = [RAW, 'cs-uri-query', 'cs-user-agent', 'message'];
  const ids = names.map((f) => LITS.map((l) => nat.register(f, l)));
  for (const f of names) for (const l of LITS) js.register(f, l);
  return { nat, js, ids, fields: names.map((f) => nat.fieldId(f)) };
}

/** The field's text as the scanner reads it, or undefined. */
const text = (ev: LogEvent, field: string): string | undefined => (field === RAW ? ev.raw : ev.fields[field]);

function check(lines: string[], events: (line: string) => LogEvent, bytes?: LineBytes): void {
  const { nat, js, ids, fields } = scanners();
  const names = [RAW, 'cs-uri-query', 'cs-user-agent', 'message'];
  nat.prescan(lines, bytes);
  const ascii = lines.filter((l) => l.length >= 2 && l.length <= 1 << 20 && /^[\0-\x7f]*$/.test(l)).length;
  // from bytes, a line is searched natively when each byte was one character: ASCII, or bytes
  // that are not UTF-8, each a U+FFFD (every U+FFFD in these tests is such a byte)
  const bytewise = lines.filter((l) => l.length >= 2 && l.length <= 1 << 20 && /^[\0-\x7f\ufffd]*$/.test(l)).length;
  if (bytes) assert.equal(nat.prescanned, bytewise, 'lines whose bytes are their characters searched natively');
  else assert.ok(nat.prescanned === ascii || nat.prescanned === 0, 'every ASCII line searched natively, or none');
  lines.forEach((line, k) => {
    nat.useLine(k);
    const a = events(line);
    const b = events(line);
    names.forEach((name, fi) => {
      const v = text(a, name);
      LITS.forEach((l, li) => {
        const want = v !== undefined && v.toLowerCase().includes(l);
        const got = nat.has(a, fields[fi]!, ids[fi]![li]!);
        assert.equal(got, want, `${name} of ${JSON.stringify(line)} contains ${l}`);
        assert.equal(
          js.has(b, fields[fi]!, ids[fi]![li]!),
          want,
          `(JavaScript) ${name} of ${JSON.stringify(line)} contains ${l}`,
        );
      });
    });
  });
}

const access = (line: string): LogEvent => decodeLine(line, { refMs: REF });
const syslog = (line: string): LogEvent => {
  const message = line.slice(line.indexOf(' ') + 1);
  return { raw: line, fields: { message } } as unknown as LogEvent;
};

test(
  'a batch searched natively answers as the JavaScript scan and toLowerCase().includes',
  { skip: !native && why },
  () => {
    for (let round = 0; round < 20; round++) {
      const lines = Array.from({ length: 200 }, () => {
        const ascii = rnd(3) !== 0;
        const uri = word(20, ascii).replace(/[ "]/g, '_');
        const ua = word(30, ascii).replace(/"/g, '_');
        return rnd(2)
          ? `1.2.3.4 - - [05/Mar/2007:14:39:21 +0100] "GET /${uri} HTTP/1.1" 200 1 "-" "${ua}"`
          : `host ${word(40, ascii)}`;
      });
      check(lines, (l) => (l.startsWith('host ') ? syslog(l) : access(l)));
      const { nat } = scanners();
      nat.prescan(lines);
      assert.ok(nat.prescanned > 100, 'the ASCII lines are searched natively');
    }
  },
);

test(
  'lines searched in the bytes they were read from answer as their text does, whatever their line breaks',
  { skip: !native && why },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-literals-'));
    try {
      for (let round = 0; round < 10; round++) {
        const lines = Array.from({ length: 2000 }, (_, k) => {
          // a few lines that are not ASCII: the ranges around them are read as UTF-8, the rest as
          // ASCII, and a batch holds both
          const ascii = k % 29 !== 3;
          // `b` ends many lines: with the `\r` of a CRLF break after it, `b\r` is in the bytes but not the line
          // some lines hold bytes that are not UTF-8 (an overflow payload's) and no other
          const w = ascii
            ? word(60, true)
            : k % 2
              ? `é${word(60, false)}`
              : `${word(30, true)}\ufffd\u0002\ufffd${word(30, true)}`;
          return rnd(2) ? `${w}b` : `x ${w}\r${word(10, ascii)}z`;
        });
        const file = join(dir, `lines-${round}.log`);
        // each U+FFFD as a byte that is not UTF-8 (which reads back as U+FFFD)
        const bytesOf = (l: string): Buffer =>
          Buffer.concat(
            l.split('\ufffd').flatMap((p, i) => (i ? [Buffer.of(0xff), Buffer.from(p)] : [Buffer.from(p)])),
          );
        writeFileSync(file, Buffer.concat(lines.map((l, k) => bytesOf(l + (k % 3 === 0 ? '\r\n' : '\n')))));
        let seen = 0;
        let searched = 0;
        // small chunks and batches: batches end at chunk ends, lines straddle reads
        forEachLines(
          file,
          (batch, first, bytes) => {
            assert.deepEqual(batch, lines.slice(first - 1, first - 1 + batch.length));
            check(batch, syslog, bytes);
            const { nat } = scanners();
            nat.prescan(batch, bytes);
            searched += nat.prescanned;
            seen += batch.length;
          },
          256,
          1 << 15,
        );
        assert.equal(seen, lines.length);
        assert.ok(searched > 100, 'the ASCII lines are searched natively');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('literals at a line edge, overlapping, or split between two lines of a batch', { skip: !native && why }, () => {
  const lines = [
    'abc', // the whole line
    'xxab', // at the very end
    'orxx', // at the very start
    'aaaaaa', // overlapping occurrences of one literal
    'xxa', // `abc` split over this line and the next: in neither
    'bcxx',
    '',
    'o',
    'OR',
    'Bor.AB', // case flips
    `${'x'.repeat(5000)}%2E%2e`,
  ];
  check(lines, syslog);
  check(lines, (l) => ({ raw: l, fields: {} }) as unknown as LogEvent);
});

test(
  'hostile lines: very long, all non-ASCII, or holding hundreds of thousands of occurrences',
  { skip: !native && why },
  () => {
    const lines = [
      'or'.repeat(300_000), // 600,000 characters, 599,999 occurrences of `or` and `ro`…: the output grows
      `${'ab'.repeat(600_000)}c`, // longer than a line searched natively: scanned in JavaScript
      '\u0130'.repeat(1000) + 'ki', // lower-cases to more characters: scanned in JavaScript
      'é'.repeat(70_000) + 'abc',
      '\ufffd'.repeat(100) + 'KOR',
      'ab\u212aor', // the Kelvin sign is a k
    ];
    check(lines, syslog);
    // more occurrences than a batch's native search may report (two million of `aa` and
    // `aaa`): the batch is scanned in JavaScript, in constant memory
    check(['a'.repeat(1_000_000), 'xabcx'], syslog);
  },
);

test(
  'a batch whose native search holds too many occurrences is scanned in JavaScript',
  { skip: !native && why },
  () => {
    const { nat, ids, fields } = scanners();
    nat.prescan(['abc', 'orab']);
    assert.equal(nat.prescanned, 2, 'a batch is searched natively');
    nat.prescan(['a'.repeat(1_000_000) + 'b', 'orab']);
    assert.equal(nat.prescanned, 0, 'not this one');
    nat.useLine(1);
    const ev = { raw: 'orab', fields: {} } as unknown as LogEvent;
    assert.equal(nat.has(ev, fields[0]!, ids[0]![LITS.indexOf('orab')]!), true);
    assert.equal(nat.has(ev, fields[0]!, ids[0]![LITS.indexOf('abc')]!), false);
  },
);

test('a line not of the prescanned batch is scanned as always', { skip: !native && why }, () => {
  const { nat, ids, fields } = scanners();
  nat.prescan(['abc orab']);
  nat.useLine(0);
  // another line given as the batch's line 0: its own content decides, not the batch's search
  const ev = { raw: 'kor', fields: {} } as unknown as LogEvent;
  assert.equal(nat.has(ev, fields[0]!, ids[0]![LITS.indexOf('kor')]!), true);
  assert.equal(nat.has(ev, fields[0]!, ids[0]![LITS.indexOf('abc')]!), false);
  nat.useLine(5); // past the batch: no batch line
  const ev2 = { raw: 'abc', fields: {} } as unknown as LogEvent;
  assert.equal(nat.has(ev2, fields[0]!, ids[0]![LITS.indexOf('abc')]!), true);
});

test('the native literal search refuses bad input with a coded error', { skip: !native && why }, () => {
  assert.throws(() => LiteralMatcher.create(['ok', 'é']), { code: 'CORDON_ERR_NATIVE_LITERALS' });
  assert.throws(() => LiteralMatcher.create(['ok', '']), { code: 'CORDON_ERR_NATIVE_LITERALS' });
  const m = LiteralMatcher.create(['ab'])!;
  const data = Buffer.from('abab');
  const out = new Uint32Array(30);
  assert.equal(m.scan(data, Uint32Array.of(0, 2, 4), out), 2);
  assert.deepEqual([...out.subarray(0, 6)], [0, 0, 0, 1, 0, 0]);
  assert.equal(m.scan(data, Uint32Array.of(0, 4), new Uint32Array(3)), -1, 'an output too small says so');
  assert.throws(() => m.scan(data, Uint32Array.of(2, 0), out), { code: 'CORDON_ERR_NATIVE_LITERALS' });
  assert.throws(() => m.scan(data, Uint32Array.of(0, 9), out), { code: 'CORDON_ERR_NATIVE_LITERALS' });
  assert.throws(() => m.scan(data, new Uint32Array(0), out), { code: 'CORDON_ERR_NATIVE_LITERALS' });
});

test(
  'a line holding hundreds of the literals has each found, replayed from its batch',
  { skip: !native && why },
  () => {
    const sc = new LiteralScanner();
    const lits = Array.from({ length: 300 }, (_, i) => `k${i.toString(36)}x`);
    const ids = lits.map((l) => sc.register(RAW, l));
    const f = sc.fieldId(RAW);
    const line = lits.join(' ');
    sc.prescan(['xx', line]);
    assert.equal(sc.prescanned, 2);
    sc.useLine(1);
    const ev = { raw: line, fields: {} } as unknown as LogEvent;
    assert.ok(
      ids.every((id) => sc.has(ev, f, id)),
      'every literal found',
    );
    assert.deepEqual(
      [...sc.hits.subarray(0, sc.hitCount)].sort((a, b) => a - b),
      [...ids].sort((a, b) => a - b),
      'and each listed for the prefilter',
    );
  },
);
