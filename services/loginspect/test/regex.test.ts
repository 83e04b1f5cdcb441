import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import {
  boundedRegex,
  builtinRulesDir,
  compileRegex,
  compileRule,
  compileValue,
  decodeLine,
  LiteralScanner,
  requiredLiterals,
  topLevelBranches,
} from '../src/index.js';
import { LiteralPrefilter } from '../src/prefilter.js';
import { seededInts } from './seeded.js';

// A regex's required literals may be weaker than they could be (null), never wrong: a line the
// regex matches always holds one of them.

const req = (src: string, flags = ''): string[] | null => {
  const r = requiredLiterals(src, flags);
  return r && [...r].sort();
};

test('required literals of sequences, alternations, classes and repeats', () => {
  assert.deepEqual(req('(?:/etc/passwd|\\.\\./)'), ['../', '/etc/passwd']);
  assert.deepEqual(
    req('[/\\\\]\\.\\.(?:$|[?;&])'),
    ['/..', '\\..'].concat(['/..&', '/..;', '/..?', '\\..&', '\\..;', '\\..?']).sort(),
  );
  assert.deepEqual(req('^(?:https?|ftp)://'), ['ftp://', 'http://', 'https://']);
  assert.deepEqual(req('\\?-[ds]\\+?\\s*\\w'), ['?-d', '?-d+', '?-s', '?-s+']);
  assert.deepEqual(req('FAILED SU'), ['failed su'], 'lower-cased: the scan ignores case');
  assert.deepEqual(req('(?:ab)+cdef'), ['cdef']);
  assert.deepEqual(req('x(?:abc)+y'), ['abc']);
  assert.deepEqual(req('(?<ip>\\d+) port (?:foo|bar)'), [' port foo', ' port bar'].sort());
  assert.deepEqual(req('a(?=bcd)efg'), ['aefg'], 'a lookahead consumes nothing');
});

test('no requirement when a match may hold no literal of two characters', () => {
  assert.deepEqual(req('--\\s*$'), ['--'], 'the scanner indexes bigrams too');
  assert.deepEqual(req('\\$\\{(?:jndi:|[^}]{0,30}\\$\\{)'), ['${']);
  for (const src of [
    'a|bcd',
    'x{0}abc|d',
    '(?:abc)?',
    '(?:abc)*',
    '.{3}',
    '[a-z]{5}',
    '(a)\\1bc',
    '(?<x>a)\\k<x>',
    '[^abc]{4}',
  ]) {
    assert.equal(req(src), null, src);
  }
  assert.deepEqual(req('é+abc|xyz.'), ['abc', 'xyz'], 'a non-ASCII character is any character');
  assert.equal(req('abc', 'u'), null, 'unicode mode is not analysed');
});

/** Every `|re` value of the built-in rules, with the flags the rule loader gives it. */
function builtinRegexes(): RegExp[] {
  const out: RegExp[] = [];
  const dir = builtinRulesDir();
  const walk = (node: unknown, key: string): void => {
    if (typeof node === 'string' && key.split('|').includes('re'))
      out.push(compileRegex(node.replace(/<HOST>/g, '(?:\\S+)')));
    else if (Array.isArray(node)) for (const n of node) walk(n, key);
    else if (node && typeof node === 'object') for (const [k, v] of Object.entries(node)) walk(v, k);
  };
  for (const f of readdirSync(dir).filter((n) => n.endsWith('.yml'))) {
    for (const d of parseAllDocuments(readFileSync(join(dir, f), 'utf8')))
      walk((d.toJS() as Record<string, unknown>)['detection'], '');
  }
  return out;
}

