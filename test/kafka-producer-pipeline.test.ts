/**
 * The Kafka producer keeps two requests of a topic class in flight (producer.ts, PIPELINE).
 * Here many concurrent senders produce numbered records while the broker is killed with -9 and
 * started again on its data, so requests in flight fail, later ones are refused for a missing
 * earlier batch, and all are sent again: afterwards every record is on the topic exactly once,
 * at the offset its send returned, and each sender's records are in its send order in every
 * partition. A broker of the test's own (CORDON_PIPELINE_KAFKA_PORT, 29470).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createContext, silentLogger } from '@cordon/runtime';
import { createKafkaBus, type Batch, type Bus } from '@cordon/bus';
import { javaMissing, ownKafka } from './lib/own-kafka.js';

const PORT = Number(process.env.CORDON_PIPELINE_KAFKA_PORT ?? 29_470);
const SENDERS = 8;
const SEND = 400;
const PER_SENDER = 30 * SEND;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function readAll(bus: Bus, topic: string, n: number): Promise<Map<string, string>> {
  const byPlace = new Map<string, string>();
  const consumer = bus.consumer({ groupId: `${topic}.check`, topics: [topic], maxBatchRecords: 5000 });
  let count = 0;
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`read ${count} of ${n} records in 60 s`)), 60_000);
    consumer
      .run(async (b: Batch) => {
        for (const r of b.records) {
          byPlace.set(`${r.partition}:${r.offset}`, r.value!.toString());
          count++;
        }
        if (count >= n) resolve();
      })
      .catch(reject);
  }).finally(() => clearTimeout(timer));
  // anything past n (a record written twice) arrives within a fetch or two
  await sleep(1500);
  await consumer.close();
  assert.equal(count, n, 'as many records on the topic as were sent');
  return byPlace;
}

test(
  'Kafka producer: pipelined requests across a broker kill -9 and restart — every record once, at its returned offset, in send order',
  { skip: javaMissing(), timeout: 300_000 },
  async (t) => {
    const kafka = ownKafka(PORT);
    t.after(() => kafka.stop());
    const brokers = await kafka.start();
    const ctx = createContext({ log: silentLogger });
    const bus = createKafkaBus({ brokers, clientId: 'pipeline-test', ctx });
    t.after(() => bus.close());
    const topic = 'pipeline.numbered';
    await bus.admin.ensureTopics([{ name: topic, partitions: 3, cleanupPolicy: 'delete', retentionMs: -1 }]);
    const producer = bus.producer();

    // value "sender:i"; the key spreads each sender's records over the partitions
    const placed = new Map<string, string>();
    let sentRecords = 0;
    // each sender keeps three sends outstanding: its order is the order of its send calls
    const sender = async (s: number) => {
      const outstanding: Promise<void>[] = [];
      for (let from = 0; from < PER_SENDER; from += SEND) {
        const records = Array.from({ length: SEND }, (_, j) => ({
          key: Buffer.from(`k${(from + j) % 97}`),
          value: Buffer.from(`${s}:${from + j}`),
        }));
        outstanding.push(
          producer.send(topic, records).then((meta) => {
            meta.forEach((m, j) => placed.set(`${m.partition}:${m.offset}`, `${s}:${from + j}`));
            sentRecords += SEND;
          }),
        );
        if (outstanding.length >= 3) await outstanding.shift();
      }
      await Promise.all(outstanding);
    };
    const sending = Promise.all(Array.from({ length: SENDERS }, (_, s) => sender(s)));
    let ended = false;
    sending.then(
      () => (ended = true),
      () => (ended = true),
    );
    // the kill lands while requests are in flight
    while (!ended && sentRecords < (SENDERS * PER_SENDER) / 4) await sleep(5);
    kafka.kill9();
    await sleep(1000);
    await kafka.start('--keep-data');
    await sending;
    await producer.close();
    const total = SENDERS * PER_SENDER;
    assert.equal(placed.size, total, 'every send returned distinct offsets for its records');

    const onTopic = await readAll(bus, topic, total);
    for (const [place, value] of placed) assert.equal(onTopic.get(place), value, `the record at ${place}`);
    const seen = new Set(onTopic.values());
    assert.equal(seen.size, total, 'no record twice');
    // each sender's records, partition by partition, in the order it sent them
    const last = new Map<string, number>();
    const places = [...onTopic.keys()]
      .map((k) => k.split(':').map(Number) as [number, number])
      .sort((a, b) => a[0] - b[0] || a[1] - b[1]);
    for (const [p, o] of places) {
      const [s, i] = onTopic.get(`${p}:${o}`)!.split(':').map(Number) as [number, number];
      const k = `${p}/${s}`;
      assert.ok((last.get(k) ?? -1) < i, `sender ${s}'s records in order in partition ${p}`);
      last.set(k, i);
    }
    t.diagnostic(`${total} records from ${SENDERS} senders across a broker kill -9 and restart`);
  },
);
