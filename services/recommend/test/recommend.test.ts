/** The pure recommendation: groups with reasons, add/keep/drop against the VM's selection, pins, determinism, the size limit. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { codecFor, TOPICS } from '@cordon/schemas';
import { splitRuleset } from '@cordon/policy';
import {
  buildFacts,
  CandidateCache,
  formatRecommendation,
  PartitionEvidence,
  recommend,
  RuleVars,
  viewOf,
  type FitOptions,
  type RecommendInput,
} from '../src/index.js';

const RULES = [
  'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB web traversal"; flow:established,to_server; http.uri; content:"../"; sid:1001; rev:2; metadata:signature_severity Major;)',
  'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB web shell upload"; flow:established,to_server; http.uri; content:".php"; sid:1002; rev:1; metadata:signature_severity Major;)',
  'alert dns any any -> $HOME_NET any (msg:"LAB DNS zone transfer"; dns.query; content:"axfr"; sid:2001; rev:1;)',
  'alert tcp $EXTERNAL_NET any -> $HOME_NET 445 (msg:"LAB SMB exploit"; flow:to_server; content:"|ff|SMB"; sid:3001; rev:1;)',
  'alert tcp $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB SCAN amap"; flow:to_server; content:"thc"; sid:4001; rev:1;)',
  'pass tcp 10.0.0.0/8 any -> $HOME_NET any (msg:"LAB our scanner"; sid:5001; rev:1;)',
  'alert tcp any any -> any any (msg:"LAB broken"; sid:6001)',
].join('\n');

const OPTS: FitOptions = { clientRules: 'observed', minSeverity: 'Minor', deployments: new Set(['Perimeter']) };

/** The candidates as the stage builds them: from the rule file's parts on the policy topic. */
async function candidateSet() {
  const parts = splitRuleset('lab.rules', RULES);
  const cache = new CandidateCache(new RuleVars(), '{}');
  const cs = await cache.build(
    { rulesets: [{ name: 'lab.rules', sha256: parts[0]!.sha256, parts: parts.length }] },
    { rulesetParts: () => parts },
    [],
  );
  assert.ok(cs);
  return cs;
}

function web() {
  const ev = new PartitionEvidence();
  ev.setSnapshot({
    agent: 'a',
    vm: 'web-1',
    ts_us: 1,
    interfaces: [],
    routes: [],
    listening: [{ proto: 'tcp', address: '0.0.0.0', port: 80, process: 'nginx' }],
  });
  return buildFacts({ id: 'web-1', name: 'web-1', guestOs: 'debian-12', ips: ['10.0.0.10'] }, [ev], {
    minFlows: 3,
    maxAgeS: 3600,
    tlsDecrypted: false,
  });
}

test('candidates: pass rules are not judged, a broken rule is counted', async () => {
  const cs = await candidateSet();
  assert.deepEqual(
    cs.candidates.map((c) => c.rule.sid),
    [1001, 1002, 2001, 3001, 4001],
  );
  assert.equal(cs.unparsed, 1);
  assert.deepEqual(cs.skipped, { options: 1 });
  assert.deepEqual(cs.samples, [
    { ruleSet: 'lab.rules', line: 7, sid: 6001, reason: 'options', detail: 'the last option is not terminated by ";"' },
  ]);
  assert.deepEqual(cs.ruleSets, ['lab.rules']);
});

