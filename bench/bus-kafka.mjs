#!/usr/bin/env node
// The Kafka bus adapter beside kcat (librdkafka's command-line client) moving the same records
// through the same real broker: produce N keyed records (acks=all), then read them all back.
// Then the adapter again against a secured broker (start.sh --secure: SASL_SSL, SCRAM-SHA-512,
// ACLs; as its admin principal) in the same run: plaintext vs SASL_SSL records/s and the ratio.
//   BENCH_RECORDS (200000)  BENCH_VALUE_BYTES (200)  BENCH_PARTITIONS (3)
//   BENCH_SECURE=0 skips the secured run; BENCH_SECURE_KAFKA_PORT (19192)
// Uses KAFKA_BROKERS, or starts and stops a throwaway broker through infra/kafka.
// Needs the bus built (npx tsc -b packages/bus) and kcat on PATH (infra/kafka/deps.sh).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { randomBytes } from 'node:crypto';
import { fmt, rate, withBroker, withSecureBroker } from './kafka-broker.mjs';

const N = Number(process.env.BENCH_RECORDS ?? 200_000);
const SIZE = Number(process.env.BENCH_VALUE_BYTES ?? 200);
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 3);
const BATCH = 1000;
const IN_FLIGHT = 4;

const { createKafkaBus, loadKafkaClientConfig } = await import('../packages/bus/dist/src/index.js').catch((err) => {
  throw new Error(`build the bus first (npx tsc -b packages/bus): ${err.message}`);
});
const { createContext, silentLogger } = await import('../packages/runtime/dist/src/index.js');

/**
 * Printable values, so kcat can read the very same records from a newline-delimited file
 * (a random binary value would contain its delimiters). Keys as in bench/bus-clients.mjs.
 */
function makeRecords() {
  const alphabet = Buffer.from('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789');
  const pool = randomBytes(N * SIZE);
  for (let i = 0; i < pool.length; i++) pool[i] = alphabet[pool[i] % alphabet.length];
  return Array.from({ length: N }, (_, i) => ({
    key: Buffer.from(`vm-${(i % 10_000).toString().padStart(5, '0')}`),
    value: pool.subarray(i * SIZE, (i + 1) * SIZE),
  }));
}

function sh(cmd, args, { stdoutLines = false } = {}) {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let lines = 0;
    let err = '';
    child.stdout.on('data', (d) => {
      if (stdoutLines) for (const b of d) if (b === 10) lines++;
    });
    child.stderr.on('data', (d) => (err += d));
    child.on('error', reject);
    child.on('close', (code) =>
      code === 0 ? resolve(lines) : reject(new Error(`${cmd} exited ${code}: ${err.trim()}`)),
    );
  });
}

async function adapter(brokers, records, security) {
  const bus = createKafkaBus({
    brokers,
    clientId: 'bench',
    ...(security ? { security } : {}),
    ctx: createContext({ log: silentLogger }),
  });
  const topic = `bench.adapter.${Date.now().toString(36)}`;
  try {
    await bus.admin.ensureTopics([{ name: topic, partitions: PARTITIONS, cleanupPolicy: 'delete', retentionMs: -1 }]);
    const producer = bus.producer();
    const t0 = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < records.length) {
        const start = next;
        next += BATCH;
        await producer.send(topic, records.slice(start, start + BATCH));
      }
    };
    await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
    const produceMs = performance.now() - t0;
    await producer.close();

    const t1 = performance.now();
    const consumer = bus.consumer({ groupId: `${topic}.g`, topics: [topic], maxBatchRecords: BATCH });
    let got = 0;
    await new Promise((resolve, reject) => {
      consumer
        .run(async (b) => {
          got += b.records.length;
          if (got >= records.length) resolve();
        })
        .catch(reject);
    });
    const consumeMs = performance.now() - t1;
    await consumer.close();
    if (got !== records.length) throw new Error(`adapter consumed ${got} records, expected ${records.length}`);
    return { produceMs, consumeMs };
  } finally {
    await bus.admin.deleteTopics([topic]).catch(() => {});
    await bus.close();
  }
}

