import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { corpusPath, skipWithoutCorpus } from '@cordon/testkit';
import { compileRule, decodeLine, loadRuleDir, type CompiledRule } from '../src/index.js';

const SIGMA = corpusPath('sigma');
const REF = Date.UTC(2024, 5, 1);

function rule(
  detection: Record<string, unknown>,
  logsource: Record<string, unknown> = { category: 'webserver' },
): CompiledRule {
  return compileRule({ title: 't', id: 'x', logsource, detection }, 'inline', 'sigma');
}
const web = (uri: string, ua = 'Mozilla/5.0', status = 200) =>
  decodeLine(`1.2.3.4 - - [05/Mar/2007:14:39:21 +0100] "GET ${uri} HTTP/1.1" ${status} 1 "-" "${ua}"`, { refMs: REF });

test('modifiers: contains, startswith, endswith, all, re, cidr, case-insensitive by default', () => {
  const ev = web('/Admin/Config.PHP?cmd=whoami');
  assert.ok(rule({ s: { 'cs-uri-query|contains': 'config.php' }, condition: 's' }).match(ev));
  assert.ok(rule({ s: { 'cs-uri-query|startswith': '/admin' }, condition: 's' }).match(ev));
  assert.ok(rule({ s: { 'cs-uri-query|endswith': '=WHOAMI' }, condition: 's' }).match(ev));
  assert.ok(!rule({ s: { 'cs-uri-query|endswith': '/admin' }, condition: 's' }).match(ev));
  assert.ok(rule({ s: { 'cs-uri-query|contains|all': ['admin', 'whoami'] }, condition: 's' }).match(ev));
  assert.ok(!rule({ s: { 'cs-uri-query|contains|all': ['admin', 'passwd'] }, condition: 's' }).match(ev));
  assert.ok(rule({ s: { 'cs-uri-query|re': 'cmd=\\w+$' }, condition: 's' }).match(ev));
  assert.ok(!rule({ s: { 'cs-uri-query|re': 'CMD=' }, condition: 's' }).match(ev), 're is case-sensitive');
  assert.ok(rule({ s: { 'cs-uri-query|re|i': 'CMD=' }, condition: 's' }).match(ev));
  assert.ok(rule({ s: { 'c-ip|cidr': ['10.0.0.0/8', '1.2.0.0/16'] }, condition: 's' }).match(ev));
  assert.ok(!rule({ s: { 'c-ip|cidr': '10.0.0.0/8' }, condition: 's' }).match(ev));
  assert.ok(rule({ s: { 'sc-status': 200 }, condition: 's' }).match(ev), 'numbers compare as text');
});

test('wildcards with escapes, null values, keyword lists, base64offset', () => {
  const ev = web('/a*b?c/x.php');
  assert.ok(rule({ s: { 'cs-uri': '/a*.php' }, condition: 's' }).match(ev));
  assert.ok(rule({ s: { 'cs-uri': '/a\\*b\\?c/?.php' }, condition: 's' }).match(ev), 'escaped * and ? are literal');
  assert.ok(!rule({ s: { 'cs-uri': '/ab\\*' }, condition: 's' }).match(ev));
  assert.ok(rule({ s: { 'cs-uri': '/A?B*' }, condition: 's' }).match(ev));
  assert.ok(rule({ s: { 'cs-username': null }, condition: 's' }).match(ev), 'absent field matches null');
  assert.ok(!rule({ s: { 'c-ip': null }, condition: 's' }).match(ev));
  const ln = decodeLine('Mar  1 10:00:00 h kernel: Trojan.Foo FOUND in /tmp', { refMs: REF });
  const kw = rule({ keywords: ['nothing', 'trojan*found'], condition: 'keywords' }, { product: 'linux' });
  assert.ok(kw.match(ln), 'keywords match anywhere, wildcards inside');
  assert.ok(
    rule({ keywords: { '|all': ['kernel', 'FOUND in'] }, condition: 'keywords' }, { product: 'linux' }).match(ln),
  );
  assert.ok(
    !rule({ keywords: { '|all': ['kernel', 'absent'] }, condition: 'keywords' }, { product: 'linux' }).match(ln),
  );
  const b64 = web(`/x?d=${Buffer.from('xx/bin/bash -c id').toString('base64')}`);
  assert.ok(rule({ s: { 'cs-uri-query|base64offset|contains': '/bin/bash' }, condition: 's' }).match(b64));
  assert.ok(!rule({ s: { 'cs-uri-query|base64offset|contains': '/bin/zsh' }, condition: 's' }).match(b64));
});

