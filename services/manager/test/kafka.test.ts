/**
 * Two managers on a real Kafka broker, as `cordon run manager` twice: a write on one is
 * visible on the other within a second (users, groups, sessions, tokens); one dies and
 * nothing is lost — the survivor has every acknowledged write, and a new instance reads the
 * whole state back from the policy topic. Uses the shared topics without deleting them
 * (other suites may be running on the broker): names are unique to this run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKafkaBus, type Bus } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs } from '@cordon/schemas';
import { runStage, type RunningStage } from '@cordon/stage';
import { kafkaBrokers } from '@cordon/testkit';
import { addUser, managerStage, type RunningManager } from '../src/index.js';

const PASSWORD = 'correct horse battery staple';
const ctx = createContext({ log: silentLogger });

test('two managers on Kafka: a write on one is seen on the other within 1 s; one dies and nothing is lost', async () => {
  const brokers = kafkaBrokers();
  const dir = mkdtempSync(join(tmpdir(), 'cordon-manager-kafka-'));
  const secretFile = join(dir, 'manager.key');
  writeFileSync(secretFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  const run = randomBytes(4).toString('hex');
  const buses: Bus[] = [];
  const managers: Array<RunningStage<unknown, RunningManager>> = [];
  const start = async (): Promise<RunningStage<unknown, RunningManager>> => {
    const bus = createKafkaBus({ brokers, clientId: `manager-test-${run}-${buses.length}`, ctx });
    buses.push(bus);
    const m = await runStage(managerStage, {
      bus,
      ctx,
      config: { listen: '127.0.0.1:0', scryptLogN: 10, secretFile },
      env: { dataDir: dir },
    });
    managers.push(m);
    return m;
  };
  try {
    const admin = createKafkaBus({ brokers, ctx });
    buses.push(admin);
    await admin.admin.ensureTopics(allTopicSpecs());
    const root = `root-${run}`;
    await addUser(
      { bus: admin, ctx, dataDir: dir, secretFile },
      { name: root, role: 'admin', password: PASSWORD, by: 'cli:test', scryptLogN: 10 },
    );
    const a = await start();
    const b = await start();
    /** Time from `t0` (when the write was sent) until the other instance has it. */
    const seenBy = async (
      m: RunningManager,
      cond: () => boolean,
      what: string,
      t0 = performance.now(),
    ): Promise<number> => {
      while (!cond()) {
        if (performance.now() - t0 > 5000) throw new Error(`${what} not seen within 5 s`);
        await new Promise((r) => setTimeout(r, 5));
      }
      return performance.now() - t0;
    };
    await seenBy(a, () => a.state.users.has(root), 'root on A');
    await seenBy(b, () => b.state.users.has(root), 'root on B');

    // a session made on A works on B; a token made on A works on B
    const login = await a.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { user: root, password: PASSWORD },
    });
    assert.equal(login.statusCode, 200, login.body);
    const sid = login.cookies.find((c) => c.name === 'cordon_session')!.value;
    const csrf = login.json<{ csrf: string }>().csrf;
    const tokenSent = performance.now();
    const t = await a.app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      cookies: { cordon_session: sid },
      headers: { 'x-cordon-csrf': csrf },
      payload: { name: 'two-instances' },
    });
    const token = t.json<{ id: string; token: string }>();
    const tokenLatency = await seenBy(b, () => b.state.tokens.has(token.id), 'the token on B', tokenSent);
    assert.equal(
      (await b.app.inject({ method: 'GET', url: '/api/v1/auth/me', cookies: { cordon_session: sid } })).json().user,
      root,
    );
    assert.equal(
      (await b.app.inject({ method: 'GET', url: '/api/v1/users', headers: { authorization: `Bearer ${token.token}` } }))
        .statusCode,
      200,
    );

    // writes on A, read on B: every one within a second
    const latencies: number[] = [tokenLatency];
    for (let i = 0; i < 20; i++) {
      const g = `g-${run}-${i}`;
      const sent = performance.now();
      const w = await a.app.inject({
        method: 'PUT',
        url: `/api/v1/groups/${g}`,
        headers: { authorization: `Bearer ${token.token}` },
        payload: { match: { names: [`web-${i}-*`] } },
      });
      assert.equal(w.statusCode, 200, w.body);
      latencies.push(await seenBy(b, () => b.state.groups.has(g), `group ${g} on B`, sent));
    }
    // and the other way round
    const u = `vera-${run}`;
    const userSent = performance.now();
    assert.equal(
      (
        await b.app.inject({
          method: 'POST',
          url: '/api/v1/users',
          headers: { authorization: `Bearer ${token.token}` },
          payload: { name: u, role: 'operator', password: PASSWORD },
        })
      ).statusCode,
      201,
    );
    latencies.push(await seenBy(a, () => a.state.users.has(u), 'the user on A', userSent));
    latencies.sort((x, y) => x - y);
    const max = latencies[latencies.length - 1]!;
    console.log(
      `two managers on Kafka: ${latencies.length} writes, from the request to the other instance having it: median ${latencies[latencies.length >> 1]!.toFixed(0)} ms, max ${max.toFixed(0)} ms`,
    );
    assert.ok(max < 1000, `a write took ${max.toFixed(0)} ms to reach the other instance`);

    // A dies: B has everything, and answers for it; a new instance reads it all back
    await a.stop();
    assert.equal(
      (
        await b.app.inject({
          method: 'GET',
          url: `/api/v1/users/${u}`,
          headers: { authorization: `Bearer ${token.token}` },
        })
      ).statusCode,
      200,
    );
    assert.equal(
      (await b.app.inject({ method: 'GET', url: '/api/v1/auth/me', cookies: { cordon_session: sid } })).statusCode,
      200,
    );
    const c = await start();
    for (let i = 0; i < 20; i++) assert.ok(c.state.groups.has(`g-${run}-${i}`), `group ${i} on the new instance`);
    assert.ok(c.state.users.has(u) && c.state.tokens.has(token.id) && c.state.sessions.size > 0);
    assert.equal(
      (
        await c.app.inject({
          method: 'GET',
          url: '/api/v1/auth/me',
          headers: { authorization: `Bearer ${token.token}` },
        })
      ).json().user,
      root,
    );
    // clean up what this run made on the shared topics
    for (let i = 0; i < 20; i++)
      await c.app.inject({
        method: 'DELETE',
        url: `/api/v1/groups/g-${run}-${i}`,
        headers: { authorization: `Bearer ${token.token}` },
      });
    await c.app.inject({
      method: 'DELETE',
      url: `/api/v1/users/${u}`,
      headers: { authorization: `Bearer ${token.token}` },
    });
  } finally {
    for (const m of managers) await m.stop().catch(() => undefined);
    for (const bus of buses) await bus.close().catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
  }
});
