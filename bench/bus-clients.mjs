#!/usr/bin/env node
// Which Kafka client should the bus adapter use? Both candidates move the same N keyed records
// through the real broker: produce (acks=all, batches of BATCH, a few in flight), then one
// consumer in a fresh group reads them all from the beginning. Prints records/s and MB/s.
//   BENCH_RECORDS (200000)  BENCH_VALUE_BYTES (200)  BENCH_PARTITIONS (3)  BENCH_CLIENTS (all)
// Uses KAFKA_BROKERS, or starts and stops a throwaway broker through infra/kafka.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { fmt, makeRecords, rate, withBroker } from './kafka-broker.mjs';

/** The installed version of a package (the candidates' exports hide their package.json). */
const versionOf = (name) =>
  JSON.parse(readFileSync(new URL(`../node_modules/${name}/package.json`, import.meta.url), 'utf8')).version;
const N = Number(process.env.BENCH_RECORDS ?? 200_000);
const SIZE = Number(process.env.BENCH_VALUE_BYTES ?? 200);
const PARTITIONS = Number(process.env.BENCH_PARTITIONS ?? 3);
const BATCH = 1000;
const IN_FLIGHT = 4;
let run = Date.now().toString(36);

/** Kafka's (Java client's) partitioner, so both clients place keys identically. */
function murmur2(data) {
  const m = 0x5bd1e995;
  let h = (0x9747b28c ^ data.length) | 0;
  const n4 = data.length >>> 2;
  for (let i = 0; i < n4; i++) {
    let k = data.readInt32LE(i * 4);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const b = data.length & ~3;
  switch (data.length & 3) {
    case 3:
      h ^= data[b + 2] << 16; // falls through
    case 2:
      h ^= data[b + 1] << 8; // falls through
    case 1:
      h ^= data[b];
      h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h;
}
const partitionOf = (key) => (murmur2(key) & 0x7fffffff) % PARTITIONS;

/** Send `records` in batches with at most IN_FLIGHT sends outstanding. */
async function pump(records, send) {
  let next = 0;
  const worker = async () => {
    while (next < records.length) {
      const start = next;
      next += BATCH;
      await send(records.slice(start, start + BATCH));
    }
  };
  await Promise.all(Array.from({ length: IN_FLIGHT }, worker));
}

const candidates = {
  /** Cordon's own Kafka adapter (packages/bus: its producer and consumer over @platformatic/kafka's connections). */
  async cordon(brokers, records) {
    const { createKafkaBus } = await import('../packages/bus/dist/src/index.js');
    const { createContext, silentLogger } = await import('../packages/runtime/dist/src/index.js');
    const version = JSON.parse(readFileSync(new URL('../packages/bus/package.json', import.meta.url), 'utf8')).version;
    const bus = createKafkaBus({ brokers, clientId: 'bench', ctx: createContext({ log: silentLogger }) });
    const topic = `bench.cordon.${run}`;
    await bus.admin.ensureTopics([{ name: topic, partitions: PARTITIONS, cleanupPolicy: 'delete', retentionMs: -1 }]);
    const producer = bus.producer();
    const t0 = performance.now();
    await pump(records, (batch) => producer.send(topic, batch));
    const produceMs = performance.now() - t0;
    await producer.close();
    const t1 = performance.now();
    let firstMs = 0;
    let got = 0;
    let bytes = 0;
    const consumer = bus.consumer({ groupId: `${topic}.g`, topics: [topic], maxBatchRecords: BATCH });
    await new Promise((resolve, reject) => {
      consumer
        .run(async (b) => {
          if (got === 0) firstMs = performance.now() - t1;
          got += b.records.length;
          for (const r of b.records) bytes += r.value.length;
          if (got >= records.length) resolve();
        })
        .catch(reject);
    });
    const consumeMs = performance.now() - t1;
    await consumer.close();
    await bus.admin.deleteTopics([topic]).catch(() => {});
    await bus.close();
    return { version: `bus ${version}`, produceMs, consumeMs, firstMs, bytes };
  },
  async platformatic(brokers, records) {
    const { Admin, Producer, Consumer, ProduceAcks } = await import('@platformatic/kafka');
    const version = versionOf('@platformatic/kafka');
    const topic = `bench.platformatic.${run}`;
    const admin = new Admin({ clientId: 'bench-admin', bootstrapBrokers: brokers });
    await admin.createTopics({ topics: [topic], partitions: PARTITIONS, replicas: 1 });
    await admin.close();

    const producer = new Producer({ clientId: 'bench-producer', bootstrapBrokers: brokers, acks: ProduceAcks.ALL });
    const t0 = performance.now();
    await pump(records, (batch) =>
      producer.send({
        messages: batch.map((r) => ({ topic, key: r.key, value: r.value, partition: partitionOf(r.key) })),
      }),
    );
    const produceMs = performance.now() - t0;
    await producer.close();

    const consumer = new Consumer({ clientId: 'bench-consumer', groupId: `bench-${run}-p`, bootstrapBrokers: brokers });
    const t1 = performance.now();
    const stream = await consumer.consume({
      topics: [topic],
      mode: 'committed',
      fallbackMode: 'earliest',
      autocommit: true,
      maxWaitTime: 100,
    });
    let got = 0;
    let bytes = 0;
    let firstMs = 0;
    await new Promise((resolve, reject) => {
      stream.on('error', reject);
      stream.on('data', (msg) => {
        if (got === 0) firstMs = performance.now() - t1;
        if (got === records.length) return;
        got++;
        bytes += msg.value.length;
        if (got === records.length) resolve();
      });
    });
    const consumeMs = performance.now() - t1;
    await stream.close();
    await consumer.close(true);
    return { version, produceMs, consumeMs, firstMs, bytes };
  },

  async confluent(brokers, records) {
    let mod;
    try {
      mod = (await import('@confluentinc/kafka-javascript')).default;
    } catch (err) {
      return {
        skipped: `not installed (${err.code ?? err.message}); install it with CKJS_LINKING=dynamic, see infra/kafka/deps.sh`,
      };
    }
    const { KafkaJS } = mod;
    const version = versionOf('@confluentinc/kafka-javascript');
    const topic = `bench.confluent.${run}`;
    const kafka = new KafkaJS.Kafka({ kafkaJS: { brokers, clientId: 'bench', logLevel: KafkaJS.logLevel.ERROR } });
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] });
    await admin.disconnect();

    const producer = kafka.producer({ kafkaJS: { acks: -1 }, 'linger.ms': 5 });
    await producer.connect();
    const t0 = performance.now();
    await pump(records, (batch) =>
      producer.send({
        topic,
        messages: batch.map((r) => ({ key: r.key, value: r.value, partition: partitionOf(r.key) })),
      }),
    );
    const produceMs = performance.now() - t0;
    await producer.disconnect();

    const consumer = kafka.consumer({
      kafkaJS: { groupId: `bench-${run}-c`, fromBeginning: true, autoCommit: true },
      'js.consumer.max.batch.size': BATCH,
    });
    const t1 = performance.now();
    await consumer.connect();
    await consumer.subscribe({ topics: [topic] });
    let got = 0;
    let bytes = 0;
    let firstMs = 0;
    await new Promise((resolve, reject) => {
      consumer
        .run({
          partitionsConsumedConcurrently: PARTITIONS,
          eachBatch: async ({ batch }) => {
            if (got === 0) firstMs = performance.now() - t1;
            if (got >= records.length) return;
            for (const m of batch.messages) bytes += m.value.length;
            got += batch.messages.length;
            if (got >= records.length) resolve();
          },
        })
        .catch(reject);
    });
    const consumeMs = performance.now() - t1;
    await consumer.disconnect();
    return { version, produceMs, consumeMs, firstMs, bytes };
  },

  // librdkafka's own API (no KafkaJS layer): the ceiling of the native client from JS.
  async 'confluent-native'(brokers, records) {
    let mod;
    try {
      mod = (await import('@confluentinc/kafka-javascript')).default;
    } catch (err) {
      return { skipped: `not installed (${err.code ?? err.message})` };
    }
    const { KafkaJS, Producer, KafkaConsumer } = mod;
    const version = `${versionOf('@confluentinc/kafka-javascript')} (librdkafka ${mod.librdkafkaVersion})`;
    const topic = `bench.confluent-native.${run}`;
    const admin = new KafkaJS.Kafka({
      kafkaJS: { brokers, clientId: 'bench', logLevel: KafkaJS.logLevel.ERROR },
    }).admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic, numPartitions: PARTITIONS, replicationFactor: 1 }] });
    await admin.disconnect();

    const producer = new Producer({ 'bootstrap.servers': brokers.join(','), acks: -1, 'linger.ms': 5, dr_cb: true });
    await new Promise((resolve, reject) => producer.connect({}, (err) => (err ? reject(err) : resolve())));
    producer.setPollInterval(10);
    const t0 = performance.now();
    let acked = 0;
    const delivered = new Promise((resolve, reject) =>
      producer.on('delivery-report', (err) => (err ? reject(err) : ++acked === records.length && resolve())),
    );
    for (const r of records) {
      for (;;) {
        try {
          producer.produce(topic, partitionOf(r.key), r.value, r.key);
          break;
        } catch {
          await new Promise((resolve) => setTimeout(resolve, 1)); // local queue full: let it drain
        }
      }
    }
    await delivered;
    const produceMs = performance.now() - t0;
    await new Promise((resolve) => producer.disconnect(resolve));

    const consumer = new KafkaConsumer(
      { 'bootstrap.servers': brokers.join(','), 'group.id': `bench-${run}-n`, 'enable.auto.commit': true },
      { 'auto.offset.reset': 'earliest' },
    );
    const t1 = performance.now();
    await new Promise((resolve, reject) => consumer.connect({}, (err) => (err ? reject(err) : resolve())));
    consumer.subscribe([topic]);
    let got = 0;
    let bytes = 0;
    let firstMs = 0;
    while (got < records.length) {
      const msgs = await new Promise((resolve, reject) =>
        consumer.consume(BATCH, (err, m) => (err ? reject(err) : resolve(m))),
      );
      if (got === 0 && msgs.length) firstMs = performance.now() - t1;
      for (const m of msgs.slice(0, records.length - got)) bytes += m.value.length;
      got += msgs.length;
    }
    const consumeMs = performance.now() - t1;
    await new Promise((resolve) => consumer.disconnect(resolve));
    return { version, produceMs, consumeMs, firstMs, bytes };
  },
};