test('every match of the built-in rules’ regexes holds a required literal', () => {
  const regexes = builtinRegexes();
  assert.ok(regexes.length > 30);
  const rnd = seededInts(11);
  let checked = 0;
  for (const re of regexes) {
    const lits = requiredLiterals(re.source, re.flags);
    if (!lits) continue;
    // strings made of pieces of the pattern's own text, in both cases: many of them match
    const pieces = re.source.split(/[\\()[\]|?*+{}^$]+/).filter(Boolean);
    for (let n = 0; n < 3000; n++) {
      let s = '';
      for (let k = rnd(4); k >= 0; k--) {
        const p = pieces[rnd(pieces.length)]!;
        s += rnd(2) ? p.toUpperCase() : p;
        s += ['', ' ', '/', '../', "'", '1', '%'][rnd(7)];
      }
      if (!re.test(s)) continue;
      checked++;
      const lower = s.toLowerCase();
      assert.ok(
        lits.some((l) => lower.includes(l)),
        `${re} matches ${JSON.stringify(s)} but holds none of ${JSON.stringify(lits)}`,
      );
    }
  }
  assert.ok(checked > 100, `only ${checked} matching strings were tried`);
});

test('a top-level alternation is cut into its alternatives only where that cannot change a match', () => {
  assert.deepEqual(topLevelBranches('(?:ab|cd)', ''), ['ab', 'cd']);
  assert.deepEqual(topLevelBranches('ab|(?:c|d)e|[|]', ''), ['ab', '(?:c|d)e', '[|]']);
  assert.deepEqual(topLevelBranches('\\|x|y', ''), ['\\|x', 'y']);
  assert.deepEqual(topLevelBranches('[]|]|x', ''), ['[]', ']', 'x'], 'an empty class ends at once');
  for (const src of ['ab', 'a(?:b|c)', '(?:a|b)+', '(?:a|b)(?:c|d)', '(a)|\\1', '(?<n>a)|\\k<n>', '(a|b', 'a|b)'])
    assert.equal(topLevelBranches(src, ''), null, src);
  assert.equal(topLevelBranches('a|b', 'u'), null, 'unicode mode is not analysed');
});

test('the built-in rules’ regexes cut into alternatives answer as the whole, each behind its own literals', () => {
  const rnd = seededInts(5);
  let split = 0;
  let matched = 0;
  for (const re of builtinRegexes()) {
    const p = compileValue(re.flags.includes('i') ? `(?i)${re.source}` : re.source, ['re']);
    const branches = p.branches;
    if (!branches) continue;
    split++;
    const pieces = re.source.split(/[\\()[\]|?*+{}^$]+/).filter(Boolean);
    for (let n = 0; n < 2000; n++) {
      let s = '';
      for (let k = rnd(4); k >= 0; k--) {
        const piece = pieces[rnd(pieces.length)]!;
        s += rnd(2) ? piece.toUpperCase() : piece;
        s += ['', ' ', '/', '../', "'", '1', '%', '${', ';', '\ufffd', '\x01'][rnd(11)];
      }
      const want = p.test(s);
      if (want) matched++;
      const hit: { required: string[] }[] = branches.filter((b) => b.test(s));
      assert.equal(p.rest?.(s) === true || hit.length > 0, want, `${re} on ${JSON.stringify(s)}`);
      const lower = s.toLowerCase();
      for (const b of hit)
        assert.ok(
          b.required.some((l) => lower.includes(l)),
          `${re}: a branch matched without its literals`,
        );
    }
  }
  assert.ok(split >= 5, `only ${split} built-in regexes were cut`);
  assert.ok(matched > 500, `only ${matched} matching strings were tried`);
});

test('a regex of many alternatives, each behind its literals, answers as the whole regex', () => {
  // more alternatives than are asked one by one: the event's literals lead to the ones to run;
  // one alternative has no literal (it runs always), two share one
  const words = ['wget', 'curl', 'passwd', 'shadow', 'select', 'union', 'jndi', 'phpinfo', 'cmd.exe', 'eval'];
  const src = `(?:${words.map((w, k) => `${w.replace('.', '\\.')}\\W{${k % 3}}x`).join('|')}|\\d{4}q|union\\s+all)`;
  const detection = { sel: { 'message|re': src }, condition: 'sel' };
  const doc = { title: 't', id: 'many', logsource: { product: 'linux' }, detection };
  const sc = new LiteralScanner();
  const gated = compileRule(doc, 'inline', 'sigma', sc);
  const pre = new LiteralPrefilter([gated], sc);
  const plain = compileRule(doc, 'inline', 'sigma', null);
  const fields = Int32Array.of(sc.fieldId('message'));
  const pieces = [
    ...words,
    ...words.map((w) => w.toUpperCase()),
    'x',
    ' x',
    '//x',
    '1234q',
    'union  all',
    'other',
    '\u0130',
  ];
  const rnd = seededInts(11);
  let matched = 0;
  for (let n = 0; n < 4000; n++) {
    const msg = Array.from({ length: 1 + rnd(4) }, () => pieces[rnd(pieces.length)]).join(rnd(2) ? ' ' : '');
    const line = `Mar 10 08:01:02 host app[1]: ${msg}`;
    const want = plain.match(decodeLine(line, { refMs: Date.UTC(2024, 0, 1) }));
    if (want) matched++;
    const ev = decodeLine(line, { refMs: Date.UTC(2024, 0, 1) });
    pre.select(ev);
    sc.scanFields(ev, fields);
    assert.equal(gated.match(ev), want, JSON.stringify(line));
  }
  assert.ok(matched > 400 && matched < 3600, `both answers are tested (${matched} of 4000 lines match)`);
});

