import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  Coverage,
  LogInspector,
  normalizeAddress,
  parseInspectorConfig,
  shapeOf,
  type CompiledRule,
} from '../src/index.js';

/**
 * The rule library's own labelled examples (`cordon.examples` in each family file): every
 * `match` line must be matched by its rule with the address given, every `nomatch` line must be
 * left alone by it and by the whole library. A never-flag entry's `match` lines are benign lines
 * it must silence.
 */

const REF = Date.UTC(2024, 5, 1);
const inspector = LogInspector.fromConfig(parseInspectorConfig({ blocks: { ignore: [] } }));
const withExamples = inspector.rules.rules.filter((r) => r.examples);

test('the library loads whole and most rules carry examples', () => {
  assert.deepEqual(inspector.rules.refused, []);
  const files = new Set(inspector.rules.rules.map((r) => r.file));
  assert.ok(files.size >= 15, `${files.size} family files`);
  assert.ok(
    withExamples.length >= inspector.rules.rules.length * 0.8,
    `${withExamples.length} of ${inspector.rules.rules.length} rules carry examples`,
  );
});

function explain(line: string): { rule: CompiledRule; srcIp: string | null }[] {
  return inspector.explain(inspector.newState(), line, { refMs: REF }).explanations;
}

for (const rule of withExamples) {
  test(`${rule.file} ${rule.id}: its examples`, () => {
    const ex = rule.examples!;
    for (const { line, ip } of ex.match) {
      if (rule.neverFlag) {
        const r = inspector.inspect(inspector.newState(), line, { refMs: REF });
        assert.equal(r.suppressedBy?.id, rule.id, `never-flag ${rule.id} must silence: ${line}`);
        continue;
      }
      const hit = explain(line).find((e) => e.rule === rule);
      assert.ok(hit, `${rule.id} must match: ${line}`);
      if (ip !== null) assert.equal(hit.srcIp, normalizeAddress(ip), `${rule.id} address in: ${line}`);
    }
    for (const line of ex.nomatch) {
      if (rule.neverFlag) {
        // a never-flag entry's nomatch lines are attacks it must leave to the rules
        const r = inspector.inspect(inspector.newState(), line, { refMs: REF });
        assert.equal(r.suppressedBy, null, `never-flag ${rule.id} must not silence: ${line}`);
        assert.ok(r.detections.length > 0, `the attack example of never-flag ${rule.id} must be detected: ${line}`);
        continue;
      }
      const all = explain(line);
      assert.ok(!all.some((e) => e.rule === rule), `${rule.id} must not match: ${line}`);
      const r = inspector.inspect(inspector.newState(), line, { refMs: REF });
      assert.deepEqual(
        r.detections.map((d) => d.rule.id),
        [],
        `benign example of ${rule.id} flagged by the library: ${line}`,
      );
    }
  });
}

test('connection state: a client that tries several accounts in one connection, then gets in', () => {
  const st = inspector.newState();
  const run = (l: string): string[] =>
    inspector.inspect(st, l, { refMs: REF }).detections.map((d) => `${d.rule.id} ${d.srcIp}`);
  const pam = (user: string): string =>
    `Mar 10 08:01:02 h sshd[901]: pam_unix(sshd:auth): authentication failure; logname= uid=0 euid=0 tty=ssh ruser=${user} rhost=203.0.113.99`;
  assert.deepEqual(
    run(pam('root')),
    [],
    'the first failure is left to the other rules (sshd logs it again as Failed …)',
  );
  assert.deepEqual(run(pam('root')), [], 'the same user again');
  assert.deepEqual(run(pam('oracle')), ['cordon-auth-sshd-user-switch 203.0.113.99']);
  assert.deepEqual(run('Mar 10 08:01:03 h sshd[901]: Accepted password for deploy from 203.0.113.99 port 4000 ssh2'), [
    'cordon-auth-sshd-user-switch 203.0.113.99',
  ]);
  // another connection that fails and gets in as the same user is a typo, not a switch
  run('Mar 10 08:01:04 h sshd[902]: Failed password for alice from 198.51.100.9 port 4001 ssh2');
  assert.deepEqual(
    run('Mar 10 08:01:05 h sshd[902]: Accepted password for alice from 198.51.100.9 port 4001 ssh2'),
    [],
  );
});

test('connection state: a failure whose line names no client is counted when a later line names it', () => {
  const st = inspector.newState();
  const run = (l: string): string[] =>
    inspector.inspect(st, l, { refMs: REF }).detections.map((d) => `${d.rule.id} ${d.srcIp}`);
  assert.deepEqual(
    run('Mar 10 08:01:02 h sshd[903]: error: kex_exchange_identification: Connection closed by remote host'),
    [],
  );
  assert.deepEqual(run('Mar 10 08:01:02 h sshd[903]: Connection closed by 203.0.113.98 port 4002'), [
    'cordon-auth-sshd-bad-protocol 203.0.113.98',
  ]);
  // a connection already counted for its failures is not counted again for leaving
  run('Mar 10 08:01:03 h sshd[904]: Invalid user test from 203.0.113.97 port 4003');
  assert.deepEqual(
    run('Mar 10 08:01:04 h sshd[904]: Disconnected from invalid user test 203.0.113.97 port 4003 [preauth]'),
    [],
  );
  assert.deepEqual(
    run('Mar 10 08:01:05 h sshd[905]: Disconnected from authenticating user root 203.0.113.96 port 4004 [preauth]'),
    ['cordon-auth-sshd-preauth-closed 203.0.113.96'],
  );
});

test('coverage: lines per decoder and the shapes of lines no decoder understood', () => {
  const c = new Coverage();
  for (const l of [
    'Mar 10 08:01:02 h sshd[1]: Accepted publickey for alice from 198.51.100.1 port 1 ssh2',
    '198.51.100.2 - - [10/Mar/2024:08:01:02 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"',
    'custom-daemon: user bob rejected from 203.0.113.5 after 3 tries',
    'custom-daemon: user eve rejected from 203.0.113.6 after 12 tries',
  ])
    c.add(inspector.inspect(inspector.newState(), l, { refMs: REF }).event);
  assert.equal(c.lines, 4);
  assert.equal(c.decoders.get('syslog'), 1);
  assert.equal(c.decoders.get('access'), 1);
  assert.equal(c.decoders.get('text'), 2);
  assert.deepEqual(
    [...c.shapes.keys()],
    [
      'custom-daemon: user bob rejected from <ip> after 0 tries',
      'custom-daemon: user eve rejected from <ip> after 0 tries',
    ],
  );
  assert.match(c.summary(), /4 lines read; 2 decoded, 2 not understood/);
  assert.equal(shapeOf('a 10.0.0.1 b 2001:db8::1 c deadbeef42 9'), 'a <ip> b <ip> c <hex> 0');
});
