/**
 * The control and the bulk path of the Kafka adapter are tuned apart (src/kafka/tuning.ts):
 * each topic class gets its own linger and fetch settings, seen on the real broker in
 * KAFKA_BROKERS (the broker holding a fetch for fetchMinBytes, the producer lingering), and a
 * bad setting is a coded error.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createContext, silentLogger } from '@cordon/runtime';
import { createKafkaBus, DEFAULT_TUNING, resolveTuning, topicClass, type ConsumedRecord } from '../src/index.js';
import { LINGER_BURST } from '../src/kafka/producer.js';

const brokers = process.env.KAFKA_BROKERS?.split(',').filter(Boolean) ?? [];
const ctx = createContext({ log: silentLogger });
const uniq = (what: string) => `tuning-${what}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;

test('topics fall in their class: packets, flows, logs, fim and siem are bulk, alerts and blocks control', () => {
  const t = resolveTuning();
  for (const b of ['cordon.packets.v1', 'cordon.logs.v1', 'cordon.flows.v1', 'cordon.fim.v1', 'cordon.siem.v1'])
    assert.equal(topicClass(b, t), 'bulk', b);
  for (const c of ['cordon.alerts.v1', 'cordon.blocks.v1', 'cordon.policy.v1', 'cordon.agent-commands.v1'])
    assert.equal(topicClass(c, t), 'control', c);
  const p = resolveTuning({ bulkTopics: ['bench.*', 'exact'] });
  assert.equal(topicClass('bench.x', p), 'bulk');
  assert.equal(topicClass('exact', p), 'bulk');
  assert.equal(topicClass('exactly', p), 'control');
  assert.equal(topicClass('cordon.packets.v1', p), 'control', 'bulkTopics replaces the default list');
});

test('bad tuning is refused with CORDON_ERR_BUS_KAFKA_TUNING before anything connects', () => {
  for (const bad of [
    { control: { lingerMs: -1 } },
    { bulk: { fetchMaxWaitMs: 1.5 } },
    { bulk: { fetchMinBytes: Number.NaN } },
    { control: { lingerMs: 5_000 } },
    { bulkTopics: ['*'] },
    { bulkTopics: ['a*b'] },
    { bulkTopics: [''] },
  ])
    assert.throws(
      () => createKafkaBus({ brokers: ['127.0.0.1:1'], tuning: bad as never, ctx }),
      (e: Error & { code?: string }) => e.code === 'CORDON_ERR_BUS_KAFKA_TUNING',
      JSON.stringify(bad),
    );
  assert.deepEqual(resolveTuning({ bulk: { lingerMs: 7 } }).bulk, { ...DEFAULT_TUNING.bulk, lingerMs: 7 });
});

/** ms from the send until a consumer (already waiting in a fetch) hands the record over. */
async function deliveryMs(bus: ReturnType<typeof createKafkaBus>, topic: string): Promise<number> {
  await bus.admin.ensureTopics([{ name: topic, partitions: 1, cleanupPolicy: 'delete', retentionMs: -1 }]);
  let assigned!: () => void;
  const ready = new Promise<void>((r) => (assigned = r));
  let got!: (r: ConsumedRecord) => void;
  const arrived = new Promise<ConsumedRecord>((r) => (got = r));
  const c = bus.consumer({
    groupId: `${topic}-g`,
    topics: [topic],
    fromBeginning: false,
    onAssign: () => assigned(),
  });
  const running = c.run(async (b) => got(b.records[0]!));
  await ready;
  // let the first fetch reach the broker and wait there
  await new Promise((r) => setTimeout(r, 300));
  const p = bus.producer();
  const t0 = performance.now();
  await p.send(topic, [{ key: null, value: Buffer.from('x') }]);
  await arrived;
  const ms = performance.now() - t0;
  await p.close();
  await c.close();
  await running;
  return ms;
}

test('the broker holds a bulk fetch for its fetchMinBytes, a control fetch returns at the first record', async () => {
  assert.ok(brokers.length > 0, 'KAFKA_BROKERS is not set; start a broker with infra/kafka/start.sh');
  const bulkTopic = uniq('bulk');
  const controlTopic = uniq('control');
  const bus = createKafkaBus({
    brokers,
    clientId: 'tuning',
    ctx,
    tuning: {
      bulkTopics: [bulkTopic],
      // a bulk fetch waits for 1 MiB or 1.5 s, whichever comes first: one record waits the 1.5 s
      bulk: { fetchMinBytes: 1024 * 1024, fetchMaxWaitMs: 1500 },
      control: { fetchMinBytes: 1, fetchMaxWaitMs: 1500 },
    },
  });
  try {
    const control = await deliveryMs(bus, controlTopic);
    const bulk = await deliveryMs(bus, bulkTopic);
    assert.ok(control < 700, `a control record arrived after ${control.toFixed(0)} ms`);
    assert.ok(bulk >= 1000, `a bulk record arrived after ${bulk.toFixed(0)} ms, before the bulk fetch wait`);
  } finally {
    await bus.admin.deleteTopics([bulkTopic, controlTopic]).catch(() => undefined);
    await bus.close();
  }
});