test('bounded regexes: anchored, no unbounded repeat, no top-level alternative', () => {
  for (const src of ['^(?:4\\d\\d|5\\d\\d)$', '^[45]', '^GET [*+]', '^a{2,5}b\\+'])
    assert.ok(boundedRegex(src, ''), src);
  for (const src of ['4\\d\\d', '^a|b', '^a+', '^(?!x\\S+)', '^a{2,}', '^[^]]*'])
    assert.ok(!boundedRegex(src, ''), src);
  assert.ok(!boundedRegex('^abc', 'm'), 'with m, ^ matches after every newline');
});

test('a regex selection skipped because the line’s scan found none of its literals answers as the regex does', () => {
  // `1 of them` over patterns with required literals: with a scanner each runs only when the
  // scan (done for the prefilter) found one of its literals; without one, every pattern runs
  const detection = {
    a: { 'keywords|re': 'Failed password for (?:invalid user )?\\S+ from [\\d.]+' },
    b: { 'keywords|re': '(?:imap|pop3)-login: .*auth failed' },
    c: { 'message|re': 'authentication (?:failure|error).*rhost=\\S+' },
    d: { 'message|re': '\\d{5}z' },
    condition: '1 of them',
  };
  const doc = { title: 't', id: 'gate', logsource: { product: 'linux' }, detection };
  const sc = new LiteralScanner();
  const gated = compileRule(doc, 'inline', 'sigma', sc);
  const pre = new LiteralPrefilter([gated], sc);
  const plain = compileRule(doc, 'inline', 'sigma', null);
  const fields = Int32Array.of(sc.fieldId('keywords'), sc.fieldId('message'));
  const pieces = [
    'Failed password for ',
    'FAILED PASSWORD FOR ',
    'invalid user ',
    'root from 1.2.3.4',
    'imap-login: ',
    'pop3-LOGIN: ',
    ' auth failed',
    'authentication failure',
    'authentication error ',
    'rhost=x',
    '12345z',
    '\u0130',
    '\u212a',
  ];
  const rnd = seededInts(3);
  let matched = 0;
  for (let n = 0; n < 3000; n++) {
    const msg = Array.from({ length: rnd(5) }, () => pieces[rnd(pieces.length)]).join(rnd(2) ? ' ' : '');
    const line = `Mar 10 08:01:02 host sshd[1]: ${msg}`;
    const ev = decodeLine(line, { refMs: Date.UTC(2024, 0, 1) });
    const want = plain.match(ev);
    if (want) matched++;
    // unscanned: every pattern runs
    assert.equal(gated.match(ev), want, JSON.stringify(line));
    // as the inspector runs it: the prefilter scans the fields, the rule then reads the scan
    const ev2 = decodeLine(line, { refMs: Date.UTC(2024, 0, 1) });
    pre.select(ev2);
    // `d` has no literal: the rule always runs, and the fields are scanned for the other rules'
    // literals in a full rule set
    sc.scanFields(ev2, fields);
    assert.equal(pre.count === 1 && gated.match(ev2), want, JSON.stringify(line));
  }
  assert.ok(matched > 300 && matched < 2700, `both answers are tested (${matched} of 3000 lines match)`);
});
