/**
 * The native access-line decoder (native/src/logline.rs) against the JavaScript one: for every
 * line the native side settles, the event built from its row is the event `decodeAccess` makes
 * (every field, span, the address, the stamp); lines it calls not-access are not access lines
 * to the JavaScript decoder either. Generated lines (every layout the decoder knows, then
 * mutated byte by byte) and, when the shared corpus is there, every web log in it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ACCESS_ROW, AccessLines } from '@cordon/native';
import { decodeLine, forEachLines, type LogEvent } from '../src/index.js';
import { AccessBatch } from '../src/access-batch.js';
import { seededInts } from './seeded.js';

const OPTS = { refMs: Date.UTC(2024, 2, 10) };
const FIELDS = [
  'keywords',
  'cs-request',
  'cs-method',
  'cs-uri',
  'cs-uri-query',
  'cs-uri-stem',
  'cs-query',
  'cs-version',
  'cs-referer',
  'cs-user-agent',
  'sc-status',
  'sc-bytes',
  'cs-username',
  'cs-host',
  'c-ip',
  'clientip',
  'cordon-uri',
];

function view(ev: LogEvent): unknown {
  return {
    decoder: ev.decoder,
    kinds: ev.kinds,
    ts: ev.ts,
    addr: ev.addr,
    host: ev.host,
    program: ev.program,
    message: ev.message,
    spans: ev.spans,
    fields: Object.fromEntries(FIELDS.map((f) => [f, ev.fields[f]])),
  };
}

/** Every line of `text` through both decoders; how many the native one settled as access lines. */
function compare(text: string | Buffer): { native: number; lines: number } {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-access-'));
  try {
    const file = join(dir, 'access.log');
    writeFileSync(file, text);
    const batch = new AccessBatch();
    let native = 0;
    let lines = 0;
    forEachLines(
      file,
      (ls, _first, bytes) => {
        batch.prepare(ls, bytes, 1 << 20);
        for (let k = 0; k < ls.length; k++) {
          lines++;
          const rows = batch.rowsFor(k, ls[k]!);
          if (rows === null) continue;
          const kind = rows[k * ACCESS_ROW];
          if (kind === 1) native++;
          const alone = decodeLine(ls[k]!, OPTS);
          const fromRow = decodeLine(ls[k]!, OPTS, rows, k * ACCESS_ROW);
          assert.deepEqual(view(fromRow), view(alone), `${JSON.stringify(ls[k])} (row kind ${kind})`);
          if (kind === 2) assert.notEqual(alone.decoder, 'access', JSON.stringify(ls[k]));
        }
      },
      97,
    );
    return { native, lines };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const LAYOUTS = [
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET /index.html HTTP/1.1" 200 512 "-" "Mozilla/5.0"',
  '10.0.0.7 - alice [01/jan/2023:00:00:00 -0530] "POST /login.php?user=a&pw=b HTTP/1.0" 302 0',
  'www.example.com 1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 404 - "http://r/" "curl/8"',
  'www.example.com:443 1.2.3.4 - bob [10/MAR/2024:11:07:10 +0100] "GET /a%20b+c HTTP/2.0" 200 5 "-" "x" extra 1',
  'host.example - - [10/Mar/2024:11:07:10 +0000] "GET /x HTTP/1.1" 200 5',
  '::1 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5',
  '2001:db8::7 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5',
  '::ffff:1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5',
  '1.2.3.4 - - [10/Mar/2024:11:07:10] "GET / HTTP/1.1" 200 5',
  '1.2.3.4 - - [10/Mar/2024:11:07:10.123 +01:00] "GET / HTTP/1.1" 200 5',
  '1.2.3.4 - - [5/Mar/2024:1:07:10 +0000] "GET / HTTP/1.1" 200 5',
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "-" 400 0 "-" "-"',
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "\\x16\\x03\\x01" 400 0',
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET /a\\"b HTTP/1.1" 200 5 "ref\\"x" "ua \\\\ y"',
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET /a HTTP/1.1 HTTP/1.0" 200 5',
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET  HTTP/1.1" 200 5',
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET" 200 5',
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET /?q HTTP/1.1"   200   5   "r"   "a"',
  '01.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5',
  '256.1.1.1 x y z [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5',
  'a b [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5',
  'a  b  c [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5',
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 2000 5',
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1"',
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1',
  '1.2.3.4 - - [xx/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5',
  'Mar 10 11:07:10 web nginx: 1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5',
  '[Sun Mar 10 11:07:10 2024] [error] [client 1.2.3.4] File does not exist: /x',
  `${'x'.repeat(299)} [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5`,
  `${'x'.repeat(300)} [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5`,
  `1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "SEARCH /${'\u00e9\u00ff'.repeat(500)} HTTP/1.1" 414 0`,
  '1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET /\u00e9t\u00e9 HTTP/1.1" 200 5 "-" "\u00fc"',
];

test('the native access decoder makes the events the JavaScript one does', (t) => {
  if (AccessLines.create() === null) {
    t.skip('the DPI engine is not built (native/build.sh): access lines are decoded in JavaScript only');
    return;
  }
  const { native, lines } = compare(`${LAYOUTS.join('\n')}\n`);
  assert.equal(lines, LAYOUTS.length);
  assert.ok(native >= 15, `${native} of ${lines} lines were settled natively`);

  // mutated: bytes replaced by those the decoder looks for, cut short, repeated
  const next = seededInts(20261207);
  const ALPHA = [' ', '[', ']', '"', '\\', '/', ':', '-', '+', '?', '%', '.', '0', '9', 'H', 'a', 'F', '\u00e9'];
  const mutated: string[] = [];
  for (let i = 0; i < 30_000; i++) {
    const chars = [...LAYOUTS[next(LAYOUTS.length)]!];
    for (let m = next(4); m > 0; m--) {
      const at = next(chars.length);
      const op = next(3);
      const c = ALPHA[next(ALPHA.length)]!;
      if (op === 0) chars[at] = c;
      else if (op === 1) chars.splice(at, 0, c);
      else chars.splice(at, 1);
    }
    mutated.push(chars.join('').slice(0, next(2) === 0 ? next(chars.length + 1) : undefined));
  }
  const m = compare(`${mutated.join('\n')}\n`);
  t.diagnostic(`${m.native} of ${m.lines} mutated lines settled natively`);
  assert.ok(m.native > 3000, `${m.native} of ${m.lines} mutated lines were settled natively`);
});

test('bytes that are not UTF-8 decode alike on both sides', (t) => {
  if (AccessLines.create() === null) {
    t.skip('the DPI engine is not built');
    return;
  }
  const parts = [
    Buffer.from('63.218.33.105 - - [10/Oct/2004:23:59:10 -0400] "SEARCH /'),
    Buffer.from(Array.from({ length: 3000 }, (_, i) => (i % 7 === 0 ? 0x22 : 0x90 + (i % 40)))),
    Buffer.from(
      ' HTTP/1.1" 414 350 "-" "-"\n1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET /\xff HTTP/1.1" 200 5\n',
      'latin1',
    ),
  ];
  compare(Buffer.concat(parts));
});

test('every web log of the shared corpus decodes alike natively', (t) => {
  const logs = join(import.meta.dirname, '..', '..', '..', '..', '..', 'shared', 'corpus', 'logs');
  if (!existsSync(logs) || AccessLines.create() === null) {
    t.skip('no shared corpus here, or the DPI engine is not built');
    return;
  }
  const files: string[] = [];
  const walk = (d: string): void => {
    for (const f of readdirSync(d)) {
      const p = join(d, f);
      if (statSync(p).isDirectory()) walk(p);
      else if (/access|apache|httpd|nginx|web/i.test(p) && statSync(p).size < 20 << 20) files.push(p);
    }
  };
  walk(logs);
  let native = 0;
  for (const f of files) native += compare(readFileSync(f)).native;
  t.diagnostic(`${native} corpus lines settled natively in ${files.length} files`);
  assert.ok(native > 1000, `${native} corpus lines settled natively in ${files.length} files`);
});

test('the native decoder refuses rows it cannot hold and skips lines past its data', (t) => {
  const a = AccessLines.create();
  if (a === null) {
    t.skip('the DPI engine is not built');
    return;
  }
  const data = Buffer.from('1.2.3.4 - - [10/Mar/2024:11:07:10 +0000] "GET / HTTP/1.1" 200 5\n');
  const line = data.length - 1;
  const code = { code: 'CORDON_ERR_NATIVE_ACCESS_LINES' };
  // a row too few, an offset too few
  assert.throws(() => a.decode(data, Uint32Array.of(0), Int32Array.of(line), new Int32Array(ACCESS_ROW - 1)), code);
  assert.throws(() => a.decode(data, new Uint32Array(0), Int32Array.of(line), new Int32Array(ACCESS_ROW)), code);
  // lengths running past the data (or huge): not looked at; a negative one: skipped
  const out = new Int32Array(4 * ACCESS_ROW).fill(7);
  a.decode(data, Uint32Array.of(0, 0, 10, 0), Int32Array.of(line, data.length + 1, 0x7fffffff, -1), out);
  assert.deepEqual(
    [0, 1, 2, 3].map((k) => out[k * ACCESS_ROW]),
    [1, 0, 0, 0],
  );
});
