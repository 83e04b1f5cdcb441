import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { agentIdFor, makeEnrollToken, readEnrollToken, verifyEnrollToken } from '../src/index.js';

const secret = randomBytes(32);
const now = 1_800_000_000_000;

test('a token made with the secret verifies, names its VM and gives a stable agent id', () => {
  const t = makeEnrollToken(secret, 'vm-web-1', 3_600_000, now);
  const p = verifyEnrollToken(t, secret, now + 1000);
  assert.equal(p.vm, 'vm-web-1');
  assert.equal(agentIdFor(p), agentIdFor(readEnrollToken(t)));
  assert.match(agentIdFor(p), /^agt-[0-9a-f]{16}$/);
});

test('attacks on the token: forged payload, other secret, expiry, garbage', () => {
  const t = makeEnrollToken(secret, 'vm-web-1', 3_600_000, now);
  const [body, sig] = t.split('.') as [string, string];
  const forgedBody = Buffer.from(JSON.stringify({ ...readEnrollToken(t), vm: 'vm-db-1' })).toString('base64url');
  assert.throws(() => verifyEnrollToken(`${forgedBody}.${sig}`, secret, now), /signature/);
  assert.throws(() => verifyEnrollToken(t, randomBytes(32), now), /signature/);
  assert.throws(() => verifyEnrollToken(`${body}.${sig.slice(0, -2)}`, secret, now), /signature/);
  assert.throws(() => verifyEnrollToken(t, secret, now + 3_600_000), /expired/);
  for (const junk of [
    '',
    'abc',
    'a.b.c',
    '.',
    `${Buffer.from('{}').toString('base64url')}.x`,
    `${Buffer.from('not json').toString('base64url')}.x`,
  ]) {
    assert.throws(() => verifyEnrollToken(junk, secret, now), /CORDON_ERR_AGENT_TOKEN|enrollment token rejected/);
  }
  assert.throws(() => makeEnrollToken(Buffer.alloc(8), 'vm', 1000, now), /shorter than 32 bytes/);
});
