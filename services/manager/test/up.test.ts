/**
 * `cordon up` serves the console and the API on 127.0.0.1 and prints `manager: URL`; the API
 * document and its UI are public and hold no secret, everything else asks for a sign-in; the
 * first admin is made with `cordon users add` from another terminal (through the control
 * socket) and signs in.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const CLI = fileURLToPath(new URL('../../../cli/bin/cordon.js', import.meta.url));
const ENV = {
  ...process.env,
  CORDON_KAFKA_BROKERS: '',
  CORDON_CLICKHOUSE_URL: '',
  CORDON_LOG_FORMAT: 'json',
  CORDON_LOG_LEVEL: 'info',
  CORDON_METRICS_ADDR: 'off',
};

test('cordon up prints "manager: URL" and serves the console and the API there; cordon users add makes the first admin', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-up-manager-'));
  const up = spawn(process.execPath, [CLI, 'up', '--no-demo', '--data-dir', dir], {
    env: ENV,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  up.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
  up.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const t = setTimeout(
        () => reject(new Error(`no "manager:" line in 120 s; stdout: ${stdout}\nstderr: ${stderr.slice(-2000)}`)),
        120_000,
      );
      const check = () => {
        const m = /^manager: (http:\/\/127\.0\.0\.1:\d+)$/m.exec(stdout);
        if (m && /Cordon is running/.test(stdout)) {
          clearTimeout(t);
          resolve(m[1]!);
        } else setTimeout(check, 100);
      };
      check();
    });
    const page = await fetch(`${url}/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /<div id="app">/);
    assert.match(page.headers.get('content-security-policy') ?? '', /default-src 'self'/);
    const doc = await fetch(`${url}/api/v1/openapi.json`);
    assert.equal(doc.status, 200);
    const docText = await doc.text();
    assert.ok(!/passwordHash|scrypt\$|cdn_[a-z0-9]{12}_/.test(docText));
    assert.equal((await fetch(`${url}/api/v1/docs/`)).status, 200);
    assert.equal((await fetch(`${url}/api/v1/inventory/vms`)).status, 401);

    const add = await new Promise<{ code: number; out: string; err: string }>((resolve) => {
      const c = execFile(
        process.execPath,
        [CLI, 'users', 'add', 'alice', '--role', 'admin', '--data-dir', dir],
        { env: ENV },
        (err, out, errOut) => resolve({ code: err ? 1 : 0, out, err: errOut }),
      );
      c.stdin!.end('a long enough passphrase\n');
    });
    assert.equal(add.code, 0, add.err);
    let login: Response | null = null;
    for (let i = 0; i < 50; i++) {
      login = await fetch(`${url}/api/v1/auth/login`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ user: 'alice', password: 'a long enough passphrase' }),
      });
      if (login.status === 200) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(login!.status, 200);
    const cookie = login!.headers.getSetCookie().find((c) => c.startsWith('cordon_session='))!;
    assert.match(cookie, /HttpOnly/i);
    assert.match(cookie, /SameSite=Strict/i);
    assert.doesNotMatch(cookie, /Secure/, 'plain HTTP on loopback: no Secure flag (it would never be sent back)');
    assert.ok(!stderr.includes('a long enough passphrase'), 'the password is not in the logs');
  } finally {
    up.kill('SIGINT');
    await new Promise((r) => up.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
});
