import { readFileSync } from 'node:fs';
import type { FastifyInstance } from 'fastify';
import type { ProduceRecord } from '@cordon/bus';
import { describeError } from '@cordon/runtime';
import { defineStage, type Stage } from '@cordon/stage';
import { TOPICS } from '@cordon/schemas';
import type { Store } from '@cordon/store';
import { buildApp } from './app.js';
import { auditRecord } from './audit.js';
import { compileDocument, sameVms } from './inherit.js';
import { LoginLimiter } from './auth/limiter.js';
import {
  checkListen,
  ENROLL_SECRET_ENV,
  loadSecret,
  MANAGER_SECRET_ENV,
  managerConfigSchema,
  splitListen,
  type ManagerConfig,
} from './config.js';
import type { Change, ManagerDeps } from './deps.js';
import { LAYERS_PREFIX, ManagerState } from './state.js';
import { PipelineViews } from './views.js';

export const STAGE = 'manager';

/**
 * The manager: the REST API and the console. Stateless: everything it holds is read back from
 * the compacted policy topic (users, roles, tokens, sessions, groups, policies, …) and the
 * pipeline's tables (inventory, assignments, heartbeats, blocks and their status), which it follows, so any
 * number of instances serve the same state and any may die. Every write goes to a topic
 * before it is answered, and every write route leaves one AuditEvent on `cordon.audit.v1`,
 * which the sink lands in ClickHouse's `audit` table; the manager reads ClickHouse through a
 * readonly = 1 session only.
 */
export const managerStage = defineStage({
  name: STAGE,
  summary: 'REST API and web console: users, roles, policies, alerts, blocks, audit trail',
  config: managerConfigSchema,
  // it consumes nothing as a group: every instance follows every table whole
  inputs: () => [],
  outputs: () => [TOPICS.policy, TOPICS.audit, TOPICS.blocks, TOPICS.agentCommands],
  reads: () => [TOPICS.policy, TOPICS.inventory, TOPICS.assignments, TOPICS.agents, TOPICS.blocks, TOPICS.blockStatus],
  start: (stage) => startManager(stage),
});

export interface RunningManager {
  /** Where the console and API are served (`<url>/`, `<url>/api/v1/`). */
  url: string;
  app: FastifyInstance;
  state: ManagerState;
  views: PipelineViews;
}

