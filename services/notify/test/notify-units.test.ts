import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backoffMs,
  matchesFilter,
  notifyConfigSchema,
  packetBatchHead,
  RateLimiter,
  rfc5424,
  SilenceTracker,
  silenceAlert,
  signWebhook,
  toCef,
  toLeef,
  verifyWebhook,
  webhookBody,
} from '../src/index.js';
import { codecFor, TOPICS } from '@cordon/schemas';
import { alert } from './fixtures.js';

test('webhook signatures: HMAC-SHA256 over timestamp and body, refused when tampered, stale or missing', () => {
  const body = webhookBody(alert(1), 'cordon');
  const sig = signWebhook('s3cret-s3cret-s3cret', 1000, body);
  assert.match(sig, /^v1=[0-9a-f]{64}$/);
  verifyWebhook('s3cret-s3cret-s3cret', { timestamp: '1000', signature: sig }, body, 1100);
  assert.throws(
    () =>
      verifyWebhook(
        's3cret-s3cret-s3cret',
        { timestamp: '1000', signature: sig },
        body.replace('web-1', 'web-2'),
        1100,
      ),
    /CORDON_ERR_NOTIFY_SIGNATURE|does not match/,
  );
  assert.throws(
    () => verifyWebhook('other-secret-other', { timestamp: '1000', signature: sig }, body, 1100),
    /does not match/,
  );
  assert.throws(
    () => verifyWebhook('s3cret-s3cret-s3cret', { timestamp: '1000', signature: sig }, body, 1000 + 301),
    /window/,
  );
  assert.throws(
    () => verifyWebhook('s3cret-s3cret-s3cret', { timestamp: null, signature: sig }, body, 1000),
    /missing/,
  );
});

test("webhook bodies: Cordon's alert, OCSF, Slack-compatible", () => {
  const cordon = JSON.parse(webhookBody(alert(1), 'cordon'));
  assert.equal(cordon.alert_id, 'a0001');
  assert.match(cordon.ts, /^2023-11-14T/);
  assert.equal(JSON.parse(webhookBody(alert(1), 'ocsf')).class_uid, 2004);
  const slack = JSON.parse(webhookBody(alert(1), 'slack'));
  assert.match(slack.text, /DEMO path traversal/);
  assert.equal(slack.blocks[0].type, 'section');
});

test('backoff doubles with jitter up to its cap; the rate limiter spaces deliveries', () => {
  const p = { maxAttempts: 10, initialMs: 100, maxMs: 1000 };
  assert.equal(
    backoffMs(p, 1, () => 1),
    100,
  );
  assert.equal(
    backoffMs(p, 1, () => 0),
    50,
  );
  assert.equal(
    backoffMs(p, 3, () => 1),
    400,
  );
  assert.equal(
    backoffMs(p, 9, () => 1),
    1000,
  );
  let now = 0;
  const rl = new RateLimiter(2, () => now);
  assert.equal(rl.take(), 0);
  assert.equal(rl.take(), 0);
  assert.equal(rl.take(), 500);
  now = 500;
  assert.equal(rl.take(), 0);
});

test('target filters: severity, rules with prefixes, VM groups, stages', () => {
  const groups = { dmz: ['web-1'] };
  assert.ok(matchesFilter({}, alert(1), groups));
  assert.ok(
    matchesFilter({ maxSeverity: 1, rules: ['sid:19*'], vmGroups: ['dmz'], stages: ['dpi'] }, alert(1), groups),
  );
  assert.ok(!matchesFilter({ maxSeverity: 1 }, alert(1, { severity: 2 }), groups));
  assert.ok(!matchesFilter({ rules: ['sid:2*'] }, alert(1), groups));
  assert.ok(!matchesFilter({ vmGroups: ['dmz'] }, alert(1, { vm: 'db-1' }), groups));
  assert.ok(!matchesFilter({ vms: ['db-1'] }, alert(1, { vm: null }), groups));
});