test('conditions: and/or/not, parentheses, 1 of / all of prefixes, them', () => {
  const ev = web('/index.php?id=1', 'sqlmap/1.0', 404);
  const det = {
    sel_a: { 'cs-uri-stem|endswith': '.php' },
    sel_b: { 'cs-user-agent|contains': 'sqlmap' },
    filter_1: { 'sc-status': 200 },
    filter_2: { 'c-ip': '9.9.9.9' },
  };
  const m = (condition: string) => rule({ ...det, condition }).match(ev);
  assert.ok(m('sel_a and sel_b'));
  assert.ok(m('all of sel_*'));
  assert.ok(m('1 of sel_* and not 1 of filter_*'));
  assert.ok(!m('sel_a and filter_1'));
  assert.ok(m('sel_a and (filter_1 or sel_b)'));
  assert.ok(!m('sel_a and not (filter_1 or sel_b)'));
  assert.ok(m('1 of them'));
  assert.ok(!m('all of them'));
  assert.ok(m('not filter_1 and not filter_2'));
  assert.throws(() => m('sel_a and missing'), /not defined/);
  assert.throws(() => m('sel_a | near sel_b'), /near/);
  // list of maps = OR of ANDs
  assert.ok(rule({ s: [{ 'sc-status': 500 }, { 'sc-status': 404, 'cs-method': 'GET' }], condition: 's' }).match(ev));
});

test('log sources map to event kinds; endpoint categories are refused with a reason', () => {
  const ssh = decodeLine('Mar  1 10:00:00 h sshd[1]: error: buffer_get_ret: trying to get more bytes', { refMs: REF });
  const web1 = web('/');
  const r = rule({ keywords: ['buffer_get_ret'], condition: 'keywords' }, { product: 'linux', service: 'sshd' });
  assert.equal(r.match(ssh) && (r.kinds & ssh.kinds) !== 0, true);
  assert.equal(r.kinds & web1.kinds, 0);
  assert.throws(
    () => rule({ s: { Image: '/bin/sh' }, condition: 's' }, { product: 'linux', category: 'process_creation' }),
    /served by the procinspect stage/,
  );
  assert.throws(() => rule({ s: { a: 1 }, condition: 's' }, { product: 'windows' }), /not served/);
});

test(
  'the SigmaHQ corpus: every rule file is loaded or refused with a reason',
  { skip: skipWithoutCorpus('sigma') },
  () => {
    let files = 0;
    const walk = (d: string): void => {
      for (const n of readdirSync(d)) {
        const p = join(d, n);
        if (statSync(p).isDirectory()) walk(p);
        else if (n.endsWith('.yml')) files++;
      }
    };
    const set = { rules: [], refused: [] } as ReturnType<typeof loadRuleDir>;
    for (const sub of ['rules', 'rules-emerging-threats', 'rules-threat-hunting', 'unsupported']) {
      walk(join(SIGMA, sub));
      loadRuleDir(join(SIGMA, sub), 'sigma', set);
    }
    assert.equal(set.rules.length + set.refused.length, files);
    assert.equal(files, 345);
    for (const r of set.refused)
      assert.match(r.reason, /endpoint telemetry|near|procinspect/, `${r.file}: ${r.reason}`);
    // every web, sshd, auth, syslog and auditd rule is served, including the count() aggregations
    assert.ok(set.rules.length >= 170, `${set.rules.length} loaded`);
    const agg = set.rules.find(
      (r) => r.id === 'fc947f8e-ea81-4b14-9a7b-13f888f94e18' || r.threshold?.distinct === 'pam_user',
    );
    assert.ok(agg?.threshold, 'count(pam_user) by pam_rhost is served as a threshold');
  },
);

test('a rule file that is not YAML or has no detection is reported, the others still load', () => {
  const dir = mkdtempSync(join(tmpdir(), 'loginspect-rules-'));
  try {
    writeFileSync(join(dir, 'bad.yml'), 'title: [unclosed\n');
    writeFileSync(join(dir, 'nodet.yml'), 'title: x\nid: nodet\nlogsource: {category: webserver}\n');
    writeFileSync(
      join(dir, 'ok.yml'),
      'title: ok\nid: ok\nlogsource: {category: webserver}\ndetection: {s: {sc-status: 404}, condition: s}\n',
    );
    const set = loadRuleDir(dir, 'cordon');
    assert.deepEqual(
      set.rules.map((r) => r.id),
      ['ok'],
    );
    assert.equal(set.refused.length, 2);
    assert.ok(set.refused.some((r) => r.file === 'nodet.yml' && /no detection/.test(r.reason)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
