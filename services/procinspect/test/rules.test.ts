/**
 * The process rules as behaviour cases (test/cases/<name>/: events.jsonl, the recorded events,
 * and expected.json, the rules each line must raise — and only those), the SigmaHQ corpus's
 * Linux process_creation rules (how many load, why the others do not), and hostile input.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileRule, loadRuleDir, type RuleSet } from '@cordon/loginspect';
import { corpusPath, skipWithoutCorpus } from '@cordon/testkit';
import {
  parseEventLine,
  parseProcRulesConfig,
  ProcessInspector,
  processTree,
  refusalGroups,
  toAlert,
} from '../src/index.js';

const CASES = join(import.meta.dirname, '..', '..', 'test', 'cases');
const builtin = ProcessInspector.fromConfig(parseProcRulesConfig({}));

test('the built-in rules all load', () => {
  assert.deepEqual(builtin.rules.refused, []);
  assert.equal(builtin.rules.rules.length, 6);
});

for (const name of readdirSync(CASES).sort()) {
  test(`case ${name}: each event raises the expected rules, and only those`, () => {
    const file = join(CASES, name, 'events.jsonl');
    const expected = JSON.parse(readFileSync(join(CASES, name, 'expected.json'), 'utf8')) as Record<string, string[]>;
    const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
    assert.equal(lines.length, Object.keys(expected).length, 'one expectation per event');
    lines.forEach((line, i) => {
      const e = parseEventLine(file, i + 1, line);
      const got = builtin.inspect(e).map((d) => toAlert(d).rule_id);
      assert.deepEqual(got.sort(), [...expected[String(i + 1)]!].sort(), `line ${i + 1}: ${e.command_line}`);
    });
  });
}

test('an alert carries the process tree, the rule and a deterministic id', () => {
  const file = join(CASES, 'service-shell', 'events.jsonl');
  const e = parseEventLine(file, 1, readFileSync(file, 'utf8').split('\n')[0]!);
  const [d] = builtin.inspect(e);
  const a = toAlert(d!);
  assert.equal(a.stage, 'procinspect');
  assert.equal(a.rule_id, 'cordon:cordon-proc-service-shell');
  assert.equal(a.severity, 2);
  assert.deepEqual(a.mitre_technique_ids, ['T1059.004', 'T1505.003']);
  const ev = JSON.parse(a.evidence) as { tree: Array<{ image: string }>; user: string };
  assert.deepEqual(
    ev.tree.map((p) => p.image),
    ['/usr/bin/dash', '/usr/sbin/nginx', '/usr/sbin/nginx'],
  );
  assert.deepEqual(processTree(e)[0]!.image, '/usr/bin/dash');
  assert.equal(ev.user, 'www-data');
  assert.equal(toAlert(builtin.inspect(e)[0]!).alert_id, a.alert_id, 'the same event gives the same id');
});

test('exits and uid changes are not process starts: no rule runs on them', () => {
  const e = parseEventLine('x', 1, JSON.stringify({ kind: 'exit', image: '/tmp/x', argv: [] }));
  assert.deepEqual(builtin.inspect(e), []);
});

test('rules of other log sources and fields no process event carries are refused with reasons', () => {
  const doc = (logsource: Record<string, unknown>, detection: Record<string, unknown>) => ({
    title: 't',
    id: 'x',
    logsource,
    detection,
  });
  const pc = { product: 'linux', category: 'process_creation' };
  assert.throws(
    () =>
      compileRule(
        doc({ product: 'linux', service: 'sshd' }, { s: { a: 1 }, condition: 's' }),
        'f',
        'sigma',
        null,
        'processes',
      ),
    /not a Linux process_creation source/,
  );
  assert.throws(
    () =>
      compileRule(
        doc({ product: 'windows', category: 'process_creation' }, { s: { Image: 'x' }, condition: 's' }),
        'f',
        'sigma',
        null,
        'processes',
      ),
    /not a Linux process_creation source/,
  );
  assert.throws(
    () =>
      compileRule(
        doc(pc, { s: { OriginalFileName: 'x', LogonId: 0 }, condition: 's' }),
        'f',
        'sigma',
        null,
        'processes',
      ),
    /fields LogonId, OriginalFileName are not carried by Linux process events/,
  );
  // modifiers work on the process fields as on log fields
  const r = compileRule(
    doc(pc, {
      a: { 'CommandLine|contains|all': ['-e', '/bin/sh'] },
      b: { 'Image|endswith': ['/nc', '/ncat'] },
      c: { 'CommandLine|windash|contains': '-e ' },
      condition: 'b and (a or c)',
    }),
    'f',
    'sigma',
    null,
    'processes',
  );
  const ins = new ProcessInspector({ rules: [r], refused: [] });
  const ev = (image: string, cmd: string) => parseEventLine('x', 1, JSON.stringify({ image, argv: cmd.split(' ') }));
  assert.equal(ins.inspect(ev('/usr/bin/nc', 'nc -e /bin/sh 127.0.0.1 9')).length, 1);
  assert.equal(ins.inspect(ev('/usr/bin/nc', 'nc /e x')).length, 1, 'windash: / for -');
  assert.equal(ins.inspect(ev('/usr/bin/ncat.real', 'ncat -e /bin/sh')).length, 0);
});

test(
  'the SigmaHQ corpus: its Linux process_creation rules load, every other is refused with a reason',
  { skip: skipWithoutCorpus('sigma') },
  () => {
    const root = corpusPath('sigma');
    const set: RuleSet = { rules: [], refused: [] };
    for (const sub of ['rules', 'rules-emerging-threats', 'rules-threat-hunting', 'unsupported'])
      loadRuleDir(join(root, sub), 'sigma', set, 'processes');
    const isPc = (f: string) => /(^|\/)proc_creation_[^/]*\.yml$/.test(f);
    const pcRefused = set.refused.filter((r) => isPc(r.file));
    const groups = refusalGroups(pcRefused);
    console.log(
      `# Sigma linux/process_creation: ${set.rules.length} loaded, ${pcRefused.length} refused: ${groups.map(([r, n]) => `${n} × ${r}`).join('; ')}`,
    );
    assert.ok(set.rules.length >= 142, `${set.rules.length} loaded`);
    assert.ok(
      set.rules.every((r) => isPc(r.file)),
      'only process_creation rules load',
    );
    assert.equal(set.rules.length + pcRefused.length, 144, 'the corpus has 144 such rules');
    for (const r of set.refused.filter((x) => !isPc(x.file)))
      assert.match(r.reason, /not a Linux process_creation source/, r.file);
    // the rules the corpus ships for the attacks of the done-when all load
    const ids = new Set(set.rules.map((r) => r.title));
    for (const t of ['Linux Shell Pipe to Shell', 'Potentially Suspicious Execution From Tmp Folder'])
      assert.ok(ids.has(t), `${t} loads`);
  },
);

test('hostile input: bad lines are coded errors, a huge command line is cut, a regex bomb costs bounded time', () => {
  assert.throws(() => parseEventLine('f', 3, '{"pid": "x"}'), { code: 'CORDON_ERR_PROCTEST_EVENT' });
  assert.throws(() => parseEventLine('f', 4, '[1,2]'), { code: 'CORDON_ERR_PROCTEST_EVENT' });
  assert.throws(() => parseEventLine('f', 5, '{"kind":"fork"}'), { code: 'CORDON_ERR_PROCTEST_EVENT' });
  // a 10 MB command line full of near-matches for the pipe-to-shell regex
  const huge = `curl ${'x'.repeat(1000)}${' | '.repeat(3_000_000)}`;
  const e = parseEventLine('f', 1, JSON.stringify({ image: '/usr/bin/bash', argv: ['bash', '-c', huge] }));
  const ins = ProcessInspector.fromConfig(parseProcRulesConfig({ maxCommandLineBytes: 4096 }));
  const t0 = performance.now();
  ins.inspect(e);
  const ms = performance.now() - t0;
  assert.ok(ms < 2000, `${ms.toFixed(0)} ms`);
});

test('proctest: a recorded file through the rules, bad lines reported with their codes and exit status 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-proctest-'));
  const file = join(dir, 'events.jsonl');
  writeFileSync(
    file,
    [
      JSON.stringify({ image: '/tmp/x', argv: ['/tmp/x'] }),
      'not json',
      JSON.stringify({ image: '/usr/bin/ls', argv: ['ls'] }),
      '',
    ].join('\n'),
  );
  const { proctestCommand } = await import('../src/index.js');
  const out: string[] = [];
  const err: string[] = [];
  let rc: number;
  try {
    rc = await proctestCommand({
      events: file,
      rules: [],
      sigma: [],
      noBuiltin: false,
      quiet: false,
      stats: true,
      out: (t) => void out.push(t),
      err: (t) => void err.push(t),
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(rc, 1);
  const alerts = out
    .join('')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { line: number; rule_id: string; evidence: { tree: unknown[] } });
  assert.deepEqual(
    alerts.map((a) => [a.line, a.rule_id]),
    [[1, 'cordon:cordon-proc-exec-tmp']],
  );
  assert.ok(Array.isArray(alerts[0]!.evidence.tree));
  assert.match(err.join(''), /CORDON_ERR_PROCTEST_EVENT: \S+:2 is not a process event/);
  assert.match(err.join(''), /6 rules loaded, 0 refused; 2 process starts of 3 lines/);
});
