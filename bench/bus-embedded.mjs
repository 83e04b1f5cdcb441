#!/usr/bin/env node
// Embedded bus: produce + consume N keyed records through the same interface the Kafka
// adapter implements, persisted to a temp data dir. Prints records/s and MB/s.
//   BENCH_RECORDS (200000)  BENCH_RECORD_BYTES (200)
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';

const N = Number(process.env.BENCH_RECORDS ?? 200_000);
const SIZE = Number(process.env.BENCH_RECORD_BYTES ?? 200);
const dir = mkdtempSync(join(tmpdir(), 'cordon-bench-bus-'));
const bus = createEmbeddedBus({ dataDir: dir, ctx: createContext({ log: silentLogger }) });
await bus.admin.ensureTopics([{ name: 'bench', partitions: 12, cleanupPolicy: 'delete', retentionMs: -1 }]);
const value = Buffer.alloc(SIZE, 0x61);
const producer = bus.producer();
const t0 = performance.now();
const BATCH = 1000;
for (let i = 0; i < N; i += BATCH) {
  const records = [];
  for (let j = i; j < Math.min(N, i + BATCH); j++) records.push({ key: Buffer.from(`key-${j % 10007}`), value });
  await producer.send('bench', records);
}
const t1 = performance.now();
let got = 0;
const consumer = bus.consumer({ groupId: 'bench', topics: ['bench'], maxBatchRecords: 5000 });
await new Promise((resolve, reject) => {
  consumer
    .run(async (b) => {
      got += b.records.length;
      if (got >= N) resolve();
    })
    .catch(reject);
});
const t2 = performance.now();
await consumer.close();
await bus.close();
rmSync(dir, { recursive: true, force: true });
const mb = (N * SIZE) / 1e6;
const fmt = (ms) =>
  `${Math.round(N / (ms / 1000)).toLocaleString('en-US')} rec/s ${(mb / (ms / 1000)).toFixed(1)} MB/s`;
console.log(
  `bus embedded: produce ${fmt(t1 - t0)}; consume ${fmt(t2 - t1)}; produce+consume ${fmt(t2 - t0)} (${N} records x ${SIZE} B)`,
);
