import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addressBits,
  cidrContains,
  compileRule,
  compileValue,
  decodeLine,
  LiteralScanner,
  lowerCase,
  normalizeAddress,
  parseCidr,
  RAW,
  type LogEvent,
} from '../src/index.js';
import { parseClfTime } from '../src/decode-time.js';
import { seededInts } from './seeded.js';

// The hot-path shortcuts must give exactly the answers of the plain definitions they replace:
// `toLowerCase().includes`, `toLowerCase() ===/startsWith/endsWith`, BigInt CIDR, the CLF regex.

const REF = Date.UTC(2024, 5, 1);
const ALPHABET = [
  'a',
  'B',
  'c',
  'D',
  '/',
  '.',
  '-',
  ' ',
  '%',
  '2',
  'é',
  'É',
  '\u212a',
  '\u0130',
  'k',
  'i',
  'I',
  'K',
  '\ufffd',
];
const rnd = seededInts(7);
const word = (max: number): string => Array.from({ length: rnd(max) }, () => ALPHABET[rnd(ALPHABET.length)]!).join('');

test('the scanner answers contains exactly as toLowerCase().includes, per field and in the raw line', () => {
  const sc = new LiteralScanner();
  const lits = [
    'abc',
    'bcd',
    'dki',
    'ki/',
    'a/b',
    '/./',
    'cd-',
    '%2d',
    'iii',
    'kkk',
    'ab%2',
    'ab',
    'k/',
    '%2',
    'ki',
    '-i',
    ' a',
  ];
  const ids = lits.map((l) => [sc.register('f', l), sc.register(RAW, l)] as const);
  const idsQ = lits.map((l) => sc.register('cs-uri-query', l));
  const idsU = lits.map((l) => sc.register('cs-user-agent', l));
  const idsC = lits.map((l) => sc.register('cordon-uri', l));
  const idsM = lits.map((l) => sc.register('message', l));
  const m = sc.fieldId('message');
  const q = sc.fieldId('cs-uri-query');
  const u = sc.fieldId('cs-user-agent');
  const c = sc.fieldId('cordon-uri');
  const f = sc.fieldId('f');
  const raw = sc.fieldId(RAW);
  for (let n = 0; n < 3000; n++) {
    const v = word(24);
    // `message` is the line's end (as after a syslog header): answered by the raw line's pass
    // (after a U+0130 in the header, whose lower case is two characters, it is not where it was)
    const ev = { raw: `${rnd(2) ? 'x' : '\u0130'} ${v} y`, fields: { f: v, message: `${v} y` } } as unknown as LogEvent;
    // and as an access line, where the URI is found in the one pass over the line
    const acc = decodeLine(
      `1.2.3.4 - - [05/Mar/2007:14:39:21 +0100] "GET /${v.replace(/[ "]/g, '_')} HTTP/1.1" 200 1 "-" "${v.replace(/"/g, '_')}"`,
      { refMs: REF },
    );
    const uri = acc.fields['cs-uri-query']!;
    const ua = acc.fields['cs-user-agent']!;
    // the decoded URI: the URI's span in the line when it holds no escape, else a text of its own
    const decoded = acc.fields['cordon-uri']!;
    lits.forEach((l, k) => {
      assert.equal(sc.has(ev, f, ids[k]![0]), v.toLowerCase().includes(l), `${JSON.stringify(v)} contains ${l}`);
      assert.equal(
        sc.has(ev, raw, ids[k]![1]),
        ev.raw.toLowerCase().includes(l),
        `raw ${JSON.stringify(ev.raw)} contains ${l}`,
      );
      assert.equal(
        sc.has(ev, m, idsM[k]!),
        `${v} y`.toLowerCase().includes(l),
        `message ${JSON.stringify(`${v} y`)} contains ${l}`,
      );
      assert.equal(sc.has(acc, q, idsQ[k]!), uri.toLowerCase().includes(l), `uri ${JSON.stringify(uri)} contains ${l}`);
      assert.equal(sc.has(acc, u, idsU[k]!), ua.toLowerCase().includes(l), `agent ${JSON.stringify(ua)} contains ${l}`);
      assert.equal(
        sc.has(acc, c, idsC[k]!),
        decoded.toLowerCase().includes(l),
        `decoded ${JSON.stringify(decoded)} contains ${l}`,
      );
      assert.equal(
        sc.has(acc, raw, ids[k]![1]),
        acc.raw.toLowerCase().includes(l),
        `line ${JSON.stringify(acc.raw)} contains ${l}`,
      );
    });
  }
});

