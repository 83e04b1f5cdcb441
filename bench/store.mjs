#!/usr/bin/env node
// ClickHouse store insert throughput: flow rows through @cordon/store (validation, JSONEachRow,
// dedup token, @clickhouse/client over chdb's Connection) beside chdb's own insert API on the same
// rows and the same table definition (schemas/clickhouse/0001_flows.sql), in the same engine.
//
//   npx tsc -b packages/store && node bench/store.mjs [--rows 1000000] [--batch 10000]
//
// Both paths share one data dir (chdb binds one per process) in different databases. Row
// generation is outside the timed region; everything from "here are JS objects" to "the insert
// returned" is inside it, for every path.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session } from 'chdb';
import { createContext, silentLogger } from '@cordon/runtime';
import { createStore, microsToDateTime64, splitStatements } from '../packages/store/dist/src/index.js';

const args = process.argv.slice(2);
const arg = (name, dflt) => {
  const i = args.indexOf(`--${name}`);
  return i === -1 ? dflt : Number(args[i + 1]);
};
const ROWS = arg('rows', 1_000_000);
const BATCH = arg('batch', 10_000);

function flowRow(i) {
  const first = 1_700_000_000_000_000 + i * 997; // ~11.5 days: the run spans one or two partitions
  return {
    flow_id: `f${i.toString(16).padStart(12, '0')}`,
    sensor: `sensor-${i % 4}`,
    vm: `vm-${i % 97}`,
    vlan: i % 4094,
    proto: i % 3 === 0 ? 17 : 6,
    src_ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    src_port: 1024 + (i % 60000),
    dst_ip: i % 5 === 0 ? `2001:db8::${(i % 65535).toString(16)}` : `192.168.${(i >> 8) & 255}.${i & 255}`,
    dst_port: [443, 80, 53, 22, 8080][i % 5],
    first_seen: microsToDateTime64(first),
    last_seen: microsToDateTime64(first + 1_500_000 + (i % 1000)),
    pkts_toserver: 3 + (i % 50),
    pkts_toclient: 2 + (i % 70),
    bytes_toserver: 180 + (i % 9000),
    bytes_toclient: 120 + (i % 150000),
    tcp_flags_toserver: 0x1b,
    tcp_flags_toclient: 0x1b,
    end_reason: ['fin', 'rst', 'timeout', 'end'][i % 4],
  };
}

function* batches() {
  for (let start = 0; start < ROWS; start += BATCH) {
    const n = Math.min(BATCH, ROWS - start);
    yield { start, rows: Array.from({ length: n }, (_, k) => flowRow(start + k)) };
  }
}

/**
 * Time every path on every batch, the paths in a shuffled order per batch: background merges of
 * earlier inserts (2 cores) then weigh on all paths alike instead of on whichever runs last.
 */
async function timed(paths) {
  const ns = Object.fromEntries(Object.keys(paths).map((k) => [k, 0n]));
  let seed = 42;
  const rand = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  for (const b of batches()) {
    const order = Object.keys(paths).sort(() => rand() - 0.5);
    for (const name of order) {
      const t0 = process.hrtime.bigint();
      await paths[name](b);
      ns[name] += process.hrtime.bigint() - t0;
    }
  }
  return Object.fromEntries(
    Object.entries(ns).map(([k, v]) => [k, { seconds: Number(v) / 1e9, rate: ROWS / (Number(v) / 1e9) }]),
  );
}

const dataDir = mkdtempSync(join(tmpdir(), 'cordon-bench-store-'));
const migration = fileURLToPath(new URL('../schemas/clickhouse/0001_flows.sql', import.meta.url));
try {
  const store = await createStore({ dataDir, database: 'bench_store', ctx: createContext({ log: silentLogger }) });
  const session = new Session(dataDir);
  for (const db of ['bench_raw_rows', 'bench_raw_json']) {
    await session.queryAsync(`CREATE DATABASE IF NOT EXISTS ${db}`);
    for (const stmt of splitStatements(readFileSync(migration, 'utf8'))) {
      await session.queryAsync(
        stmt.replace('CREATE TABLE IF NOT EXISTS flows', `CREATE TABLE IF NOT EXISTS ${db}.flows`),
      );
    }
  }

  console.log(
    `ClickHouse store bench: ${ROWS} flow rows in batches of ${BATCH}, chdb ${(await session.queryAsync('SELECT version()', { format: 'TSV' })).text().trim()}, node ${process.version}`,
  );

  const r = await timed({
    raw: ({ rows }) => session.insert({ table: 'bench_raw_rows.flows', values: rows }),
    rawJson: ({ rows }) =>
      session.insert({
        table: 'bench_raw_json.flows',
        values: Buffer.from(rows.map((row) => JSON.stringify(row)).join('\n') + '\n'),
        format: 'JSONEachRow',
      }),
    store: ({ start, rows }) => store.insert('flows', rows, { batchId: `bench:${start}` }),
  });
  const { raw, rawJson, store: st } = r;
  console.log(
    `raw chdb Session.insert (rows -> VALUES):       ${raw.rate.toFixed(0)} rows/s (${raw.seconds.toFixed(2)} s)`,
  );
  console.log(
    `raw chdb Session.insert (JSONEachRow Buffer):   ${rawJson.rate.toFixed(0)} rows/s (${rawJson.seconds.toFixed(2)} s)`,
  );
  console.log(
    `Store.insert (validate + dedup token + client): ${st.rate.toFixed(0)} rows/s (${st.seconds.toFixed(2)} s)`,
  );

  // Every path must have written every row exactly once, or the numbers mean nothing.
  for (const [table, q] of [
    ['bench_store.flows', () => store.query('SELECT count() AS n FROM bench_store.flows')],
    [
      'bench_raw_rows.flows',
      async () =>
        (await session.queryAsync('SELECT count() AS n FROM bench_raw_rows.flows', { format: 'JSONEachRow' })).json(),
    ],
    [
      'bench_raw_json.flows',
      async () =>
        (await session.queryAsync('SELECT count() AS n FROM bench_raw_json.flows', { format: 'JSONEachRow' })).json(),
    ],
  ]) {
    const res = await q();
    const n = Number((Array.isArray(res) ? res[0] : res).n);
    if (n !== ROWS) throw new Error(`${table} has ${n} rows, expected ${ROWS}`);
  }
  // Replaying every batch through the store must add nothing (and shows what a replay costs).
  const { replay } = await timed({
    replay: ({ start, rows }) => store.insert('flows', rows, { batchId: `bench:${start}` }),
  });
  const [{ n: after }] = await store.query('SELECT count() AS n FROM bench_store.flows');
  if (Number(after) !== ROWS) throw new Error(`replay double-counted: ${after} rows`);
  console.log(`Store.insert replay of every batch (dropped):  ${replay.rate.toFixed(0)} rows/s, count still ${after}`);

  console.log(
    `store insert: ${st.rate.toFixed(0)} rows/s; raw chdb: ${raw.rate.toFixed(0)} rows/s; ratio ${(st.rate / raw.rate).toFixed(2)}`,
  );
  session.close();
  await store.close();
} finally {
  rmSync(dataDir, { recursive: true, force: true });
}
