/**
 * A manager on a real embedded bus and embedded ClickHouse, in a temp dir, with the sink
 * landing the audit topic: what the API tests call through `inject()`. Logs are captured at
 * trace level so tests can grep them for secrets.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino } from 'pino';
import { createEmbeddedBus, type Bus } from '@cordon/bus';
import { createContext, type Context } from '@cordon/runtime';
import {
  allTopicSpecs,
  blockKey,
  codecFor,
  TOPICS,
  type AgentRecord,
  type BlockDecision,
  type InventoryRecord,
} from '@cordon/schemas';
import { runStage, type RunningStage } from '@cordon/stage';
import { createStore, type Store } from '@cordon/store';
import { stage as sinkStage } from '@cordon/sink';
import type { FastifyInstance, InjectOptions, LightMyRequestResponse } from 'fastify';
import { addUser, managerStage, type RunningManager } from '../src/index.js';

export const PASSWORD = 'correct horse battery staple';

export interface World {
  dir: string;
  bus: Bus;
  store: Store;
  readStore: Store;
  ctx: Context;
  manager: RunningStage<unknown, RunningManager>;
  sink: RunningStage | null;
  app: FastifyInstance;
  logs: string[];
  /** Added to the manager's clock (tokens and sessions expire by it). */
  skew: { ms: number };
  /** A call as a token holder (or nobody with token null). */
  call(token: string | null, o: InjectOptions): Promise<LightMyRequestResponse>;
  /** A user of `role` and an API token of theirs. */
  userWithToken(
    role: string,
    opts?: { name?: string; groups?: string[]; permissions?: string[]; ttlS?: number },
  ): Promise<{ name: string; token: string }>;
  close(): Promise<void>;
}

