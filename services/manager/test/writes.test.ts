/**
 * Every write route of the API, called once each with a request that succeeds: each call
 * leaves exactly one row in ClickHouse's `audit` table (landed by the sink), with its actor,
 * role, source address, object, result and before/after. Also: policy inheritance (base →
 * group → VM) published as the same records `cordon policy apply` writes, with each value's
 * origin; VM-group scoping; and that the manager's ClickHouse session cannot change the table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readTable } from '@cordon/bus';
import { blockActionFor, PolicyView } from '@cordon/policy';
import { TOPICS } from '@cordon/schemas';
import { waitFor } from '@cordon/testkit';
import { PASSWORD, putAgent, putAlertRow, putBlock, putVm, startWorld } from './world.js';

test('every write route, once each: one audit row per call, with actor, role, source, object and before/after', async () => {
  const w = await startWorld();
  try {
    await putVm(w, 'web-1', 'hv1', 'c1');
    await putVm(w, 'db-1', 'hv2', 'c2');
    await putBlock(w, 'watchdog:hv1', '203.0.113.66', 'web-1');
    await putAgent(w, 'agt-1', 'db-1');
    await putAlertRow(w, 'alert-1', 'web-1');
    const root = await w.userWithToken('admin', { name: 'root' });
    const spec = (await w.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json<{
      paths: Record<string, Record<string, { 'x-cordon-audit-action'?: string }>>;
    }>();
    const writeActions = new Set(
      Object.values(spec.paths).flatMap((ops) =>
        Object.values(ops)
          .map((o) => o['x-cordon-audit-action'])
          .filter(Boolean),
      ),
    );
    await waitFor(
      'the views',
      () =>
        w.manager.views.blocks.size === 1 && w.manager.views.sensors.size === 1 && w.manager.views.inventory.size === 4,
    );
    const t0 = new Date().toISOString().replace('T', ' ').replace('Z', '');

    const calls: Array<{
      action: string;
      method: string;
      url: string;
      payload?: unknown;
      status: number;
      session?: boolean;
    }> = [
      {
        action: 'user.create',
        method: 'POST',
        url: '/api/v1/users',
        payload: { name: 'vera', role: 'operator', password: PASSWORD },
        status: 201,
      },
      {
        action: 'user.update',
        method: 'PATCH',
        url: '/api/v1/users/vera',
        payload: { role: 'analyst', password: `${PASSWORD}!` },
        status: 200,
      },
      {
        action: 'role.put',
        method: 'PUT',
        url: '/api/v1/roles/night-shift',
        payload: { permissions: ['blocks:read', 'blocks:lift'] },
        status: 200,
      },
      {
        action: 'group.put',
        method: 'PUT',
        url: '/api/v1/groups/web',
        payload: { match: { clusters: ['c1'] } },
        status: 200,
      },
      {
        action: 'policy.put',
        method: 'PUT',
        url: '/api/v1/policies/default',
        payload: {
          mode: 'detect',
          rules: { '2010935': 'prevent' },
          groups: { web: { mode: 'prevent' } },
          vms: { 'web-1': { rules: { '2010935': 'detect' } } },
        },
        status: 200,
      },
      {
        action: 'policy.override',
        method: 'PUT',
        url: '/api/v1/policies/default/overrides',
        payload: { level: 'group', target: 'web', sid: '2200', value: 'prevent' },
        status: 200,
      },
      {
        action: 'alert.ack',
        method: 'POST',
        url: '/api/v1/alerts/alert-1/ack',
        payload: { note: 'known scanner' },
        status: 200,
      },
      {
        action: 'block.lift',
        method: 'POST',
        url: '/api/v1/blocks/lift',
        payload: { target: '203.0.113.66', reason: 'pentest' },
        status: 200,
      },
      {
        action: 'agent.enroll-token',
        method: 'POST',
        url: '/api/v1/agents/enroll-token',
        payload: { vm: 'web-1' },
        status: 201,
      },
      {
        action: 'agent.command',
        method: 'POST',
        url: '/api/v1/agents/agt-1/commands',
        payload: { kind: 'rescan' },
        status: 202,
      },
      {
        action: 'agent.revoke',
        method: 'POST',
        url: '/api/v1/agents/agt-1/revoke',
        payload: { reason: 'decommissioned' },
        status: 200,
      },
      {
        action: 'target.put',
        method: 'PUT',
        url: '/api/v1/targets/siem',
        payload: { kind: 'syslog', url: 'tcp://siem.example:514', format: 'rfc5424' },
        status: 200,
      },
      {
        action: 'token.create',
        method: 'POST',
        url: '/api/v1/tokens',
        payload: { name: 'ci', permissions: ['alerts:read'], ttlS: 3600 },
        status: 201,
      },
    ];
    let tokenId = '';
    for (const c of calls) {
      const r = await w.call(root.token, {
        method: c.method as 'POST',
        url: c.url,
        payload: c.payload as Record<string, unknown>,
      });
      assert.equal(r.statusCode, c.status, `${c.action}: ${r.body}`);
      if (c.action === 'token.create') tokenId = r.json<{ id: string }>().id;
    }
    const more: typeof calls = [
      { action: 'token.revoke', method: 'DELETE', url: `/api/v1/tokens/${tokenId}`, status: 200 },
      { action: 'target.delete', method: 'DELETE', url: '/api/v1/targets/siem', status: 200 },
      { action: 'user.delete', method: 'DELETE', url: '/api/v1/users/vera', status: 200 },
      { action: 'role.delete', method: 'DELETE', url: '/api/v1/roles/night-shift', status: 200 },
    ];
    for (const c of more) {
      const r = await w.call(root.token, { method: c.method as 'DELETE', url: c.url });
      assert.equal(r.statusCode, c.status, `${c.action}: ${r.body}`);
    }
    // group.delete needs no policy layer naming it to matter; sign-in and sign-out through a session
    assert.equal((await w.call(root.token, { method: 'DELETE', url: '/api/v1/groups/web' })).statusCode, 200);
    const login = await w.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { user: 'root', password: PASSWORD },
      remoteAddress: '192.0.2.77',
    });
    const sid = login.cookies.find((c) => c.name === 'cordon_session')!.value;
    assert.equal(
      (
        await w.app.inject({
          method: 'POST',
          url: '/api/v1/auth/logout',
          cookies: { cordon_session: sid },
          headers: { 'x-cordon-csrf': login.json<{ csrf: string }>().csrf },
        })
      ).statusCode,
      200,
    );
    const expected = [...calls, ...more].map((c) => c.action).concat(['group.delete', 'auth.login', 'auth.logout']);
    assert.deepEqual(
      [...writeActions].sort(),
      [...new Set(expected)].sort(),
      'every write route of the API document was called',
    );

    const rows = await waitFor('every audit row', async () => {
      const r = await w.store.query<Record<string, string | null>>(
        `SELECT actor, role, auth, action, object, before, after, result, source_ip FROM audit WHERE ts >= toDateTime64({t0:String}, 6, 'UTC') AND actor = 'root' ORDER BY ts`,
        { t0 },
      );
      return r.length >= expected.length ? r : null;
    });
    assert.deepEqual(
      rows.map((r) => r.action),
      expected,
      'one row per call, in order',
    );
    for (const r of rows) {
      assert.equal(r.result, 'ok', `${r.action}`);
      assert.equal(r.actor, 'root', `${r.action}`);
      assert.ok(r.before !== null || r.after !== null, `${r.action} has before/after`);
      assert.ok(r.object, `${r.action} names its object`);
      assert.ok(r.source_ip, `${r.action} has its source address`);
      assert.ok(!/scrypt\$|cdn_/.test(`${r.before}${r.after}`), `${r.action} holds no secret`);
    }
    const byAction = Object.fromEntries(rows.map((r) => [r.action, r]));
    assert.equal(byAction['user.update']!.object, 'user:vera');
    assert.deepEqual(JSON.parse(byAction['user.update']!.before!).role, 'operator');
    assert.deepEqual(JSON.parse(byAction['user.update']!.after!).role, 'analyst');
    assert.equal(byAction['auth.login']!.source_ip, '192.0.2.77');
    assert.equal(byAction['block.lift']!.role, 'admin');
    assert.match(byAction['block.lift']!.auth!, /^token:/);
    assert.equal(byAction['auth.login']!.auth, 'password');
  } finally {
    await w.close();
  }
});

test('policy inheritance: base → group → VM, published as the records stages read, each value shown with its origin', async () => {
  const w = await startWorld({ sink: false });
  try {
    await putVm(w, 'web-1', 'hv1', 'c1');
    await putVm(w, 'web-2', 'hv1', 'c1');
    await putVm(w, 'db-1', 'hv2', 'c2');
    const root = await w.userWithToken('admin', { name: 'root' });
    await waitFor('inventory', () => w.manager.views.inventory.size === 5);
    assert.equal(
      (await w.call(root.token, { method: 'PUT', url: '/api/v1/groups/web', payload: { match: { names: ['web-*'] } } }))
        .statusCode,
      200,
    );
    const put = await w.call(root.token, {
      method: 'PUT',
      url: '/api/v1/policies/default',
      payload: {
        mode: 'detect',
        rules: { '1000': 'prevent' },
        groups: { web: { mode: 'prevent', rules: { '2000': 'detect' } } },
        vms: { 'web-2': { rules: { '2000': 'prevent' } } },
        ruleFiles: [
          {
            name: 'local.rules',
            text: 'alert http any any -> any any (msg:"x"; content:"/cgi-bin/"; sid:2000; rev:1;)\n',
          },
        ],
      },
    });
    assert.equal(put.statusCode, 200, put.body);
    // what the topic holds is what every stage reads: a policy record and its ruleset
    const view = new PolicyView();
    for (const r of (await readTable(w.bus, TOPICS.policy)).values()) view.apply(r.key, r.value);
    const doc = view.policies.get('default')!.doc;
    assert.deepEqual(
      doc.rulesets.map((r) => r.name),
      ['local.rules'],
    );
    assert.equal(blockActionFor(doc, '2000', 'web-1', 'alert'), null, 'web-1: the group says detect for 2000');
    assert.equal(blockActionFor(doc, '2000', 'web-2', 'alert'), 'drop', 'web-2: its own setting wins');
    assert.equal(blockActionFor(doc, '3000', 'web-1', 'alert'), 'drop', 'web-1: the group mode is prevent');
    assert.equal(blockActionFor(doc, '3000', 'db-1', 'alert'), null, 'db-1: the base mode, detect');
    assert.equal(blockActionFor(doc, '1000', 'db-1', 'alert'), 'drop', 'db-1: the base rule');
    const res = (await w.call(root.token, { method: 'GET', url: '/api/v1/policies/default/resolved?vm=web-2' })).json<{
      mode: { value: string; from: string };
      rules: Array<{ sid: string; value: string; from: string }>;
      groups: string[];
    }>();
    assert.deepEqual(res.groups, ['web']);
    assert.deepEqual(res.mode, { value: 'prevent', from: 'group:web' });
    assert.deepEqual(
      res.rules.find((r) => r.sid === '2000'),
      {
        sid: '2000',
        value: 'prevent',
        from: 'vm:web-2',
        overrides: [
          { level: 'group:web', value: 'detect' },
          { level: 'vm:web-2', value: 'prevent' },
        ],
      },
    );
    assert.equal(
      res.rules.find((r) => r.sid === '1000')!.from,
      'group:web',
      'a VM level mode beats a base rule, as the responder decides',
    );
    // a VM that joins the group later gets the group's settings, written by the manager and audited
    await putVm(w, 'web-3', 'hv1', 'c1');
    await waitFor(
      'web-3 in the compiled policy',
      () => w.manager.state.policy.policies.get('default')?.doc.vms['web-3']?.mode === 'prevent',
      10_000,
    );
    assert.equal(blockActionFor(w.manager.state.policy.policies.get('default')!.doc, '3000', 'web-3', 'alert'), 'drop');
    // one override at a time, at any level
    const o = await w.call(root.token, {
      method: 'PUT',
      url: '/api/v1/policies/default/overrides',
      payload: { level: 'base', sid: '4000', value: 'prevent' },
    });
    assert.equal(o.statusCode, 200, o.body);
    assert.equal(
      view.policies.get('default')!.version + 2,
      (await w.call(root.token, { method: 'GET', url: '/api/v1/policies/default' })).json<{ version: number }>()
        .version,
    );
  } finally {
    await w.close();
  }
});

test("a role scoped to a VM group sees and lifts only that group's VMs and blocks", async () => {
  const w = await startWorld({ sink: false });
  try {
    await putVm(w, 'web-1', 'hv1', 'c1');
    await putVm(w, 'db-1', 'hv2', 'c2');
    await putBlock(w, 'watchdog:hv1', '203.0.113.66', 'web-1');
    await putBlock(w, 'watchdog:hv2', '203.0.113.77', 'db-1');
    const root = await w.userWithToken('admin', { name: 'root' });
    await w.call(root.token, { method: 'PUT', url: '/api/v1/groups/c1', payload: { match: { clusters: ['c1'] } } });
    const op = await w.userWithToken('operator', { name: 'web-op', groups: ['c1'] });
    await waitFor('views', () => w.manager.views.blocks.size === 2 && w.manager.views.inventory.size === 4);
    const vms = (await w.call(op.token, { method: 'GET', url: '/api/v1/inventory/vms' })).json<{
      items: Array<{ id: string }>;
    }>();
    assert.deepEqual(
      vms.items.map((v) => v.id),
      ['web-1'],
    );
    assert.equal(
      (await w.call(op.token, { method: 'GET', url: '/api/v1/inventory/vms/db-1' })).json().code,
      'CORDON_ERR_MANAGER_OUT_OF_SCOPE',
    );
    assert.deepEqual(
      (await w.call(op.token, { method: 'GET', url: '/api/v1/blocks' }))
        .json<Array<{ target: string }>>()
        .map((b) => b.target),
      ['203.0.113.66'],
    );
    const refused = await w.call(op.token, {
      method: 'POST',
      url: '/api/v1/blocks/lift',
      payload: { target: '203.0.113.77', reason: 'x' },
    });
    assert.equal(refused.statusCode, 403);
    assert.equal(refused.json().code, 'CORDON_ERR_MANAGER_OUT_OF_SCOPE');
    assert.equal(
      (
        await w.call(op.token, {
          method: 'POST',
          url: '/api/v1/blocks/lift',
          payload: { target: '203.0.113.66', reason: 'x' },
        })
      ).statusCode,
      200,
    );
    // unscoped, the whole list (served from its cached serialization), twice alike
    const all1 = await w.call(root.token, { method: 'GET', url: '/api/v1/inventory/vms' });
    const all2 = await w.call(root.token, { method: 'GET', url: '/api/v1/inventory/vms' });
    assert.equal(all1.body, all2.body);
    assert.match(all1.headers['content-type'] as string, /^application\/json/);
    assert.deepEqual(
      all1.json<{ total: number; items: Array<{ id: string; groups: string[] }> }>().items.map((v) => [v.id, v.groups]),
      [
        ['db-1', []],
        ['web-1', ['c1']],
      ],
    );
    const tree = (await w.call(root.token, { method: 'GET', url: '/api/v1/inventory/tree' })).json<
      Array<{ clusters: Array<{ cluster: string; hosts: Array<{ vms: unknown[] }> }> }>
    >();
    assert.deepEqual(tree[0]!.clusters.map((c) => c.cluster).sort(), ['c1', 'c2']);
  } finally {
    await w.close();
  }
});

test("the manager's ClickHouse session can read the audit table but not change it", async () => {
  const w = await startWorld({ sink: false });
  try {
    // the very session the manager was handed (StageEnv.readStore)
    const s = w.readStore;
    assert.deepEqual(await s.query('SELECT count() AS n FROM audit'), [{ n: '0' }]);
    for (const sql of [
      "INSERT INTO audit (audit_id, ts, actor, action, object, result) VALUES ('x', now64(6), 'me', 'forge', 'x', 'ok')",
      'ALTER TABLE audit DELETE WHERE 1',
      "ALTER TABLE audit UPDATE actor = 'x' WHERE 1",
      'DROP TABLE audit',
      'TRUNCATE TABLE audit',
      'ALTER TABLE audit DROP COLUMN actor',
    ]) {
      await assert.rejects(s.command(sql), /readonly|READONLY|\(164\)/i, sql);
    }
  } finally {
    await w.close();
  }
});