test('configuration: a webhook needs a secret, names are unique, groups exist, unknown keys are refused', () => {
  const ok = notifyConfigSchema.parse({ webhooks: [{ name: 'soc', url: 'http://127.0.0.1:1/x', secretEnv: 'X' }] });
  assert.equal(ok.webhooks[0]!.retry.maxAttempts, 60);
  assert.throws(
    () => notifyConfigSchema.parse({ webhooks: [{ name: 'soc', url: 'http://127.0.0.1:1/x' }] }),
    /secretEnv/,
  );
  assert.throws(
    () =>
      notifyConfigSchema.parse({
        webhooks: [{ name: 'a', url: 'http://x/', secretEnv: 'X' }],
        syslog: [{ name: 'a', host: '127.0.0.1' }],
      }),
    /used twice/,
  );
  assert.throws(
    () =>
      notifyConfigSchema.parse({
        webhooks: [{ name: 'a', url: 'http://x/', secretEnv: 'X', filter: { vmGroups: ['nope'] } }],
      }),
    /not in notify.vmGroups/,
  );
  assert.throws(() => notifyConfigSchema.parse({ sislog: [] }), /sislog/);
});

test('CEF and LEEF lines escape what their formats reserve; RFC 5424 framing', () => {
  const a = alert(1, { signature: 'a|b\\c', http_url: '/x=1\ny', category: 'tab\there' });
  const cef = toCef(a);
  assert.match(cef, /^CEF:0\|Cordon\|Cordon\|0\.1\.0\|sid:1900001\|a\\\|b\\\\c\|10\|/);
  assert.match(cef, /request=\/x\\=1\\ny/);
  assert.match(cef, /cs1Label=communityId cs1=1:LQU9qZlK\+B5F3KDmev6m5PMibrg\\=/);
  const leef = toLeef(a);
  assert.match(leef, /^LEEF:2\.0\|Cordon\|Cordon\|0\.1\.0\|sid:1900001\|\^\|sev=10\^/);
  assert.match(leef, /\^cat=tab here\^/);
  const msg = rfc5424(a, 'cef', { facility: 'local0', hostname: 'sensor 1' });
  assert.match(
    msg,
    /^<130>1 2023-11-14T22:13:20\.001Z sensor_1 cordon \d+ CEF \[cordon@32473 alert_id="a0001" rule="sid:1900001"\] CEF:0\|/,
  );
});

test('silent sources: reported once per silence, again after they come back and go quiet', () => {
  const t = new SilenceTracker((kind) => (kind === 'agent' ? 1000 : null));
  t.observe('agent', 'agt-1', 'web-1', 0);
  t.observe('log', 'web-1|/var/log/auth.log', 'web-1', 0);
  assert.deepEqual(t.check(1000), []);
  const [s] = t.check(1001);
  assert.equal(s!.name, 'agt-1');
  assert.deepEqual(t.check(5000), [], 'once');
  t.observe('agent', 'agt-1', 'web-1', 6000);
  assert.equal(t.check(7001).length, 1, 'again after it came back');
  const a = silenceAlert(s!, 1001);
  assert.equal(a.rule_id, 'cordon:silent-agent');
  assert.equal(a.vm, 'web-1');
  assert.equal(a.alert_id, silenceAlert(s!, 9999).alert_id, 'the id depends on the silence, not the check');
  assert.deepEqual(codecFor(TOPICS.alerts).decode(codecFor(TOPICS.alerts).encode(a)).mitre_technique_ids, ['T1562']);
});

test("a packet batch's sensor and end-of-source flag are read without decoding its frames", () => {
  const codec = codecFor(TOPICS.packets);
  const frames = [{ ts_us: 1, seq: 0, orig_len: 3, frame: Buffer.from('abc') }];
  assert.deepEqual(
    packetBatchHead(
      codec.encode({ batch_id: 'b', sensor: 'hv1', vm: 'web-1', linktype: 1, end_of_source: false, packets: frames }),
    ),
    { sensor: 'hv1', endOfSource: false },
  );
  assert.deepEqual(
    packetBatchHead(
      codec.encode({
        batch_id: 'b'.repeat(200),
        sensor: 'replay:x',
        vm: null,
        linktype: 1,
        end_of_source: true,
        packets: [],
      }),
    ),
    { sensor: 'replay:x', endOfSource: true },
  );
  assert.throws(() => packetBatchHead(Buffer.from([0, 0, 0, 0, 1, 40])));
});