test('literals sharing their first characters (one sorted walk per trigram) are each found exactly', () => {
  // dense prefixes: several literals per trigram, some the prefix of others, over the letters
  // that fold (k, i, the Kelvin sign and U+0130 in the text)
  const sc = new LiteralScanner();
  const letters = ['k', 'i', 'a', '/', '-'];
  const lits = new Set<string>(['kia', 'kiak', 'kiaki', 'kiak/', 'kia-', 'kiaa', 'kiakia', 'aaa', 'aaaa', 'aaaaa']);
  // every extension of the three trigrams by up to two letters: 3 × (1 + 5 + 25) literals
  for (const t of ['kia', 'aik', 'a/k'])
    for (const x of ['', ...letters, ...letters.flatMap((a) => letters.map((b) => a + b))]) lits.add(t + x);
  const list = [...lits];
  const ids = list.map((l) => sc.register('f', l));
  const f = sc.fieldId('f');
  const textAlphabet = ['k', 'K', 'i', 'I', 'a', 'A', '/', '-', '\u212a', '\u0130', 'é'];
  for (let n = 0; n < 4000; n++) {
    const v = Array.from({ length: rnd(20) }, () => textAlphabet[rnd(textAlphabet.length)]).join('');
    const ev = { raw: v, fields: { f: v } } as unknown as LogEvent;
    list.forEach((l, k) =>
      assert.equal(sc.has(ev, f, ids[k]!), v.toLowerCase().includes(l), `${JSON.stringify(v)} contains ${l}`),
    );
  }
});

test('every literal found is listed for the prefilter, however many', () => {
  const sc = new LiteralScanner();
  const lits = Array.from({ length: 150 }, (_, i) => `w${String(i).padStart(3, '0')}`);
  const ids = lits.map((l) => sc.register('f', l));
  const ev = { raw: '', fields: { f: lits.join(' ').toUpperCase() } } as unknown as LogEvent;
  sc.scanFields(ev, Int32Array.of(sc.fieldId('f')));
  assert.deepEqual(
    [...sc.hits.subarray(0, sc.hitCount)].sort((a, b) => a - b),
    ids,
  );
});

test('fields that are slices of the line are answered by the one pass over it, within their span', () => {
  const rule = compileRule(
    {
      title: 't',
      id: 'x',
      logsource: { category: 'webserver' },
      detection: { s: { 'cs-uri-stem|contains': 'mozilla' }, condition: 's' },
    },
    'inline',
    'sigma',
    new LiteralScanner(),
  );
  const line = (uri: string, ua: string): LogEvent =>
    decodeLine(`1.2.3.4 - - [05/Mar/2007:14:39:21 +0100] "GET ${uri} HTTP/1.1" 200 1 "-" "${ua}"`, { refMs: REF });
  const ev = line('/index.html', 'Mozilla/5.0');
  assert.ok(ev.spans, 'access lines carry spans');
  assert.ok(!rule.match(ev), 'a literal in the user agent is not in the URI');
  assert.ok(rule.match(line('/MOZILLA/x', 'curl')));
  assert.ok(!rule.match(line('/a?q=mozilla', 'curl')), 'the query is not part of the stem');
});

test('lowerCase, which skips toLowerCase for undecodable bytes and lower-case ASCII, is toLowerCase', () => {
  for (let n = 0; n < 5000; n++) {
    const s = word(30) + (rnd(2) ? '\ufffd'.repeat(rnd(40)) : '') + word(5).toLowerCase();
    assert.equal(lowerCase(s), s.toLowerCase(), JSON.stringify(s));
  }
  for (const s of ['\ufffd\ufffd/a', '\ufffdA', '\ufffd\u0130', '\ufffd\u212a', '\ufffd\u03a3 '])
    assert.equal(lowerCase(s), s.toLowerCase(), JSON.stringify(s));
});

