/**
 * Every route of the OpenAPI document × every role: built-in roles, a custom role, no token,
 * an expired token and a token scoped to another permission. A role that holds the route's
 * permission gets past authorization (whatever the dummy request then earns: 400, 404, …);
 * one that does not gets 403 CORDON_ERR_MANAGER_FORBIDDEN; no token 401 everywhere but
 * sign-in and health; an expired token 401 CORDON_ERR_MANAGER_TOKEN_EXPIRED.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BUILTIN_ROLES, PERMISSIONS, type Permission } from '../src/index.js';
import { startWorld } from './world.js';

test('route × role: every route of the OpenAPI document answers every role as its declared permission says', async () => {
  const w = await startWorld({ sink: false });
  try {
    const spec = (await w.app.inject({ method: 'GET', url: '/api/v1/openapi.json' })).json<{
      paths: Record<string, Record<string, { 'x-cordon-permission'?: string }>>;
    }>();
    const routes = Object.entries(spec.paths).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({
        path,
        method: method.toUpperCase(),
        access: op['x-cordon-permission'],
      })),
    );
    assert.ok(routes.length > 30);
    for (const r of routes) assert.ok(r.access, `${r.method} ${r.path} declares no permission`);

    const root = await w.userWithToken('admin', { name: 'root' });
    const custom = await w.call(root.token, {
      method: 'PUT',
      url: '/api/v1/roles/reader',
      payload: { description: 'alerts and blocks', permissions: ['alerts:read', 'blocks:read'] },
    });
    assert.equal(custom.statusCode, 200, custom.body);
    const roles: Record<string, readonly Permission[]> = {
      ...Object.fromEntries(Object.entries(BUILTIN_ROLES).map(([k, v]) => [k, v.permissions])),
      reader: ['alerts:read', 'blocks:read'],
    };
    const tokens: Record<string, string> = {};
    for (const role of Object.keys(roles)) tokens[role] = (await w.userWithToken(role, { name: `u-${role}` })).token;
    const expiring = await w.userWithToken('admin', { name: 'u-expiring', ttlS: 60 });
    // tokens of an admin, each scoped to one permission
    const scoped: Record<string, string> = {};
    for (const p of PERMISSIONS)
      scoped[p] = (
        await w.call(root.token, {
          method: 'POST',
          url: '/api/v1/tokens',
          payload: { name: `only ${p}`, permissions: [p] },
        })
      ).json<{ token: string }>().token;

    const call = (token: string | null, r: { path: string; method: string }) =>
      w.call(token, {
        method: r.method as 'GET',
        url: r.path.replace(/\{[^}]+\}/g, 'no-such-thing'),
        ...(r.method === 'GET' ? {} : { payload: {} }),
      });
    const checked: string[] = [];
    for (const r of routes) {
      const label = `${r.method} ${r.path}`;
      // no token
      const anon = await call(null, r);
      if (r.access === 'public') assert.notEqual(anon.statusCode, 401, label);
      else
        assert.equal(anon.json().code, 'CORDON_ERR_MANAGER_UNAUTHENTICATED', `${label} without a token: ${anon.body}`);
      if (r.access === 'public') {
        checked.push(label);
        continue;
      }
      for (const [role, perms] of Object.entries(roles)) {
        const res = await call(tokens[role]!, r);
        const allowed = r.access === 'authenticated' || perms.includes(r.access as Permission);
        if (allowed)
          assert.ok(
            res.statusCode !== 401 && res.statusCode !== 403,
            `${label} as ${role}: expected to pass authorization, got ${res.statusCode} ${res.body}`,
          );
        else {
          assert.equal(res.statusCode, 403, `${label} as ${role}: ${res.body}`);
          assert.equal(res.json().code, 'CORDON_ERR_MANAGER_FORBIDDEN', label);
        }
      }
      // a token scoped to another permission
      const other = PERMISSIONS.find((p) => p !== r.access)!;
      const res = await call(scoped[other]!, r);
      if (r.access === 'authenticated')
        assert.ok(
          res.statusCode !== 401 && res.statusCode !== 403,
          `${label} with a token for ${other}: ${res.statusCode}`,
        );
      else
        assert.equal(
          res.json().code,
          'CORDON_ERR_MANAGER_FORBIDDEN',
          `${label} with a token for ${other}: ${res.body}`,
        );
      // and one scoped to exactly the route's permission passes
      if (r.access !== 'authenticated') {
        const own = await call(scoped[r.access as Permission]!, r);
        assert.ok(
          own.statusCode !== 401 && own.statusCode !== 403,
          `${label} with a token for ${r.access}: ${own.statusCode} ${own.body}`,
        );
      }
      checked.push(label);
    }
    // an expired token, on every route
    w.skew.ms = 61_000;
    for (const r of routes.filter((x) => x.access !== 'public')) {
      const res = await call(expiring.token, r);
      assert.equal(res.json().code, 'CORDON_ERR_MANAGER_TOKEN_EXPIRED', `${r.method} ${r.path} with an expired token`);
    }
    assert.equal(checked.length, routes.length, 'every route of the document was checked');
    console.log(
      `route × role: ${routes.length} routes × ${Object.keys(roles).length} roles + no token + expired + other scope + own scope: all as declared`,
    );
  } finally {
    await w.close();
  }
});
