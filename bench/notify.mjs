#!/usr/bin/env node
// Alerts/s out of Cordon, beside the sink's own rate on the same alerts in the same run:
//   sink      — cordon.alerts.v1 → ClickHouse (embedded chdb), with the id lookup
//   siem      — the notify stage's OCSF exporter: cordon.alerts.v1 → cordon.siem.v1
//   syslog    — RFC 5424 + CEF over TCP to a local receiver that counts messages
//   webhook   — signed JSON POSTs to a local HTTP receiver (keep-alive), one at a time in order
//
//   npx tsc -b services/notify services/sink && node bench/notify.mjs [--alerts 20000] [--webhook-alerts 5000]
//
// One embedded bus and one engine; the stages run one after another on the same published
// alerts (2 cores: side by side they would measure each other). Each figure is alerts from the
// stage's start to the last one landed, delivered or produced, over that time.
import { createServer } from 'node:http';
import { createServer as createTcpServer } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '../packages/runtime/dist/src/index.js';
import { createEmbeddedBus } from '../packages/bus/dist/src/index.js';
import { allTopicSpecs, codecFor, TOPICS } from '../packages/schemas/dist/src/index.js';
import { createStore } from '../packages/store/dist/src/index.js';
import { runStage } from '../packages/stage/dist/src/index.js';
import { sinkStage } from '../services/sink/dist/src/index.js';
import { notifyStage } from '../services/notify/dist/src/index.js';

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(args[i + 1]);
};
const N = arg('alerts', 20_000);
const NW = Math.min(N, arg('webhook-alerts', 5_000));

const alert = (i) => ({
  alert_id: `a${i.toString(16).padStart(12, '0')}`,
  ts_us: 1_700_000_000_000_000 + i * 1000,
  stage: 'dpi',
  vm: `vm-${i % 20}`,
  sensor: 'bench',
  rule_id: `sid:${2_000_000 + (i % 200)}`,
  rule_rev: 1,
  signature: `ET BENCH rule ${i % 200}`,
  severity: 1 + (i % 3),
  category: 'Attempted Administrator Privilege Gain',
  action: 'alert',
  src_ip: `203.0.${(i >> 8) & 255}.${i & 255}`,
  src_port: 1024 + (i % 60000),
  dst_ip: '10.0.0.10',
  dst_port: 80,
  proto: 'TCP',
  flow_id: String(i),
  evidence: '{"app_proto":"http"}',
  community_id: '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
  mitre_tactic_ids: ['TA0001'],
  mitre_technique_ids: ['T1190'],
  cves: ['CVE-2021-44228'],
  http_hostname: 'web',
  http_url: '/x?y=${jndi:ldap://a/b}',
  http_method: 'GET',
  http_status: 200,
  payload_printable: 'GET /x HTTP/1.1',
});

const dir = mkdtempSync(join(tmpdir(), 'cordon-bench-notify-'));
const ctx = createContext({ log: silentLogger });
const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
await bus.admin.ensureTopics(allTopicSpecs());
const codec = codecFor(TOPICS.alerts);
const producer = bus.producer();
for (let s = 0; s < N; s += 1000) {
  await producer.send(
    TOPICS.alerts,
    Array.from({ length: Math.min(1000, N - s) }, (_, k) => ({
      key: Buffer.from(`vm-${(s + k) % 20}`),
      value: codec.encode(alert(s + k)),
    })),
  );
}
const until = async (cond) => {
  for (;;) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
};
const results = [];
const timed = async (name, n, start, done) => {
  process.stderr.write(`bench: ${name}…\n`);
  const t = performance.now();
  const stage = await start();
  await until(done);
  const s = (performance.now() - t) / 1000;
  await stage.stop();
  results.push({ path: name, alerts: n, seconds: s.toFixed(2), 'alerts/s': Math.round(n / s) });
};
const off = { siem: { enabled: false }, silence: { enabled: false } };

// sink
const store = await createStore({ dataDir: join(dir, 'ch'), ctx });
await timed(
  'sink → ClickHouse (chdb)',
  N,
  () => runStage(sinkStage, { bus, ctx, config: { topics: [TOPICS.alerts] }, env: { store: async () => store } }),
  async () => {
    const [r] = await store.query('SELECT count() AS n FROM alerts');
    return Number(r.n) >= N;
  },
);
await store.close();

// OCSF exporter
const siemCount = async () =>
  [...(await bus.admin.endOffsets(TOPICS.siem)).values()].reduce((a, b) => a + Number(b), 0);
await timed(
  'notify: OCSF → cordon.siem.v1',
  N,
  () => runStage(notifyStage, { bus, ctx, config: { siem: { topics: [TOPICS.alerts] }, silence: { enabled: false } } }),
  async () => (await siemCount()) >= N,
);

// syslog over TCP
let lines = 0;
const tcp = createTcpServer((s) =>
  s.on('data', (d) => {
    for (const b of d) if (b === 0x3c) lines++;
  }),
);
await new Promise((r) => tcp.listen(0, '127.0.0.1', r));
await timed(
  'notify: syslog CEF over TCP',
  N,
  () =>
    runStage(notifyStage, {
      bus,
      ctx,
      config: {
        ...off,
        syslog: [
          { name: 'bench-syslog', transport: 'tcp', host: '127.0.0.1', port: tcp.address().port, fromBeginning: true },
        ],
      },
    }),
  () => lines >= N,
);
tcp.close();

// webhook
let got = 0;
const http = createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    got++;
    res.writeHead(204).end();
  });
});
await new Promise((r) => http.listen(0, '127.0.0.1', r));
process.env.CORDON_BENCH_SECRET = 'bench-secret-bench-secret';
await timed(
  'notify: signed webhook (in order, one at a time)',
  NW,
  () =>
    runStage(notifyStage, {
      bus,
      ctx,
      config: {
        ...off,
        webhooks: [
          {
            name: 'bench-webhook',
            url: `http://127.0.0.1:${http.address().port}/`,
            secretEnv: 'CORDON_BENCH_SECRET',
            ratePerS: 1e6,
            fromBeginning: true,
          },
        ],
      },
    }),
  () => got >= NW,
);
http.close();

console.log(`alerts out of Cordon (node ${process.version}, ${(await import('node:os')).cpus().length} cores)`);
console.table(results);
await bus.close();
rmSync(dir, { recursive: true, force: true });
process.exit(0);
