#!/usr/bin/env node
// The manager's API latency on a big installation, beside the raw queries of the same rows in
// the same run: the inventory list with 10,000 VMs (served from the tables the manager follows;
// baseline: the same 10,000 rows from a ClickHouse table) and the alerts query over 1,000,000
// alerts (ClickHouse through the manager's readonly session; baseline: the same SQL straight
// to chdb).
//
//   npm run build && node bench/manager.mjs [--vms 10000] [--alerts 1000000] [--requests 200]
//
// Requests go over HTTP on 127.0.0.1 with an API token, one at a time (keep-alive): the time of
// each is from sending the request to having parsed the whole JSON answer.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Session } from 'chdb';
import { createEmbeddedBus } from '../packages/bus/dist/src/index.js';
import { createContext, silentLogger } from '../packages/runtime/dist/src/index.js';
import { allTopicSpecs, codecFor, TOPICS } from '../packages/schemas/dist/src/index.js';
import { runStage } from '../packages/stage/dist/src/index.js';
import { createStore, microsToDateTime64 } from '../packages/store/dist/src/index.js';
import { addUser, managerStage } from '../services/manager/dist/src/index.js';

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(args[i + 1]);
};
const VMS = arg('vms', 10_000);
const ALERTS = arg('alerts', 1_000_000);
const REQUESTS = arg('requests', 200);
const PASSWORD = 'bench password, long enough';

const pct = (xs, p) => xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
function summary(name, ms, extra = '') {
  const s = [...ms].sort((a, b) => a - b);
  return `${name.padEnd(58)} p50 ${pct(s, 50).toFixed(1).padStart(7)} ms  p99 ${pct(s, 99).toFixed(1).padStart(7)} ms  max ${s[s.length - 1].toFixed(1).padStart(7)} ms${extra}`;
}

async function time(n, fn) {
  for (let i = 0; i < Math.min(10, n); i++) await fn(i); // warm-up
  const out = [];
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await fn(i);
    out.push(performance.now() - t0);
  }
  return out;
}