test('equality, prefix and suffix read the original text with the same answers as on lower-cased text', () => {
  assert.ok(
    compileValue('', []).folded!('') && !compileValue('', []).folded!('x'),
    'the empty value needs no lower-casing either',
  );
  const values = ['abc', 'kI', 'd/', 'é', 'ab'];
  for (const mod of [[], ['startswith'], ['endswith']]) {
    for (const val of values) {
      const p = compileValue(val, mod);
      if (!/^[\x00-\x7f]*$/.test(val)) {
        assert.equal(p.folded, null, 'non-ASCII patterns keep the lower-casing test');
        continue;
      }
      assert.ok(p.folded, `a folded test for ${mod.join('|')} ${val}`);
      for (let n = 0; n < 2000; n++) {
        const s = rnd(3) === 0 ? val.toUpperCase() + word(3) : word(6);
        assert.equal(p.folded!(s), p.test(s.toLowerCase()), `${mod.join('|')} ${val} on ${JSON.stringify(s)}`);
      }
    }
  }
});

test('IPv4 CIDR without BigInt agrees with the general path', () => {
  const nets = ['10.0.0.0/8', '192.168.1.0/24', '0.0.0.0/0', '255.255.255.255/32', '172.16.0.0/12'].map((c) =>
    parseCidr(c)!,
  );
  const addrs = [
    '10.1.2.3',
    '11.0.0.1',
    '192.168.1.77',
    '192.168.2.1',
    '255.255.255.255',
    '172.31.255.1',
    '172.32.0.1',
    '01.2.3.4',
    '1.2.3',
    '::ffff:10.0.0.1',
    '10.0.0.1:443',
    'host.example',
    '2001:db8::1',
  ];
  for (const c of nets) {
    const { net4: _n, mask4: _m, ...slow } = c;
    for (const a of addrs) assert.equal(cidrContains(c, a), cidrContains(slow, a), `${a} in ${c.net}/${c.mask}`);
  }
  // an IPv6 network never holds a plain IPv4 address: answered without BigInt too
  for (const c of ['::1/128', 'fc00::/7', '::/0', '::ffff:0:0/96'].map((n) => parseCidr(n)!)) {
    for (const a of addrs) {
      const b = addressBits(normalizeAddress(a));
      assert.equal(
        cidrContains(c, a),
        b !== null && b.v === 6 && (b.bits & c.mask) === c.net,
        `${a} in ${c.net}/${c.mask}`,
      );
    }
  }
});

test('the CLF stamp fast path agrees with the regex', () => {
  for (const s of [
    '10/Oct/2000:13:55:36 -0700',
    '05/mar/2007:14:39:21 +0130',
    '05/MAR/2007:14:39:21 +0130',
    '05/Dec/2007:14:39:21 +0130',
    '05/\u212aan/2007:14:39:21 +0100',
    '05/Xyz/2007:14:39:21 +0100',
    '5/Mar/2007:14:39:21 +0100',
    '05/Mar/2007:14:39:21 Z',
    '05/Mar/2007:14:39:21 +01:00',
    '0a/Mar/2007:14:39:21 +0100',
  ]) {
    const t = parseClfTime(s);
    const viaRegex = parseClfTime(`${s} `.trimEnd().padEnd(27, ' ')); // length ≠ 26: the regex path
    assert.equal(t, viaRegex, s);
  }
  // the fast path keeps the last day's start: stamps of one day, of the next, out-of-range
  // fields (Date.UTC rolls them over), a day seen again after another
  const MON = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const two = (n: number): string => String(n).padStart(2, '0');
  for (let n = 0; n < 3000; n++) {
    const [d, mo, y, h, mi, sec] = [rnd(3) + 28, rnd(3) ? 1 : rnd(12), 1998 + rnd(3), rnd(30), rnd(70), rnd(70)];
    const z = rnd(2) ? `+${two(rnd(15))}${two(rnd(60))}` : `-${two(rnd(12))}30`;
    const s = `${two(d)}/${MON[mo]}/${y}:${two(h)}:${two(mi)}:${two(sec)} ${z}`;
    assert.equal(parseClfTime(s), parseClfTime(`${s} `.padEnd(27, ' ')), s);
  }
});