async function startManager(stage: Stage<ManagerConfig>): Promise<RunningManager> {
  const { config, ctx } = stage;
  const { log, clock, metrics } = ctx;
  checkListen(config);
  const pepper = loadSecret({
    file: config.secretFile,
    envName: MANAGER_SECRET_ENV,
    env: process.env,
    dataDir: stage.env.dataDir,
    keyFile: 'manager.key',
  });
  let enroll: Buffer | null = null;
  const state = new ManagerState();
  const views = new PipelineViews();

  const skip = (what: string) => (err: unknown) => {
    metrics.inc('records_unusable');
    log.warn({ err: describeError(err) }, `A ${what} record is unusable; it was skipped.`);
  };
  const guarded =
    (what: string, fn: (k: Buffer | null, v: Buffer | null) => void) =>
    (r: { key: Buffer | null; value: Buffer | null }) => {
      try {
        fn(r.key, r.value);
      } catch (err) {
        skip(what)(err);
      }
    };
  await stage.follow(
    TOPICS.policy,
    guarded('policy', (k, v) => state.apply(k, v)),
  );
  await stage.follow(
    TOPICS.inventory,
    guarded('inventory', (k, v) => views.applyInventory(k, v)),
  );
  await stage.follow(
    TOPICS.assignments,
    guarded('assignment', (k, v) => views.applyAssignment(k, v)),
  );
  await stage.follow(
    TOPICS.agents,
    guarded('heartbeat', (k, v) => views.applyAgent(k, v)),
  );
  await stage.follow(
    TOPICS.blocks,
    guarded('block', (k, v) => views.applyBlock(k, v)),
  );
  await stage.follow(
    TOPICS.blockStatus,
    guarded('block status', (k, v) => views.applyBlockStatus(k, v)),
  );

  const nowUs = () => clock.now() * 1000;
  const write = async (changes: Change[], by: string) => {
    const records: ProduceRecord[] = changes.map((c) => {
      if (c.doc === null) return { key: Buffer.from(`${c.kind}:${c.id}`), value: null };
      const old =
        c.kind === 'policy'
          ? state.policyRecords.get(`policy:${c.id}`)?.version
          : c.kind === 'setting' && c.id.startsWith(LAYERS_PREFIX)
            ? state.layers.get(c.id.slice(LAYERS_PREFIX.length))?.version
            : (state.table(c.kind as never) as Map<string, { version: number }> | undefined)?.get(c.id)?.version;
      return state.record(c.kind, c.id, c.doc, by, nowUs(), (old ?? 0) + 1);
    });
    await stage.send(TOPICS.policy, records);
    // read your writes: the follower applies the same records again, which changes nothing
    for (const r of records) state.apply(r.key, r.value);
  };

  let readStore: Promise<Store> | null = null;
  const deps: ManagerDeps = {
    config,
    ctx,
    dataDir: stage.env.dataDir,
    state,
    views,
    bus: stage.bus,
    write,
    send: (topic, records) => stage.send(topic, records),
    readStore: () => {
      readStore ??= stage.env.readStore();
      readStore.catch(() => (readStore = null));
      return readStore;
    },
    pepper,
    scryptCost: { N: 1 << config.scryptLogN, r: 8, p: 1 },
    enrollSecret: () =>
      (enroll ??= loadSecret({
        file: config.enrollSecretFile,
        envName: ENROLL_SECRET_ENV,
        env: process.env,
        dataDir: stage.env.dataDir,
        keyFile: 'enroll.key',
      })),
    limiter: new LoginLimiter({
      maxFailures: config.login.maxFailures,
      windowMs: config.login.windowS * 1000,
      lockoutMs: config.login.lockoutS * 1000,
      perIpMax: config.login.perIpPerMinute,
    }),
    tls: config.tls !== undefined,
  };

  const https = config.tls
    ? { cert: readFileSync(config.tls.certFile), key: readFileSync(config.tls.keyFile) }
    : undefined;
  const app = await buildApp(deps, https ? { https } : {});

  // each VM's newest alert, for the inventory: one grouped query every few seconds, not one per VM per list
  stage.every(5000, 'Reading the newest alert of each VM', async () => {
    let rows: Array<{ vm: string; last_ts: string; last_signature: string }>;
    try {
      // aliases unlike the columns: an alias named ts would stand for max(ts) in the WHERE too
      rows = await (
        await deps.readStore()
      ).query(
        "SELECT vm, toString(max(ts)) AS last_ts, argMax(signature, ts) AS last_signature FROM alerts WHERE ts > now() - INTERVAL 30 DAY AND vm != '' GROUP BY vm",
      );
    } catch (err) {
      // no alerts table yet: the sink (which runs the migrations) has not started on this store
      if (/UNKNOWN_TABLE/.test(describeError(err).message)) return;
      throw err;
    }
    views.lastAlerts.clear();
    for (const r of rows)
      views.lastAlerts.set(r.vm, { ts: `${r.last_ts.replace(' ', 'T')}Z`, signature: r.last_signature });
  });
  // sessions past their expiry are removed from the topic (any instance may do it: a tombstone twice is one)
  stage.every(60_000, 'Removing expired sessions', async () => {
    const gone = [...state.sessions.values()].filter((s) => s.doc.expiresUs < nowUs() - 3_600_000_000);
    if (gone.length)
      await write(
        gone.map((s) => ({ kind: 'session' as const, id: s.id, doc: null })),
        'manager',
      );
  });

  // VMs join and leave groups as the inventory changes: a policy with group settings is
  // compiled again and written when what its VMs get changed. Any instance may do it; the
  // second finds the document already right.
  let looked = { views: -1, state: -1 };
  stage.every(2000, 'Keeping group settings on the VMs now in each group', async () => {
    if (looked.views === views.version && looked.state === state.version) return;
    looked = { views: views.version, state: state.version };
    const vmIds = views.vmRecords().map((v) => v.id);
    const groupsOfVm = (vm: string) => {
      const rec = views.inventory.get(`vm:${vm}`);
      return rec ? views.groupsOf(rec, state.groups.values()) : [];
    };
    for (const [id, layers] of state.layers) {
      const p = state.policy.policies.get(id);
      if (!p || Object.keys(layers.doc.groups).length === 0) continue;
      const compiled = compileDocument(p.doc, layers.doc, groupsOfVm, vmIds);
      if (sameVms(compiled.vms, p.doc.vms)) continue;
      await write([{ kind: 'policy', id, doc: compiled }], 'manager');
      const { record } = auditRecord(
        {
          actor: 'manager',
          role: null,
          auth: 'system',
          action: 'policy.regroup',
          sourceIp: null,
          result: 'ok',
          nowUs: nowUs(),
        },
        {
          object: `policy:${id}`,
          before: { vms: p.doc.vms },
          after: { vms: compiled.vms },
          detail: 'VM group membership changed',
        },
      );
      await stage.send(TOPICS.audit, [record]);
      log.info(
        { policy: id },
        'VM group membership changed: the policy was compiled again for the VMs now in each group.',
      );
    }
  });

  const { host, port } = splitListen(config.listen);
  try {
    await app.listen({ host, port });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || port === 0) throw err;
    // another instance on this machine has the port (a second `cordon up`, a test): take a free
    // one rather than fail; the URL is logged and printed (`manager: URL`)
    log.warn({ listen: config.listen }, 'The manager port is in use: listening on a free port instead.');
    await app.listen({ host, port: 0 });
  }
  const addr = app.server.address();
  const bound = typeof addr === 'object' && addr ? addr.port : port;
  const url = `${https ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${bound}`;
  log.info(
    { url, users: state.users.size, policies: state.policy.policies.size },
    'The manager serves the console and the API.',
  );
  if (state.users.size === 0)
    log.warn('No user exists yet: create the first admin with "cordon users add NAME --role admin".');
  stage.onStop(async () => {
    await app.close();
    if (readStore) await (await readStore.catch(() => null))?.close();
  });
  return { url, app, state, views };
}
