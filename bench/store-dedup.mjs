#!/usr/bin/env node
// How a replay of the same capture (the same alerts arriving again as new records, with new
// offsets) stays counted once: the sink's choices measured side by side, in one embedded engine.
//
//   npx tsc -b services/sink && node bench/store-dedup.mjs [--rows 200000] [--batch 5000]
//
// Three databases get the same alerts twice (the second time under new insert tokens, as a
// replay has):
//   tokens  — insert_deduplication_token from the input offsets alone (what the sink did);
//   final   — the same, read through a view that applies FINAL to the ReplacingMergeTree;
//   lookup  — the sink's newRowsOnly(): ids already stored are looked up and left out.
// Printed: each one's `SELECT count()` after the replay, the time of the insert path (lookup
// included), and the time of typical analyst queries on the raw table, through FINAL, and
// through the view.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createStore } from '../packages/store/dist/src/index.js';
import { mappingFor, newRowsOnly } from '../services/sink/dist/src/index.js';

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(args[i + 1]);
};
const ROWS = arg('rows', 200_000);
const BATCH = arg('batch', 5_000);
const mapping = mappingFor('cordon.alerts.v1');

function alert(i) {
  return {
    alert_id: `a${i.toString(16).padStart(12, '0')}`,
    ts_us: 1_700_000_000_000_000 + i * 4_000_000, // ~9 days: one or two partitions
    stage: 'dpi',
    vm: `vm-${i % 50}`,
    sensor: 'replay:x.pcap',
    rule_id: `sid:${2_000_000 + (i % 300)}`,
    rule_rev: 1,
    signature: `ET RULE ${i % 300}`,
    severity: 1 + (i % 3),
    category: 'Attempted Administrator Privilege Gain',
    action: 'alert',
    src_ip: `203.0.${(i >> 8) & 255}.${i & 255}`,
    src_port: 1024 + (i % 60000),
    dst_ip: `10.0.0.${i % 250}`,
    dst_port: 80,
    proto: 'TCP',
    flow_id: String(i),
    evidence: '{}',
    community_id: `1:${i}`,
    metadata: null,
    mitre_tactic_ids: ['TA0001'],
    mitre_technique_ids: ['T1190'],
    cves: [],
    references: [],
    app_proto: 'http',
    http_hostname: 'h',
    http_url: '/x',
    http_method: 'GET',
    http_status: 200,
    http_user_agent: 'ua',
    dns_rrname: null,
    dns_rrtype: null,
    tls_sni: null,
    tls_version: null,
    ja3: null,
    payload_printable: 'GET /x',
    pcap_cnt: i,
  };
}
const batches = [];
for (let s = 0; s < ROWS; s += BATCH)
  batches.push(Array.from({ length: Math.min(BATCH, ROWS - s) }, (_, k) => mapping.toRow(alert(s + k))));

const dir = mkdtempSync(join(tmpdir(), 'cordon-dedup-'));
const stores = {};
for (const db of ['tokens', 'final', 'lookup'])
  stores[db] = await createStore({ dataDir: join(dir, 'ch'), database: `dedup_${db}` });
await stores.final.command('CREATE VIEW IF NOT EXISTS alerts_v AS SELECT *, src_addr, dst_addr FROM alerts FINAL');

const time = async (fn) => {
  const t = process.hrtime.bigint();
  const r = await fn();
  return { ms: Number(process.hrtime.bigint() - t) / 1e6, r };
};
const insertAll = async (store, round, lookup) => {
  let skipped = 0;
  const { ms } = await time(async () => {
    for (const [i, rows] of batches.entries()) {
      let batchId = `cordon.alerts.v1:0:${round}-${i}`;
      let kept = rows;
      if (lookup) {
        const f = await newRowsOnly(store, 'alerts', mapping.identity, rows, batchId);
        ({ batchId } = f);
        kept = f.rows;
        skipped += f.skipped;
        if (kept.length === 0) continue;
      }
      await store.insert('alerts', kept, { batchId });
    }
  });
  return { ms, skipped };
};

const out = [];
for (const [db, lookup] of [
  ['tokens', false],
  ['final', false],
  ['lookup', true],
]) {
  const first = await insertAll(stores[db], 1, lookup);
  const replay = await insertAll(stores[db], 2, lookup);
  const [{ n }] = await stores[db].query('SELECT count() AS n FROM alerts');
  out.push({
    db,
    first_insert_rows_per_s: Math.round(ROWS / (first.ms / 1000)),
    replay_rows_per_s: Math.round(ROWS / (replay.ms / 1000)),
    replay_skipped: replay.skipped,
    count_after_replay: Number(n),
  });
}
console.log(`alerts: ${ROWS} rows in batches of ${BATCH}, then the same rows again as a replay`);
console.table(out);

const QUERIES = {
  count: (t) => `SELECT count() FROM ${t}`,
  top_rules_24h: (t) =>
    `SELECT rule_id, count() AS n FROM ${t} WHERE ts >= toDateTime64('2023-11-14 22:00:00', 6, 'UTC') - INTERVAL 1 DAY GROUP BY rule_id ORDER BY n DESC LIMIT 10`,
  one_vm: (t) => `SELECT ts, rule_id, src_addr FROM ${t} WHERE vm = 'vm-7' ORDER BY ts DESC LIMIT 100`,
};
const q = [];
for (const [name, sql] of Object.entries(QUERIES)) {
  const best = async (store, text) => {
    let m = Infinity;
    for (let k = 0; k < 5; k++) m = Math.min(m, (await time(() => store.query(text))).ms);
    return m.toFixed(1);
  };
  q.push({
    query: name,
    'lookup: raw table (ms)': await best(stores.lookup, sql('alerts')),
    'final: FINAL (ms)': await best(stores.final, sql('alerts FINAL')),
    'final: view (ms)': await best(stores.final, sql('alerts_v')),
  });
}
console.log(
  'analyst queries, best of 5 (the lookup table holds each alert once; the final one holds every alert twice, unmerged)',
);
console.table(q);
for (const s of Object.values(stores)) await s.close();
rmSync(dir, { recursive: true, force: true });
