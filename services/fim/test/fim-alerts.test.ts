import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FileAttrs, FileEvent } from '@cordon/schemas';
import { FimAlerter, parseFimProcessorConfig, type FimEvidence } from '../src/index.js';

const attrs = (over: Partial<FileAttrs> = {}): FileAttrs => ({
  type: 'file',
  size: 100,
  mode: 0o100644,
  uid: 0,
  gid: 0,
  owner: 'root',
  group: 'root',
  inode: 42,
  mtime_us: 1_700_000_000_000_000,
  ctime_us: 1_700_000_000_000_000,
  sha256: 'a'.repeat(64),
  link_target: null,
  ...over,
});

const event = (over: Partial<FileEvent> = {}): FileEvent => ({
  event_id: 'e1',
  agent: 'agent-1',
  vm: 'vm-1',
  ts_us: 1_700_000_001_000_000,
  path: '/etc/passwd',
  op: 'changed',
  scan: 'realtime',
  before: attrs(),
  after: attrs({ size: 120, sha256: 'b'.repeat(64), mtime_us: 1_700_000_001_000_000, ctime_us: 1_700_000_001_000_000 }),
  renamed_from: null,
  error: null,
  ...over,
});

const config = parseFimProcessorConfig({
  rules: [
    { id: 'logs', paths: ['/var/log/**'], ignore: true },
    { id: 'accounts', paths: ['/etc/{passwd,shadow,group}'], severity: 1, title: 'Account database' },
    { id: 'etc', paths: ['/etc/**'], severity: 2, attributes: ['sha256', 'mode', 'uid', 'gid'] },
    { id: 'tmp-adds', paths: ['/srv/upload/**'], ops: ['removed'] },
  ],
});
const alerter = new FimAlerter(config);

test('a content change raises an alert naming each changed attribute with its before and after values', () => {
  const a = alerter.evaluate(event())!;
  assert.equal(a.stage, 'fim');
  assert.equal(a.rule_id, 'fim:accounts');
  assert.equal(a.severity, 1);
  assert.equal(a.vm, 'vm-1');
  assert.equal(a.sensor, 'agent-1');
  assert.equal(a.ts_us, 1_700_000_001_000_000);
  assert.equal(a.category, 'file-integrity');
  assert.equal(a.action, 'alert');
  assert.equal(a.signature, 'Account database: file changed: /etc/passwd (size, mtime, sha256)');
  const ev = JSON.parse(a.evidence) as FimEvidence;
  assert.deepEqual(ev.changes, [
    { attribute: 'size', before: 100, after: 120 },
    { attribute: 'mtime', before: 1_700_000_000_000_000, after: 1_700_000_001_000_000 },
    { attribute: 'sha256', before: 'a'.repeat(64), after: 'b'.repeat(64) },
  ]);
  assert.equal(ev.before!.size, 100);
  assert.equal(ev.after!.size, 120);
  assert.match(a.alert_id, /^[0-9a-f]{32}$/);
  assert.equal(alerter.evaluate(event())!.alert_id, a.alert_id, 'deterministic');
  assert.notEqual(alerter.evaluate(event({ event_id: 'e2' }))!.alert_id, a.alert_id);
});

test('the first matching rule decides severity and which attributes matter', () => {
  const hosts = alerter.evaluate(
    event({ path: '/etc/hosts', after: attrs({ mtime_us: 5, size: 101, sha256: 'c'.repeat(64) }) }),
  )!;
  assert.equal(hosts.rule_id, 'fim:etc');
  assert.equal(hosts.severity, 2);
  assert.deepEqual(
    (JSON.parse(hosts.evidence) as FimEvidence).changes.map((c) => c.attribute),
    ['sha256'],
  );
  // mtime only: the etc rule does not care.
  assert.equal(alerter.evaluate(event({ path: '/etc/hosts', after: attrs({ mtime_us: 5 }) })), null);
  // ctime alone is not an alert by default.
  assert.equal(alerter.evaluate(event({ path: '/opt/app/x', after: attrs({ ctime_us: 5 }) })), null);
  const perm = alerter.evaluate(event({ path: '/opt/app/x', after: attrs({ mode: 0o104755, ctime_us: 5 }) }))!;
  assert.equal(perm.rule_id, 'fim:default');
  assert.equal(perm.severity, 3);
  assert.deepEqual(JSON.parse(perm.evidence).changes, [{ attribute: 'mode', before: 0o100644, after: 0o104755 }]);
  assert.equal(alerter.evaluate(event({ path: '/var/log/syslog' })), null, 'ignored');
  assert.equal(alerter.evaluate(event({ path: '/srv/upload/f', op: 'added', before: null })), null, 'op not in rule');
  assert.equal(
    alerter.evaluate(event({ path: '/srv/upload/f', op: 'removed', after: null }))!.signature,
    'File removed: /srv/upload/f',
  );
});

test('adds, removals, renames and unreadable files; baseline events raise nothing', () => {
  assert.equal(
    alerter.evaluate(event({ path: '/usr/bin/nc', op: 'added', before: null }))!.signature,
    'File added: /usr/bin/nc',
  );
  const ren = alerter.evaluate(
    event({ path: '/usr/bin/.x', op: 'renamed', renamed_from: '/usr/bin/x', after: attrs({ ctime_us: 9 }) }),
  )!;
  assert.equal(ren.signature, 'File renamed: /usr/bin/x -> /usr/bin/.x');
  assert.equal(JSON.parse(ren.evidence).renamed_from, '/usr/bin/x');
  const err = alerter.evaluate(
    event({ path: '/opt/secret', op: 'scan', error: 'CORDON_ERR_FIM_UNREADABLE: cannot read /opt/secret (EACCES)' }),
  )!;
  assert.equal(err.severity, 4);
  assert.equal(err.rule_id, 'fim:default.check-error');
  assert.match(JSON.parse(err.evidence).error, /EACCES/);
  assert.equal(alerter.evaluate(event({ op: 'baseline', before: null, after: null })), null);
  assert.equal(
    new FimAlerter(parseFimProcessorConfig({ alertOnErrors: false })).evaluate(event({ op: 'scan', error: 'x' })),
    null,
  );
});

test('events that cannot be true are errors with a stable code', () => {
  for (const bad of [
    event({ op: 'changed', before: null }),
    event({ op: 'added', after: null }),
    event({ op: 'renamed', renamed_from: null }),
    event({ path: 'etc/passwd' }),
  ]) {
    assert.throws(
      () => alerter.evaluate(bad),
      (e: Error & { code?: string }) => e.code === 'CORDON_ERR_FIMPROC_BAD_EVENT',
    );
  }
});

test('configuration: unknown keys are named, rule ids unique, globs checked', () => {
  assert.throws(() => parseFimProcessorConfig({ rulez: [] }), /unknown key "rulez"/);
  assert.throws(
    () => parseFimProcessorConfig({ rules: [{ id: 'a', paths: ['/x'], sevrity: 1 }] }),
    /unknown key "rules\.0\.sevrity"/,
  );
  assert.throws(
    () =>
      parseFimProcessorConfig({
        rules: [
          { id: 'a', paths: ['/x'] },
          { id: 'a', paths: ['/y'] },
        ],
      }),
    /duplicate rule id "a"/,
  );
  assert.throws(() => parseFimProcessorConfig({ rules: [{ id: 'a', paths: ['/x/{a'] }] }), /unclosed "\{"/);
  assert.throws(
    () => parseFimProcessorConfig({ rules: [{ id: 'a', paths: ['/x'], severity: 0 }] }),
    /CORDON_ERR_FIMPROC_CONFIG|severity/,
  );
});