test('bulk sends after a quiet spell leave at once (the burst allowance); under traffic bulk sends linger together; a control send never queues behind bulk', async () => {
  assert.ok(brokers.length > 0, 'KAFKA_BROKERS is not set; start a broker with infra/kafka/start.sh');
  const bulkTopic = uniq('lbulk');
  const controlTopic = uniq('lcontrol');
  const bus = createKafkaBus({
    brokers,
    clientId: 'tuning',
    ctx,
    tuning: { bulkTopics: [bulkTopic], bulk: { lingerMs: 800 }, control: { lingerMs: 0 } },
  });
  try {
    await bus.admin.ensureTopics([
      { name: bulkTopic, partitions: 1, cleanupPolicy: 'delete', retentionMs: -1 },
      { name: controlTopic, partitions: 1, cleanupPolicy: 'delete', retentionMs: -1 },
    ]);
    const p = bus.producer();
    // warm: producer id and connection
    await p.send(controlTopic, [{ key: null, value: Buffer.from('warm') }]);
    // the bulk queue has been quiet (never used): its burst allowance leaves at once
    const q0 = performance.now();
    for (let i = 0; i < LINGER_BURST; i++) await p.send(bulkTopic, [{ key: null, value: Buffer.from(`b0.${i}`) }]);
    const quietMs = performance.now() - q0;
    // traffic: the allowance is spent and the last request left just now, so these wait for company
    const bulkSends = [p.send(bulkTopic, [{ key: null, value: Buffer.from('b1') }])];
    await new Promise((r) => setTimeout(r, 100));
    // sent while the bulk queue lingers: merged into its request
    bulkSends.push(p.send(bulkTopic, [{ key: null, value: Buffer.from('b2') }]));
    const c0 = performance.now();
    const [control] = await p.send(controlTopic, [{ key: null, value: Buffer.from('c') }]);
    const controlMs = performance.now() - c0;
    const bulk = await Promise.all(bulkSends);
    const bulkMs = performance.now() - q0;
    await p.close();
    assert.ok(
      quietMs < 500,
      `the first ${LINGER_BURST} bulk sends after a quiet spell took ${quietMs.toFixed(0)} ms (lingered)`,
    );
    assert.ok(controlMs < 500, `the control send took ${controlMs.toFixed(0)} ms while bulk lingered`);
    assert.ok(
      bulkMs >= 750,
      `the bulk sends under traffic returned ${bulkMs.toFixed(0)} ms after the previous one left, before the linger`,
    );
    assert.equal(control!.offset, 1n);
    // one request: the two bulk sends got consecutive offsets of one batch
    assert.deepEqual(
      bulk.map((m) => m[0]!.offset),
      [BigInt(LINGER_BURST), BigInt(LINGER_BURST + 1)],
    );
  } finally {
    await bus.admin.deleteTopics([bulkTopic, controlTopic]).catch(() => undefined);
    await bus.close();
  }
});

test('concurrent sends on both lanes land once each, at the offsets the sends returned', async () => {
  assert.ok(brokers.length > 0, 'KAFKA_BROKERS is not set; start a broker with infra/kafka/start.sh');
  const bulkTopic = uniq('cbulk');
  const controlTopic = uniq('ccontrol');
  const bus = createKafkaBus({ brokers, clientId: 'tuning', ctx, tuning: { bulkTopics: [bulkTopic] } });
  try {
    await bus.admin.ensureTopics(
      [bulkTopic, controlTopic].map((name) => ({
        name,
        partitions: 3,
        cleanupPolicy: 'delete' as const,
        retentionMs: -1,
      })),
    );
    const p = bus.producer();
    const sends = [];
    for (let s = 0; s < 20; s++)
      for (const topic of [bulkTopic, controlTopic])
        sends.push(
          p
            .send(
              topic,
              Array.from({ length: 300 }, (_, i) => ({
                key: Buffer.from(`k${(s * 7 + i) % 50}`),
                value: Buffer.from(`${topic}:${s}:${i}`),
              })),
            )
            .then((meta) =>
              meta.map((m, i) => [`${m.topic}/${m.partition}/${m.offset}`, `${topic}:${s}:${i}`] as const),
            ),
        );
    const placed = new Map((await Promise.all(sends)).flat());
    await p.close();
    assert.equal(placed.size, 2 * 20 * 300, 'every record got its own offset');
    const got = new Map<string, string>();
    const c = bus.consumer({ groupId: `${bulkTopic}-g`, topics: [bulkTopic, controlTopic] });
    await new Promise<void>((resolve, reject) => {
      c.run(async (b) => {
        for (const r of b.records) got.set(`${r.topic}/${r.partition}/${r.offset}`, r.value!.toString());
        if (got.size >= placed.size) resolve();
      }).catch(reject);
    });
    await c.close();
    assert.equal(got.size, placed.size);
    for (const [where, value] of placed) assert.equal(got.get(where), value, where);
    const ends = await Promise.all([bulkTopic, controlTopic].map((t) => bus.admin.endOffsets(t)));
    assert.equal(
      ends.flatMap((e) => [...e.values()]).reduce((a, b) => a + b, 0n),
      BigInt(placed.size),
      'nothing written twice',
    );
  } finally {
    await bus.admin.deleteTopics([bulkTopic, controlTopic]).catch(() => undefined);
    await bus.close();
  }
});
