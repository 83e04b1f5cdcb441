/**
 * The manager's API through inject(), on a real embedded bus and ClickHouse with the sink
 * landing the audit topic: sign-in and sessions, tokens, users, blocks lifted as an operator
 * and refused to an analyst, the audit trail of every write, throttled sign-ins, and no
 * password or token in the logs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from '@cordon/testkit';
import { PASSWORD, putAlertRow, putBlock, putVm, startWorld, type World } from './world.js';

const login = (w: World, user: string, password: string, ip = '127.0.0.1') =>
  w.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { user, password }, remoteAddress: ip });

async function auditRows(w: World, where = '1'): Promise<Array<Record<string, string | null>>> {
  return w.store.query(
    `SELECT audit_id, actor, role, auth, action, object, before, after, result, source_ip, detail FROM audit WHERE ${where} ORDER BY ts`,
  );
}

test('sign-in: a session cookie (HttpOnly, SameSite=Strict) whose changes need the CSRF header; a wrong password is refused and audited', async () => {
  const w = await startWorld();
  try {
    const bad = await login(w, 'root', 'not the password at all');
    assert.equal(bad.statusCode, 401);
    assert.equal(bad.json().code, 'CORDON_ERR_MANAGER_LOGIN_FAILED');
    const ok = await login(w, 'root', PASSWORD);
    assert.equal(ok.statusCode, 200, ok.body);
    const session = ok.cookies.find((c) => c.name === 'cordon_session')!;
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, 'Strict');
    assert.equal(session.path, '/');
    const csrf = ok.json<{ csrf: string }>().csrf;
    const me = await w.app.inject({
      method: 'GET',
      url: '/api/v1/auth/me',
      cookies: { cordon_session: session.value },
    });
    assert.equal(me.json().user, 'root');
    // a change through the session without its CSRF header: refused (a cross-site form cannot send it)
    const forged = await w.app.inject({
      method: 'PUT',
      url: '/api/v1/targets/t1',
      cookies: { cordon_session: session.value },
      payload: { kind: 'webhook', url: 'https://siem.example/hook' },
    });
    assert.equal(forged.statusCode, 403);
    assert.equal(forged.json().code, 'CORDON_ERR_MANAGER_CSRF');
    const good = await w.app.inject({
      method: 'PUT',
      url: '/api/v1/targets/t1',
      cookies: { cordon_session: session.value },
      headers: { 'x-cordon-csrf': csrf },
      payload: { kind: 'webhook', url: 'https://siem.example/hook' },
    });
    assert.equal(good.statusCode, 200, good.body);
    const out = await w.app.inject({
      method: 'POST',
      url: '/api/v1/auth/logout',
      cookies: { cordon_session: session.value },
      headers: { 'x-cordon-csrf': csrf },
    });
    assert.equal(out.statusCode, 200);
    const after = await w.app.inject({
      method: 'GET',
      url: '/api/v1/auth/me',
      cookies: { cordon_session: session.value },
    });
    assert.equal(after.statusCode, 401);
    const rows = await waitFor('login audit rows', async () => {
      const r = await auditRows(w, "action IN ('auth.login', 'auth.logout', 'target.put')");
      return r.length >= 5 ? r : null;
    });
    assert.deepEqual(
      rows.map((r) => [r.action, r.actor, r.result]),
      [
        ['auth.login', 'root', 'denied'],
        ['auth.login', 'root', 'ok'],
        ['target.put', 'root', 'denied'],
        ['target.put', 'root', 'ok'],
        ['auth.logout', 'root', 'ok'],
      ],
    );
    assert.match(rows[0]!.detail!, /CORDON_ERR_MANAGER_LOGIN_FAILED/);
    assert.equal(rows[1]!.source_ip, '127.0.0.1');
  } finally {
    await w.close();
  }
});

test('an analyst token cannot lift a block, an operator can, and the audit row names them with before/after', async () => {
  const w = await startWorld();
  try {
    await putVm(w, 'web-1', 'hv1');
    await putBlock(w, 'watchdog:hv1', '203.0.113.66', 'web-1');
    const analyst = await w.userWithToken('analyst', { name: 'ana' });
    const operator = await w.userWithToken('operator', { name: 'olga' });
    await waitFor(
      'the block in the manager',
      async () =>
        (await w.call(analyst.token, { method: 'GET', url: '/api/v1/blocks' })).json<unknown[]>().length === 1 || null,
    );
    // the decision with its enforcer's report (block-status topic) on it
    const [shown] = await waitFor('the report on it', async () => {
      const b = (await w.call(analyst.token, { method: 'GET', url: '/api/v1/blocks' })).json<
        Array<{ status: string; reported: string | null; error: string | null }>
      >();
      return b[0]?.status === 'applied' ? b : null;
    });
    assert.ok(shown!.reported && shown!.error === null, JSON.stringify(shown));
    const refused = await w.call(analyst.token, {
      method: 'POST',
      url: '/api/v1/blocks/lift',
      payload: { target: '203.0.113.66', reason: 'pentest' },
    });
    assert.equal(refused.statusCode, 403);
    assert.equal(refused.json().code, 'CORDON_ERR_MANAGER_FORBIDDEN');
    const lifted = await w.call(operator.token, {
      method: 'POST',
      url: '/api/v1/blocks/lift',
      payload: { target: '203.0.113.66', reason: 'our own pentest' },
    });
    assert.equal(lifted.statusCode, 200, lifted.body);
    assert.deepEqual(lifted.json().lifted, [{ enforcer: 'watchdog:hv1', target: '203.0.113.66', wasActive: true }]);
    assert.equal((await w.call(analyst.token, { method: 'GET', url: '/api/v1/blocks' })).json<unknown[]>().length, 0);
    const rows = await waitFor('lift audit rows', async () => {
      const r = await auditRows(w, "action = 'block.lift'");
      return r.length >= 2 ? r : null;
    });
    const [denied, ok] = rows;
    assert.equal(denied!.actor, 'ana');
    assert.equal(denied!.role, 'analyst');
    assert.equal(denied!.result, 'denied');
    assert.match(denied!.auth!, /^token:/);
    assert.equal(ok!.actor, 'olga');
    assert.equal(ok!.role, 'operator');
    assert.equal(ok!.result, 'ok');
    assert.equal(ok!.object, 'block:watchdog:hv1|203.0.113.66');
    assert.equal(JSON.parse(ok!.before!)[0].target, '203.0.113.66');
    assert.deepEqual(JSON.parse(ok!.after!), { lifted: true, reason: 'our own pentest' });
    // the audit trail, read back through the API by an auditor, not by the operator
    const auditor = await w.userWithToken('auditor');
    assert.equal((await w.call(operator.token, { method: 'GET', url: '/api/v1/audit' })).statusCode, 403);
    const trail = await w.call(auditor.token, { method: 'GET', url: '/api/v1/audit?action=block.lift&result=ok' });
    assert.equal(trail.statusCode, 200, trail.body);
    assert.equal(trail.json().items[0].actor, 'olga');
  } finally {
    await w.close();
  }
});

test('API tokens: shown once, stored hashed, scoped, expiring; no answer carries a hash', async () => {
  const w = await startWorld();
  try {
    const admin = await w.userWithToken('admin', { name: 'root' });
    const scoped = await w.call(admin.token, {
      method: 'POST',
      url: '/api/v1/tokens',
      payload: { name: 'audit reader', permissions: ['audit:read'] },
    });
    assert.equal(scoped.statusCode, 201);
    const t = scoped.json<{ id: string; token: string }>();
    assert.match(t.token, /^cdn_[a-z0-9]{12}_/);
    // its scope: the audit, not the users
    assert.equal((await w.call(t.token, { method: 'GET', url: '/api/v1/users' })).statusCode, 403);
    // listed without the secret; the record holds only a hash
    const list = await w.call(admin.token, { method: 'GET', url: '/api/v1/tokens' });
    assert.ok(!list.body.includes(t.token.slice(17)));
    assert.ok(!/hash/i.test(list.body));
    const stored = w.manager.state.tokens.get(t.id)!;
    assert.notEqual(stored.doc.hash, t.token);
    const users = await w.call(admin.token, { method: 'GET', url: '/api/v1/users' });
    assert.ok(!/scrypt|passwordHash/.test(users.body), users.body);
    // a token's permissions stay within its owner's role
    const analyst = await w.userWithToken('analyst');
    const beyond = await w.call(analyst.token, {
      method: 'POST',
      url: '/api/v1/tokens',
      payload: { name: 'x', permissions: ['blocks:lift'] },
    });
    assert.equal(beyond.statusCode, 403);
    // revoked: 401 at once
    assert.equal((await w.call(admin.token, { method: 'DELETE', url: `/api/v1/tokens/${t.id}` })).statusCode, 200);
    const gone = await w.call(t.token, { method: 'GET', url: '/api/v1/audit' });
    assert.equal(gone.statusCode, 401);
    assert.equal(gone.json().code, 'CORDON_ERR_MANAGER_TOKEN_INVALID');
  } finally {
    await w.close();
  }
});

test('sign-in brute force is throttled: locked after 5 failures for the name and address, other addresses still sign in', async () => {
  const w = await startWorld({
    managerConfig: { login: { maxFailures: 5, windowS: 60, lockoutS: 60, perIpPerMinute: 20 } },
  });
  try {
    const codes: number[] = [];
    for (let i = 0; i < 8; i++)
      codes.push((await login(w, 'root', `guess number ${i} wrong`, '198.51.100.7')).statusCode);
    assert.deepEqual(codes, [401, 401, 401, 401, 401, 429, 429, 429]);
    // even the right password waits out the lockout from that address
    const locked = await login(w, 'root', PASSWORD, '198.51.100.7');
    assert.equal(locked.statusCode, 429);
    assert.equal(locked.json().code, 'CORDON_ERR_MANAGER_LOGIN_LOCKED');
    assert.ok(Number(locked.headers['retry-after']) > 0);
    assert.equal((await login(w, 'root', PASSWORD, '198.51.100.8')).statusCode, 200);
    // a spray over many names from one address is locked too
    const spray: number[] = [];
    for (let i = 0; i < 22; i++)
      spray.push((await login(w, `user${i}`, 'wrong password guess', '198.51.100.9')).statusCode);
    assert.equal(spray.filter((c) => c === 429).length, 2);
  } finally {
    await w.close();
  }
});

test('passwords and tokens never appear in the logs', async () => {
  const w = await startWorld();
  try {
    const secretPw = 'Tr0ub4dor&3-never-log-this';
    const admin = await w.userWithToken('admin', { name: 'root' });
    await w.call(admin.token, {
      method: 'POST',
      url: '/api/v1/users',
      payload: { name: 'pat', role: 'analyst', password: secretPw },
    });
    await login(w, 'pat', 'wrong-but-secret-guess-123');
    const ok = await login(w, 'pat', secretPw);
    const sid = ok.cookies.find((c) => c.name === 'cordon_session')!.value;
    const t = await w.call(admin.token, { method: 'POST', url: '/api/v1/tokens', payload: { name: 'x' } });
    const token = t.json<{ token: string }>().token;
    await w.call(token, { method: 'GET', url: '/api/v1/nothing-here' });
    await w.call(`${token}x`, { method: 'GET', url: '/api/v1/users' });
    await w.call(null, { method: 'GET', url: '/api/v1/users', headers: { cookie: `cordon_session=${sid}` } });
    await w.manager.stop();
    const all = w.logs.join('');
    assert.ok(w.logs.length > 0, 'logs were captured');
    for (const secret of [secretPw, 'wrong-but-secret-guess-123', PASSWORD, token, token.slice(17), admin.token, sid])
      assert.ok(!all.includes(secret), `a secret leaked into the logs: ${secret.slice(0, 6)}…`);
  } finally {
    await w.close();
  }
});

test('without a token every route but sign-in and health answers 401; openapi.json is public', async () => {
  const w = await startWorld({ sink: false });
  try {
    const doc = await w.app.inject({ method: 'GET', url: '/api/v1/openapi.json' });
    assert.equal(doc.statusCode, 200);
    const paths = doc.json<{ paths: Record<string, Record<string, { 'x-cordon-permission': string }>> }>().paths;
    let n = 0;
    for (const [path, ops] of Object.entries(paths)) {
      for (const [method, op] of Object.entries(ops)) {
        const url = path.replace(/\{[^}]+\}/g, 'x');
        const r = await w.app.inject({
          method: method.toUpperCase() as 'GET',
          url,
          payload: method === 'get' ? undefined : {},
        });
        n++;
        if (op['x-cordon-permission'] === 'public') assert.notEqual(r.statusCode, 401, `${method} ${path}`);
        else {
          assert.equal(r.statusCode, 401, `${method} ${path}: ${r.body}`);
          assert.equal(r.json().code, 'CORDON_ERR_MANAGER_UNAUTHENTICATED');
        }
      }
    }
    assert.ok(n > 30, `${n} routes`);
    assert.ok(!/passwordHash|"hash"/.test(doc.body), 'the API document names no stored secret');
  } finally {
    await w.close();
  }
});

test('alerts: newest first, pages by cursor without gaps or repeats, time and VM filters, acknowledgement shown', async () => {
  const w = await startWorld({ sink: false });
  try {
    const t = (min: number) => `2025-03-01 10:${String(min).padStart(2, '0')}:00.000000`;
    for (let i = 0; i < 7; i++) await putAlertRow(w, `a${i}`, i % 2 ? 'web-1' : 'db-1', { ts: t(i) });
    const analyst = await w.userWithToken('analyst');
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const r = await w.call(analyst.token, {
        method: 'GET',
        url: `/api/v1/alerts?limit=3${cursor ? `&cursor=${cursor}` : ''}`,
      });
      assert.equal(r.statusCode, 200, r.body);
      const page = r.json<{ items: Array<{ alert_id: string; ts: string }>; next: string | null }>();
      seen.push(...page.items.map((a) => a.alert_id));
      cursor = page.next;
    } while (cursor);
    assert.deepEqual(seen, ['a6', 'a5', 'a4', 'a3', 'a2', 'a1', 'a0']);
    const since = await w.call(analyst.token, {
      method: 'GET',
      url: '/api/v1/alerts?since=2025-03-01T10:02:00Z&until=2025-03-01T10:05:00Z&vm=web-1',
    });
    assert.deepEqual(
      since.json<{ items: Array<{ alert_id: string; ts: string }> }>().items.map((a) => [a.alert_id, a.ts]),
      [['a3', '2025-03-01T10:03:00.000000Z']],
    );
    const root = await w.userWithToken('admin', { name: 'root' });
    assert.equal(
      (await w.call(root.token, { method: 'POST', url: '/api/v1/alerts/a3/ack', payload: { note: 'seen' } }))
        .statusCode,
      200,
    );
    const acked = await w.call(analyst.token, { method: 'GET', url: '/api/v1/alerts?acked=true' });
    assert.deepEqual(
      acked.json<{ items: Array<{ alert_id: string; acked_by: string }> }>().items.map((a) => [a.alert_id, a.acked_by]),
      [['a3', 'root']],
    );
    assert.equal(
      (await w.call(analyst.token, { method: 'GET', url: '/api/v1/alerts?cursor=bm9wZQ' })).json().code,
      'CORDON_ERR_MANAGER_BAD_REQUEST',
    );
  } finally {
    await w.close();
  }
});

test("an alert's blocks: the decision and its enforcer's reports (block_status), in order, as one history", async () => {
  const w = await startWorld();
  try {
    await putVm(w, 'web-1', 'hv1');
    await putAlertRow(w, 'alert-h', 'web-1');
    const row = { enforcer: 'watchdog:hv1', target: '203.0.113.66', expires: '2025-03-01 11:00:00.000000' };
    await w.store.insert(
      'blocks',
      [
        {
          ...row,
          ts: '2025-03-01 10:00:00.000000',
          block_id: 'b-h',
          target_kind: 'ip',
          scope: 'web-1',
          action: 'drop',
          ttl_ms: 3_600_000,
          created: '2025-03-01 10:00:00.000000',
          reason_alert: 'alert-h',
          status: 'requested',
        },
      ],
      { batchId: 'test-blocks-h' },
    );
    await w.store.insert(
      'block_status',
      [
        { ...row, ts: '2025-03-01 10:00:01.000000', block_id: 'b-h', status: 'failed', error: 'CORDON_ERR_BLOCK_RATE' },
        { ...row, ts: '2025-03-01 10:00:02.000000', block_id: 'b-h', status: 'applied', error: '' },
        // another decision's report is not this alert's
        { ...row, ts: '2025-03-01 10:00:03.000000', block_id: 'b-other', status: 'applied', error: '' },
      ],
      { batchId: 'test-block-status-h' },
    );
    const analyst = await w.userWithToken('analyst', { name: 'ana' });
    const r = await w.call(analyst.token, { method: 'GET', url: '/api/v1/alerts/alert-h' });
    assert.equal(r.statusCode, 200, r.body);
    assert.deepEqual(
      r
        .json<{ blocks: Array<{ status: string; action: string; block_id: string }> }>()
        .blocks.map((b) => [b.block_id, b.action, b.status]),
      [
        ['b-h', 'drop', 'requested'],
        ['b-h', 'drop', 'failed'],
        ['b-h', 'drop', 'applied'],
      ],
    );
  } finally {
    await w.close();
  }
});

test(
  'TLS: served over HTTPS with the configured certificate, session cookies Secure; plain HTTP beyond loopback is refused',
  { skip: existsSync('/usr/bin/openssl') ? false : 'openssl is not installed' },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-tls-'));
    try {
      execFileSync(
        '/usr/bin/openssl',
        [
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-days',
          '1',
          '-subj',
          '/CN=localhost',
          '-keyout',
          join(dir, 'key.pem'),
          '-out',
          join(dir, 'cert.pem'),
        ],
        { stdio: 'ignore' },
      );
      const w = await startWorld({
        sink: false,
        managerConfig: { tls: { certFile: join(dir, 'cert.pem'), keyFile: join(dir, 'key.pem') } },
      });
      try {
        assert.match(w.manager.url, /^https:\/\/127\.0\.0\.1:\d+$/);
        const ok = await login(w, 'root', PASSWORD);
        const session = ok.cookies.find((c) => c.name === 'cordon_session')!;
        assert.equal(session.secure, true);
        // a real TLS handshake with the configured certificate
        const status = await new Promise<number>((resolve, reject) => {
          const req = httpsRequest(
            `${w.manager.url}/api/v1/health`,
            { ca: readFileSync(join(dir, 'cert.pem')), servername: 'localhost', checkServerIdentity: () => undefined },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          req.end();
        });
        assert.equal(status, 200);
      } finally {
        await w.close();
      }
      await assert.rejects(
        startWorld({ sink: false, managerConfig: { listen: '0.0.0.0:0' } }),
        /CORDON_ERR_MANAGER_PLAIN_HTTP|plain HTTP is only allowed on loopback/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test("the inventory shows each VM's newest alert of the last 30 days", async () => {
  const w = await startWorld({ sink: false });
  try {
    await putVm(w, 'web-1', 'hv1');
    await putVm(w, 'db-1', 'hv1');
    const ago = (min: number) => new Date(Date.now() - min * 60_000).toISOString().replace('T', ' ').replace('Z', '');
    await putAlertRow(w, 'old', 'web-1', { ts: ago(30), signature: 'ET older' });
    await putAlertRow(w, 'new', 'web-1', { ts: ago(1), signature: 'ET newest' });
    await putAlertRow(w, 'stale', 'db-1', { ts: ago(31 * 24 * 60), signature: 'ET two months ago' });
    const analyst = await w.userWithToken('analyst');
    type Vm = { id: string; last_alert: string | null; last_alert_signature: string | null };
    const vms = await waitFor('the newest alert of web-1 in the inventory', async () => {
      const items = (await w.call(analyst.token, { method: 'GET', url: '/api/v1/inventory/vms' })).json<{
        items: Vm[];
      }>().items;
      return items.find((v) => v.id === 'web-1')?.last_alert_signature ? items : null;
    });
    const web = vms.find((v) => v.id === 'web-1')!;
    assert.equal(web.last_alert_signature, 'ET newest');
    assert.match(web.last_alert ?? '', /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.ok(
      Math.abs(Date.parse(web.last_alert!) - (Date.now() - 60_000)) < 30_000,
      `the newer alert's time: ${web.last_alert}`,
    );
    assert.equal(vms.find((v) => v.id === 'db-1')!.last_alert, null, 'an alert older than 30 days is not the newest');
  } finally {
    await w.close();
  }
});