async function kcat(brokers, records, dir) {
  const bus = createKafkaBus({ brokers, clientId: 'bench', ctx: createContext({ log: silentLogger }) });
  const topic = `bench.kcat.${Date.now().toString(36)}`;
  await bus.admin.ensureTopics([{ name: topic, partitions: PARTITIONS, cleanupPolicy: 'delete', retentionMs: -1 }]);
  const file = join(dir, 'records.txt');
  // key<TAB>value per line: kcat -K '\t' splits it back into the same key and value.
  writeFileSync(file, Buffer.concat(records.flatMap((r) => [r.key, Buffer.from('\t'), r.value, Buffer.from('\n')])));
  try {
    const b = brokers.join(',');
    const t0 = performance.now();
    // acks=all like the adapter; murmur2 so keys land where Java clients and the bus put them.
    await sh('kcat', [
      '-P',
      '-b',
      b,
      '-t',
      topic,
      '-K',
      '\t',
      '-z',
      'none',
      '-X',
      'acks=all',
      '-X',
      'partitioner=murmur2_random',
      '-l',
      file,
    ]);
    const produceMs = performance.now() - t0;
    const t1 = performance.now();
    const got = await sh('kcat', ['-C', '-b', b, '-t', topic, '-o', 'beginning', '-e', '-q', '-f', '%p\n'], {
      stdoutLines: true,
    });
    const consumeMs = performance.now() - t1;
    if (got !== records.length) throw new Error(`kcat consumed ${got} records, expected ${records.length}`);
    return { produceMs, consumeMs };
  } finally {
    await bus.admin.deleteTopics([topic]).catch(() => {});
    await bus.close();
  }
}

const records = makeRecords();
let plain = null;
await withBroker(async (brokers) => {
  const bytes = N * SIZE;
  const dir = mkdtempSync(join(tmpdir(), 'cordon-bench-'));
  try {
    // Warm-up (not reported): JIT, connections, and __consumer_offsets on a fresh broker.
    await adapter(brokers, records.slice(0, Math.ceil(N / 20)));
    const a = await adapter(brokers, records);
    const k = await kcat(brokers, records, dir);
    const ar = rate(N, bytes, a.produceMs + a.consumeMs);
    const kr = rate(N, bytes, k.produceMs + k.consumeMs);
    console.log(
      `bus kafka: ${N} records x ${SIZE} B, ${PARTITIONS} partitions, broker ${brokers.join(',')}, node ${process.version}`,
    );
    console.log(
      `bus kafka-adapter produce: ${fmt(rate(N, bytes, a.produceMs))}; consume: ${fmt(rate(N, bytes, a.consumeMs))}`,
    );
    console.log(`bus kcat produce: ${fmt(rate(N, bytes, k.produceMs))}; consume: ${fmt(rate(N, bytes, k.consumeMs))}`);
    console.log(
      `bus kafka-adapter produce+consume: ${fmt(ar)}; kcat: ${fmt(kr)}; ratio ${(ar.recPerSec / kr.recPerSec).toFixed(2)}`,
    );
    plain = { a, ar };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

// kcat is left out here: Debian 12's (librdkafka 2.0.2) cannot SCRAM against Kafka 4.
if (process.env.BENCH_SECURE !== '0') {
  await withSecureBroker(async (brokers, clients) => {
    const { security } = loadKafkaClientConfig(join(clients, 'admin.properties'));
    const bytes = N * SIZE;
    await adapter(brokers, records.slice(0, Math.ceil(N / 20)), security);
    const s = await adapter(brokers, records, security);
    const sr = rate(N, bytes, s.produceMs + s.consumeMs);
    const { a, ar } = plain;
    console.log(
      `bus kafka-adapter SASL_SSL (TLS, SCRAM-SHA-512, ACLs) produce: ${fmt(rate(N, bytes, s.produceMs))}; consume: ${fmt(rate(N, bytes, s.consumeMs))}`,
    );
    console.log(
      `bus kafka-adapter plaintext produce: ${fmt(rate(N, bytes, a.produceMs))}; consume: ${fmt(rate(N, bytes, a.consumeMs))}`,
    );
    console.log(
      `bus kafka-adapter produce+consume plaintext: ${fmt(ar)}; SASL_SSL: ${fmt(sr)}; SASL_SSL/plaintext ${(sr.recPerSec / ar.recPerSec).toFixed(2)} (target >= 0.70)`,
    );
  });
}
