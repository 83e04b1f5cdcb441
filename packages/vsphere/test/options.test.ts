import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { createContext, silentLogger } from '@cordon/runtime';
import {
  ERR_VSPHERE_BAD_OPTIONS,
  ERR_VSPHERE_NO_CREDENTIALS,
  fromUrl,
  optionsFromUrl,
  resolveOptions,
  VsphereConnector,
} from '../src/index.js';

const ctx = createContext({ log: silentLogger });

test('options: unknown keys, credentials in the URL, plain http and missing fields are refused without echoing secrets', () => {
  const ok = { url: 'https://vc.example/sdk', username: 'u', password: 'Secr3t!', ctx };
  assert.equal(resolveOptions(ok).source, 'https://vc.example/sdk');
  assert.equal(resolveOptions({ ...ok, url: 'https://vc.example' }).url, 'https://vc.example/sdk');
  const bad: Array<[Record<string, unknown>, RegExp]> = [
    [{ ...ok, pasword: 'x' }, /unknown option "pasword"/],
    [{ ...ok, url: 'https://u:Secr3t!@vc.example/sdk' }, /must not hold credentials/],
    [{ ...ok, url: 'http://vc.example/sdk' }, /must be https/],
    [{ ...ok, password: '' }, /"password" is required/],
    [{ ...ok, ctx: undefined }, /"ctx"/],
    [{ ...ok, insecure: true, caFile: '/x' }, /exclude each other/],
    [{ ...ok, caFile: '/no/such/ca.pem' }, /cannot be read/],
    [{ ...ok, backoff: { initialMs: -1 } }, /backoff\.initialMs/],
  ];
  for (const [o, re] of bad) {
    assert.throws(
      () => resolveOptions(o as never),
      (err: unknown) => {
        assert.ok(ERR_VSPHERE_BAD_OPTIONS.is(err), String(err));
        assert.match(err.message, re);
        assert.doesNotMatch(err.message, /Secr3t/);
        return true;
      },
    );
  }
});

test('fromUrl: credentials from the environment or a KEY=VALUE file, never from the URL', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-vsphere-opts-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const env = { CORDON_VSPHERE_USERNAME: 'svc', CORDON_VSPHERE_PASSWORD: 'from-env' };
  const o = optionsFromUrl('vsphere+https://vc.example/sdk', { ctx, env });
  assert.deepEqual([o.url, o.username, o.password], ['https://vc.example/sdk', 'svc', 'from-env']);

  const file = join(dir, 'creds');
  writeFileSync(
    file,
    '# vCenter service account\nCORDON_VSPHERE_USERNAME = "administrator@vsphere.local"\nCORDON_VSPHERE_PASSWORD=p=ss#word\n',
  );
  const f = optionsFromUrl('vsphere+https://vc.example/sdk', { ctx, env, credentialsFile: file });
  assert.deepEqual([f.username, f.password], ['administrator@vsphere.local', 'p=ss#word']);

  const c = fromUrl('vsphere+https://vc.example/sdk', { ctx, env });
  assert.ok(c instanceof VsphereConnector);
  assert.equal(c.kind, 'vsphere');
  assert.equal(c.source, 'https://vc.example/sdk');

  assert.throws(
    () => optionsFromUrl('vsphere+https://u:pw@vc.example/sdk', { ctx, env }),
    (err: unknown) => ERR_VSPHERE_BAD_OPTIONS.is(err) && !/pw/.test(err.message.replace('password', '')),
  );
  assert.throws(
    () => optionsFromUrl('https://vc.example/sdk', { ctx, env }),
    (err: unknown) => ERR_VSPHERE_BAD_OPTIONS.is(err),
  );
  assert.throws(
    () => optionsFromUrl('vsphere+https://vc.example/sdk', { ctx, env: {} }),
    (err: unknown) => ERR_VSPHERE_NO_CREDENTIALS.is(err) && /CORDON_VSPHERE_USERNAME/.test(err.message),
  );
  assert.throws(
    () => optionsFromUrl('vsphere+https://vc.example/sdk', { ctx, env: { CORDON_VSPHERE_USERNAME: 'u' } }),
    (err: unknown) => ERR_VSPHERE_NO_CREDENTIALS.is(err) && /CORDON_VSPHERE_PASSWORD/.test(err.message),
  );
  writeFileSync(file, 'just a password\n');
  assert.throws(
    () => optionsFromUrl('vsphere+https://vc.example/sdk', { ctx, credentialsFile: file }),
    (err: unknown) =>
      ERR_VSPHERE_NO_CREDENTIALS.is(err) && /line 1/.test(err.message) && !/just a password/.test(err.message),
  );
});

test('backoff grows exponentially with jitter and stays under the cap', () => {
  const c = new VsphereConnector({
    url: 'https://vc.example/sdk',
    username: 'u',
    password: 'p',
    ctx,
    backoff: { initialMs: 100, maxMs: 1000 },
  });
  for (let i = 0; i < 50; i++) {
    const b0 = c.backoff(0);
    assert.ok(b0 >= 50 && b0 <= 100, `attempt 0: ${b0}`);
    const b3 = c.backoff(3);
    assert.ok(b3 >= 400 && b3 <= 800, `attempt 3: ${b3}`);
    const b20 = c.backoff(20);
    assert.ok(b20 >= 500 && b20 <= 1000, `attempt 20: ${b20}`);
  }
});