const dir = mkdtempSync(join(tmpdir(), 'cordon-bench-manager-'));
const ctx = createContext({ log: silentLogger });
const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
const store = await createStore({ dataDir: join(dir, 'clickhouse'), ctx });
const readStore = await createStore({ dataDir: join(dir, 'clickhouse'), ctx, readOnly: true });
const session = new Session(join(dir, 'clickhouse'));
let manager;
try {
  await bus.admin.ensureTopics(allTopicSpecs());
  // ---- 10,000 VMs on 100 hosts in 10 clusters, half of them assigned
  const inv = codecFor(TOPICS.inventory);
  const asg = codecFor(TOPICS.assignments);
  const base = {
    power: 'on',
    guest_os: 'linux',
    nics: [],
    updated_us: 1,
    cluster: null,
    connection: 'connected',
    snapshot: null,
    template: false,
    connector: 'vsphere',
    source: 'vsphere+https://vc1/sdk',
  };
  const records = [];
  const hosts = Math.max(1, Math.round(VMS / 100));
  for (let h = 0; h < hosts; h++)
    records.push({
      key: Buffer.from(`host:h${h}`),
      value: inv.encode({
        ...base,
        kind: 'host',
        id: `h${h}`,
        name: `esx-${h}`,
        host: null,
        cluster: `c${h % 10}`,
        power: null,
      }),
    });
  const vmRows = [];
  for (let v = 0; v < VMS; v++) {
    const id = `vm-${v}`;
    const ip = `10.${(v >> 16) & 255}.${(v >> 8) & 255}.${v & 255}`;
    records.push({
      key: Buffer.from(`vm:${id}`),
      value: inv.encode({
        ...base,
        kind: 'vm',
        id,
        name: `web-${v}`,
        host: `h${v % hosts}`,
        nics: [
          {
            mac: `52:54:00:${((v >> 16) & 255).toString(16).padStart(2, '0')}:${((v >> 8) & 255).toString(16).padStart(2, '0')}:${(v & 255).toString(16).padStart(2, '0')}`,
            ips: [ip],
            network: 'vm-net',
          },
        ],
      }),
    });
    vmRows.push({
      id,
      name: `web-${v}`,
      host: `esx-${v % hosts}`,
      cluster: `c${(v % hosts) % 10}`,
      ip,
      protection: v % 2 ? 'watchdog' : '',
    });
  }
  await bus.producer().send(TOPICS.inventory, records);
  const now = Date.now() * 1000;
  await bus.producer().send(
    TOPICS.assignments,
    Array.from({ length: VMS >> 1 }, (_, k) => {
      const vm = `vm-${2 * k + 1}`;
      return {
        key: Buffer.from(vm),
        value: asg.encode({
          vm,
          mode: 'watchdog',
          host: `h${(2 * k + 1) % hosts}`,
          agent: null,
          policy_version: 1,
          reason: 'bench',
          since_us: now,
          enforcer: `watchdog:h${(2 * k + 1) % hosts}`,
          handoff_us: 0,
          epoch: 1,
          gated: false,
        }),
      };
    }),
  );
  // the raw baseline for the inventory: the same 10,000 rows in a ClickHouse table
  await store.command(
    'CREATE TABLE bench_vms (id String, name String, host String, cluster String, ip String, protection String) ENGINE = MergeTree ORDER BY id',
  );
  await store.insert('bench_vms', vmRows, { batchId: 'bench-vms' });

  // ---- 1,000,000 alerts over 30 days on 1,000 VMs
  const t0 = performance.now();
  const BATCH = 100_000;
  const start = Date.now() - 30 * 86_400_000;
  for (let b = 0; b < ALERTS; b += BATCH) {
    const rows = [];
    for (let i = b; i < Math.min(ALERTS, b + BATCH); i++) {
      rows.push({
        alert_id: `a${i.toString(16).padStart(10, '0')}`,
        ts: microsToDateTime64((start + Math.floor((i * 30 * 86_400_000) / ALERTS)) * 1000),
        stage: i % 3 ? 'dpi' : 'loginspect',
        vm: `vm-${i % 1000}`,
        sensor: `watchdog:h${i % hosts}`,
        rule_id: String(2_000_000 + (i % 500)),
        rule_rev: 1,
        signature: `ET WEB rule ${i % 500}`,
        severity: 1 + (i % 3),
        category: 'web-application-attack',
        action: 'alert',
        src_ip: `::ffff:203.0.${(i >> 8) & 255}.${i & 255}`,
        src_port: 1024 + (i % 60000),
        dst_ip: `::ffff:10.0.${(i >> 8) & 255}.${i & 255}`,
        dst_port: 80,
        proto: 'tcp',
        flow_id: '',
        evidence: '{"uri":"/x"}',
      });
    }
    await store.insert('alerts', rows, { batchId: `bench-alerts-${b}` });
  }
  await store.command('OPTIMIZE TABLE alerts FINAL');
  const loadS = (performance.now() - t0) / 1000;

  // ---- the manager, and an admin token
  const env = { dataDir: dir, store: async () => store, readStore: async () => readStore };
  await addUser(
    { bus, ctx, dataDir: dir },
    { name: 'bench', role: 'admin', password: PASSWORD, by: 'bench', scryptLogN: 10 },
  );
  manager = await runStage(managerStage, { bus, ctx, config: { listen: '127.0.0.1:0', scryptLogN: 10 }, env });
  while (
    manager.views.vmRecords().length < VMS ||
    manager.views.assignments.size < VMS >> 1 ||
    !manager.state.users.has('bench')
  )
    await new Promise((r) => setTimeout(r, 50));
  const url = `${manager.url}/api/v1`;
  const login = await fetch(`${url}/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ user: 'bench', password: PASSWORD }),
  });
  const cookie = login.headers
    .getSetCookie()
    .map((c) => c.split(';')[0])
    .join('; ');
  const { csrf } = await login.json();
  const tok = await (
    await fetch(`${url}/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', cookie, 'x-cordon-csrf': csrf },
      body: JSON.stringify({ name: 'bench' }),
    })
  ).json();
  const auth = { authorization: `Bearer ${tok.token}` };
  const get = async (path) => {
    const r = await fetch(`${url}${path}`, { headers: auth });
    if (!r.ok) throw new Error(`${path}: ${r.status} ${await r.text()}`);
    return r.json();
  };
  // parsed whole, as the API client parses its answer
  const raw = async (sql) =>
    (await session.queryAsync(sql, { format: 'JSONEachRow' }))
      .text()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l));

  console.log(
    `manager bench: ${VMS} VMs on ${hosts} hosts, ${ALERTS} alerts (loaded in ${loadS.toFixed(1)} s), ${REQUESTS} requests each, one at a time over HTTP on 127.0.0.1; node ${process.version}`,
  );
  // inventory: every VM in one answer
  let n = 0;
  const apiInv = await time(REQUESTS, async () => {
    n = (await get(`/inventory/vms?limit=${VMS}`)).items.length;
  });
  if (n !== VMS) throw new Error(`the inventory list held ${n} VMs, not ${VMS}`);
  const rawInv = await time(REQUESTS, () =>
    raw('SELECT id, name, host, cluster, ip, protection FROM cordon.bench_vms ORDER BY id'),
  );
  console.log(summary(`API GET /inventory/vms (all ${VMS} VMs, with protection)`, apiInv));
  console.log(summary(`raw chdb SELECT of the same ${VMS} rows`, rawInv));
  const apiTree = await time(Math.min(REQUESTS, 50), () => get('/inventory/tree'));
  console.log(summary(`API GET /inventory/tree (${VMS} VMs)`, apiTree));
  // alerts: the newest page, and one VM's page with a severity filter, over 1M rows
  const SQL_NEWEST =
    'SELECT alert_id, toString(ts) AS ts_text, stage, vm, sensor, rule_id, rule_rev, signature, severity, category, action, src_addr, src_port, dst_addr, dst_port, proto, flow_id FROM cordon.alerts ORDER BY ts DESC, alert_id DESC LIMIT 101';
  const apiNewest = await time(REQUESTS, () => get('/alerts?limit=100'));
  const rawNewest = await time(REQUESTS, () => raw(SQL_NEWEST));
  console.log(summary(`API GET /alerts?limit=100 (newest of ${ALERTS})`, apiNewest));
  console.log(summary('raw chdb, the same SQL', rawNewest));
  const apiVm = await time(REQUESTS, (i) => get(`/alerts?vm=vm-${i % 1000}&severityMin=2&limit=100`));
  const rawVm = await time(REQUESTS, (i) =>
    raw(SQL_NEWEST.replace('FROM cordon.alerts', `FROM cordon.alerts WHERE vm = 'vm-${i % 1000}' AND severity >= 2`)),
  );
  console.log(summary(`API GET /alerts?vm=…&severityMin=2&limit=100`, apiVm));
  console.log(summary('raw chdb, the same SQL', rawVm));
  const page2 = await time(Math.min(REQUESTS, 100), async () => {
    const first = await get('/alerts?limit=100');
    await get(`/alerts?limit=100&cursor=${first.next}`);
  });
  console.log(summary('API first page + next page by cursor (two requests)', page2));
  const p99 = (xs) =>
    pct(
      [...xs].sort((a, b) => a - b),
      99,
    );
  console.log(
    `ratio API/raw p99: inventory ${(p99(apiInv) / p99(rawInv)).toFixed(2)}, newest alerts ${(p99(apiNewest) / p99(rawNewest)).toFixed(2)}, one VM's alerts ${(p99(apiVm) / p99(rawVm)).toFixed(2)}`,
  );
} finally {
  await manager?.stop();
  session.close();
  await bus.close();
  await readStore.close();
  await store.close();
  rmSync(dir, { recursive: true, force: true });
}