await withBroker(async (brokers) => {
  const records = makeRecords(N, SIZE);
  const bytes = N * SIZE;
  const only = process.env.BENCH_CLIENTS?.split(',');
  console.log(
    `bus-clients: ${N} records x ${SIZE} B, ${PARTITIONS} partitions, broker ${brokers.join(',')}, node ${process.version}`,
  );
  for (const [name, bench] of Object.entries(candidates)) {
    if (only && !only.includes(name)) continue;
    // Warm-up, not reported: JIT, connections, and on a fresh broker the creation of
    // __consumer_offsets, which would otherwise be charged to whichever client runs first.
    const warm = await bench(brokers, records.slice(0, Math.ceil(N / 20)));
    if (warm.skipped) {
      console.log(`${name}: skipped, ${warm.skipped}`);
      continue;
    }
    run = `${run}-m`;
    const r = await bench(brokers, records);
    if (r.bytes !== bytes) throw new Error(`${name} consumed ${r.bytes} value bytes, expected ${bytes}`);
    console.log(
      `${name} ${r.version}: produce ${fmt(rate(N, bytes, r.produceMs))}; consume ${fmt(rate(N, bytes, r.consumeMs))}; ` +
        `produce+consume ${fmt(rate(N, bytes, r.produceMs + r.consumeMs))} ` +
        `(first record ${Math.round(r.firstMs)} ms after subscribing; consume after it ${fmt(rate(N, bytes, r.consumeMs - r.firstMs))})`,
    );
  }
});