export async function startWorld(o: { sink?: boolean; managerConfig?: Record<string, unknown> } = {}): Promise<World> {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-manager-'));
  const logs: string[] = [];
  const sinkStream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      logs.push(chunk.toString());
      cb();
    },
  });
  const ctx = createContext({ log: pino({ level: 'trace' }, sinkStream) });
  const skew = { ms: 0 };
  const managerCtx = createContext({ log: ctx.log, metrics: ctx.metrics, clock: { now: () => Date.now() + skew.ms } });
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
  await bus.admin.ensureTopics(allTopicSpecs());
  const store = await createStore({ dataDir: join(dir, 'clickhouse'), ctx });
  const readStore = await createStore({ dataDir: join(dir, 'clickhouse'), ctx, readOnly: true });
  const env = { dataDir: dir, store: async () => store, readStore: async () => readStore };
  let manager: RunningStage<unknown, RunningManager>;
  let sink: RunningStage | null = null;
  try {
    await addUser(
      { bus, ctx, dataDir: dir },
      { name: 'root', role: 'admin', password: PASSWORD, by: 'cli:test', scryptLogN: 10 },
    );
    manager = await runStage(managerStage, {
      bus,
      ctx: managerCtx,
      config: { listen: '127.0.0.1:0', scryptLogN: 10, ...o.managerConfig },
      env,
    });
    sink =
      o.sink === false
        ? null
        : await runStage(sinkStage, { bus, ctx, config: { groupId: 'test-sink', maxBatchRecords: 500 }, env });
  } catch (err) {
    // a world that failed to start leaves nothing open behind it (chdb binds one data dir per process)
    await bus.close();
    await readStore.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const app = manager.app;
  const call = (token: string | null, req: InjectOptions) =>
    app.inject({ ...req, headers: { ...(token ? { authorization: `Bearer ${token}` } : {}), ...req.headers } });
  let rootToken: string | null = null;
  const admin = async () => {
    if (rootToken) return rootToken;
    const login = await app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { user: 'root', password: PASSWORD },
    });
    const cookie = login.cookies.find((c) => c.name === 'cordon_session')!.value;
    const csrf = login.json<{ csrf: string }>().csrf;
    const t = await app.inject({
      method: 'POST',
      url: '/api/v1/tokens',
      cookies: { cordon_session: cookie },
      headers: { 'x-cordon-csrf': csrf },
      payload: { name: 'root' },
    });
    rootToken = t.json<{ token: string }>().token;
    return rootToken;
  };
  let n = 0;
  return {
    dir,
    bus,
    store,
    readStore,
    ctx,
    manager,
    sink,
    app,
    logs,
    skew,
    call,
    async userWithToken(role, opts = {}) {
      const name = opts.name ?? `${role}-${++n}`;
      const root = await admin();
      if (role === 'admin' && name === 'root') return { name, token: root };
      const u = await call(root, {
        method: 'POST',
        url: '/api/v1/users',
        payload: { name, role, password: PASSWORD, groups: opts.groups ?? [] },
      });
      if (u.statusCode !== 201) throw new Error(`user ${name}: ${u.body}`);
      const login = await app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        payload: { user: name, password: PASSWORD },
      });
      const cookie = login.cookies.find((c) => c.name === 'cordon_session')!.value;
      const csrf = login.json<{ csrf: string }>().csrf;
      const t = await app.inject({
        method: 'POST',
        url: '/api/v1/tokens',
        cookies: { cordon_session: cookie },
        headers: { 'x-cordon-csrf': csrf },
        payload: {
          name: `${name}-token`,
          ...(opts.permissions ? { permissions: opts.permissions } : {}),
          ...(opts.ttlS ? { ttlS: opts.ttlS } : {}),
        },
      });
      if (t.statusCode !== 201) throw new Error(`token of ${name}: ${t.body}`);
      return { name, token: t.json<{ token: string }>().token };
    },
    async close() {
      await sink?.stop();
      await manager.stop();
      await bus.close();
      await readStore.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A decision on the blocks topic and its enforcer's `applied` report on the block-status topic. */
export async function putBlock(w: World, enforcer: string, target: string, vm: string): Promise<void> {
  const now = Date.now() * 1000;
  const b: BlockDecision = {
    block_id: `b-${target}`,
    enforcer,
    target: {
      kind: 'ip',
      ip: target,
      proto: null,
      src_ip: null,
      src_port: null,
      dst_ip: null,
      dst_port: null,
      vm: null,
    },
    scope: vm,
    action: 'drop',
    ttl_ms: 600_000,
    created_us: now,
    expires_us: now + 600_000_000,
    reason_alert: 'alert-1',
    status: 'requested',
  };
  const p = w.bus.producer();
  await p.send(TOPICS.blocks, [{ key: blockKey(enforcer, target), value: codecFor(TOPICS.blocks).encode(b) }]);
  await p.send(TOPICS.blockStatus, [
    {
      key: blockKey(enforcer, target),
      value: codecFor(TOPICS.blockStatus).encode({
        block_id: b.block_id,
        enforcer,
        target,
        status: 'applied',
        ts_us: now + 1000,
        expires_us: b.expires_us,
        error: null,
      }),
    },
  ]);
}

export async function putVm(w: World, id: string, host: string, cluster: string | null = null): Promise<void> {
  const inv = codecFor(TOPICS.inventory);
  const base = {
    power: null,
    guest_os: null,
    nics: [],
    updated_us: 1,
    cluster: null,
    connection: null,
    snapshot: null,
    template: false,
    connector: null,
    source: null,
  };
  const hostRec: InventoryRecord = {
    ...base,
    kind: 'host',
    id: host,
    name: host,
    host: null,
    cluster,
    connection: 'connected',
  };
  const vmRec: InventoryRecord = {
    ...base,
    kind: 'vm',
    id,
    name: id,
    host,
    power: 'on',
    nics: [{ mac: '52:54:00:00:00:01', ips: ['192.0.2.10'], network: null }],
  };
  await w.bus.producer().send(TOPICS.inventory, [
    { key: Buffer.from(`host:${host}`), value: inv.encode(hostRec) },
    { key: Buffer.from(`vm:${id}`), value: inv.encode(vmRec) },
  ]);
}

export async function putAgent(w: World, agent: string, vm: string): Promise<void> {
  const rec: AgentRecord = {
    agent,
    vm,
    version: '0.1.0',
    config_hash: 'h',
    identity: JSON.stringify({ generation: 1, incarnation: 'a1', hw: 'ab' }),
    heartbeat_us: Date.now() * 1000,
    status: 'running',
    kind: 'agent',
    host: null,
    policy_version: 1,
    capture: null,
    acks: {},
    heartbeat_interval_ms: 1000,
    public_key: null,
    processes: null,
    malware: null,
  };
  await w.bus.producer().send(TOPICS.agents, [{ key: Buffer.from(agent), value: codecFor(TOPICS.agents).encode(rec) }]);
}

/** An alert row straight into ClickHouse (as the sink lands them). */
export async function putAlertRow(
  w: World,
  id: string,
  vm: string,
  extra: Record<string, unknown> = {},
): Promise<void> {
  await w.store.insert(
    'alerts',
    [
      {
        alert_id: id,
        ts: new Date().toISOString().replace('T', ' ').replace('Z', ''),
        stage: 'dpi',
        vm,
        sensor: 'watchdog:hv1',
        rule_id: '2010935',
        rule_rev: 1,
        signature: 'ET WEB path traversal',
        severity: 2,
        category: 'web-application-attack',
        action: 'alert',
        src_ip: '::ffff:203.0.113.66',
        src_port: 40000,
        dst_ip: '::ffff:192.0.2.10',
        dst_port: 80,
        proto: 'tcp',
        flow_id: '',
        evidence: '{"uri":"/../../etc/passwd"}',
        ...extra,
      },
    ],
    { batchId: `test-alert-${id}` },
  );
}
