import { test } from 'node:test';
import assert from 'node:assert/strict';
import { countRules, ruleFileLines, ruleOptions, ruleSid, splitOptions } from '../src/index.js';

test('options split at unescaped semicolons only, as Suricata does (a pcre may hold a bare quote)', () => {
  assert.deepEqual(splitOptions('msg:"a\\;b"; pcre:"/^["\']?post/Ri"; nocase; sid:1;'), [
    { key: 'msg', value: '"a\\;b"' },
    { key: 'pcre', value: '"/^["\']?post/Ri"' },
    { key: 'nocase', value: null },
    { key: 'sid', value: '1' },
  ]);
  assert.equal(splitOptions('msg:"x"; sid:1'), null, 'the last option not closed by ";"');
  assert.equal(ruleOptions('alert tcp any any -> any any (sid:1;'), null, 'no ")" ends the rule');
});

test('logical lines: continued at a trailing backslash, CRLF ends dropped, blank lines left out, where each starts', () => {
  const text =
    'alert tcp any any -> any any (msg:"a"; \\\r\n  sid:1;)\r\n\r\n# alert tcp any any -> any any (sid:2;)\n  \nalert udp any any -> any any (sid:3;)';
  assert.deepEqual(
    [...ruleFileLines(text)],
    [
      { line: 1, text: 'alert tcp any any -> any any (msg:"a";   sid:1;)' },
      { line: 4, text: '# alert tcp any any -> any any (sid:2;)' },
      { line: 6, text: 'alert udp any any -> any any (sid:3;)' },
    ],
  );
  // a continued rule is one rule, even when its second line starts with an action word
  assert.deepEqual(
    countRules(
      'alert tcp any any -> any any (msg:"x"; \\\nalert tcp; sid:1;)\n# drop ip any any -> any any (sid:2;)\n',
    ),
    {
      rules: 1,
      disabled: 1,
    },
  );
});

test('the sid is the sid option: not a "sid:" spelled inside a msg, content or reference, not of a line that is no rule', () => {
  assert.equal(ruleSid('alert tcp any any -> any any (msg:"x"; sid:2000001; rev:3;)'), 2000001);
  assert.equal(ruleSid('alert http any any -> any any (msg:"has sid:9\\; in it"; content:"sid:8"; sid:7;)'), 7);
  assert.equal(ruleSid('alert tcp any any -> any any (sid:5; rev:1; reference:url,example.com/?a= sid:8;)'), 5);
  assert.equal(ruleSid('# alert tcp any any -> any any (sid:5;)'), null, 'commented out');
  assert.equal(ruleSid('not a rule (sid:6;)'), null);
  assert.equal(ruleSid('alert tcp any any -> any any (msg:"x"; sid:12345678901;)'), null, 'more than 10 digits');
  assert.equal(ruleSid('alert tcp any any -> any any (msg:"x"; sid:abc;)'), null);
  assert.equal(ruleSid('alert tcp any any -> any any (msg:"x";)'), null, 'no sid');
});

test('hostile rule text never throws: long runs of backslashes, semicolons, parentheses, continuations', () => {
  const big = [
    'alert tcp any any -> any any (' + '\\'.repeat(200_000) + ')',
    'alert tcp any any -> any any (' + ';'.repeat(200_000) + 'sid:1;)',
    '('.repeat(100_000) + 'sid:1;' + ')'.repeat(100_000),
    '\\\n'.repeat(50_000) + 'alert tcp any any -> any any (sid:4;)',
  ];
  const sids = big.flatMap((text) => [...ruleFileLines(text)].map((l) => ruleSid(l.text)));
  assert.deepEqual(sids, [null, 1, null, 4]);
});