test('no selection yet: every policy rule runs, so fitting rules are kept and the others dropped, each group with its reason', async () => {
  const cs = await candidateSet();
  const input: RecommendInput = {
    facts: web(),
    candidates: cs,
    enabled: null,
    pinned: new Set(),
    policy: { id: 'default', version: 3 },
    options: OPTS,
    nowUs: 1,
    maxRecordBytes: 900_000,
  };
  const out = recommend(input);
  assert.deepEqual(out.selected, [1001, 1002, 4001]);
  assert.deepEqual(out.counts, { add: 0, keep: 3, drop: 2 });
  assert.deepEqual(
    out.record.rules.map((g) => [g.target, g.reason, g.rules.map((r) => `${r.change} ${r.sid} ${r.msg}`)]),
    [
      [
        'http',
        'web server on tcp/80 (nginx, from netconf); rule targets http to_server; signature_severity Major',
        ['keep 1001 LAB web traversal', 'keep 1002 LAB web shell upload'],
      ],
      [
        'tcp any',
        'web-1 exposes web server on tcp/80 (nginx, from netconf); rule targets tcp any to any port of the VM (host-wide)',
        ['keep 4001 LAB SCAN amap'],
      ],
    ],
  );
  assert.deepEqual(
    out.record.drop.map((g) => [g.target, g.reason, g.sids]),
    [
      ['dns', 'rule protects dns servers; web-1 serves none (its services: tcp/80 http)', [2001]],
      ['tcp 445', 'rule protects tcp 445 servers; web-1 serves none (its services: tcp/80 http)', [3001]],
    ],
  );
  // the same evidence gives the same recommendation
  const again = recommend({ ...input, nowUs: 999 });
  assert.equal(again.digest, out.digest);
  assert.deepEqual({ ...again.record, ts_us: 0 }, { ...out.record, ts_us: 0 });
  // it encodes, and the view has one entry per rule with its reason
  const rec = codecFor(TOPICS.recommendations).decode(
    codecFor(TOPICS.recommendations).encode({ ...out.record, version: 1 }),
  );
  const v = viewOf(rec);
  assert.deepEqual(v.counts, { add: 0, keep: 3, drop: 2, byTarget: { http: 2, 'tcp any': 1 } });
  assert.equal(
    v.drop.find((d) => d.sid === 3001)!.reason,
    'rule protects tcp 445 servers; web-1 serves none (its services: tcp/80 http)',
  );
  const text = formatRecommendation(v).join('\n');
  assert.match(text, /RUN 3 rules: 0 to add \(\+\), 3 already enabled \(=\) — http 2, tcp any 1/);
  assert.match(text, /= 1001 {2}LAB web traversal/);
  assert.match(text, /DROP 2 rules/);
  assert.equal(viewOf(rec, 'other.rules').rules.length, 0, '--rule-set keeps that file only');
});

test('with a selection applied: new fits are added, pinned rules are never dropped', async () => {
  const cs = await candidateSet();
  const out = recommend({
    facts: web(),
    candidates: cs,
    enabled: { ruleSets: new Set(['lab.rules']), sids: new Set([1001, 3001]) },
    pinned: new Set([3001]),
    policy: { id: 'default', version: 4 },
    options: OPTS,
    nowUs: 1,
    maxRecordBytes: 900_000,
  });
  assert.deepEqual(out.counts, { add: 2, keep: 2, drop: 0 });
  assert.deepEqual(out.selected, [1001, 1002, 3001, 4001]);
  const pinned = out.record.rules.find((g) => g.rules.some((r) => r.sid === 3001))!;
  assert.equal(
    pinned.reason,
    'pinned in the policy (kept whatever the fit); on its own: rule protects tcp 445 servers; web-1 serves none (its services: tcp/80 http)',
  );
  assert.deepEqual(out.record.pinned, [3001]);
  // files the selection does not cover run as the policy says
  const other = recommend({
    facts: web(),
    candidates: cs,
    enabled: { ruleSets: new Set(['else.rules']), sids: new Set() },
    pinned: new Set(),
    policy: { id: 'default', version: 4 },
    options: OPTS,
    nowUs: 1,
    maxRecordBytes: 900_000,
  });
  assert.deepEqual(other.counts, { add: 0, keep: 3, drop: 2 });
});

test('over the record limit, the messages of kept rules are left out (and said so); the sids and reasons stay', async () => {
  const cs = await candidateSet();
  const base: RecommendInput = {
    facts: web(),
    candidates: cs,
    enabled: { ruleSets: new Set(['lab.rules']), sids: new Set([1001]) },
    pinned: new Set(),
    policy: { id: 'default', version: 1 },
    options: OPTS,
    nowUs: 1,
    maxRecordBytes: 900_000,
  };
  const full = recommend(base);
  const size = codecFor(TOPICS.recommendations).encode(full.record).length;
  const trimmed = recommend({ ...base, maxRecordBytes: size - 1 });
  assert.equal(trimmed.record.msgs_omitted, true);
  const msgs = trimmed.record.rules.flatMap((g) => g.rules.map((r) => [r.sid, r.change, r.msg]));
  assert.deepEqual(msgs, [
    [1001, 'keep', null],
    [1002, 'add', 'LAB web shell upload'],
    [4001, 'add', 'LAB SCAN amap'],
  ]);
  assert.equal(trimmed.digest, full.digest, 'what it says is the same');
  assert.throws(
    () => recommend({ ...base, maxRecordBytes: 100 }),
    /CORDON_ERR_RECOMMEND_TOO_LARGE|over the 100-byte record limit/,
  );
});
