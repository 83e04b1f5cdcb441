/**
 * Smoke test of the Kafka adapter against the real broker in KAFKA_BROKERS. It starts nothing:
 * the test script starts the broker (infra/kafka/start.sh). Unset or unreachable is a failure.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { createContext, silentLogger } from '@cordon/runtime';
import {
  createKafkaBus,
  ERR_KAFKA_UNREACHABLE,
  ERR_UNKNOWN_TOPIC,
  partitionForKey,
  type ConsumedRecord,
} from '../src/index.js';
import {
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
  rangeAssign,
} from '../src/kafka/group-protocol.js';

const brokers = process.env.KAFKA_BROKERS?.split(',').filter(Boolean) ?? [];
const ctx = createContext({ log: silentLogger });

test('KAFKA_BROKERS names a running broker', async () => {
  assert.ok(brokers.length > 0, 'KAFKA_BROKERS is not set; start a broker with infra/kafka/start.sh');
  const bus = createKafkaBus({ brokers, ctx });
  try {
    await bus.admin.listTopics();
  } finally {
    await bus.close();
  }
});

test('produce, then consume in a group, round-trips keys, values, headers and offsets', async () => {
  const bus = createKafkaBus({ brokers, clientId: 'smoke', ctx });
  const topic = `smoke-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  try {
    await bus.admin.ensureTopics([{ name: topic, partitions: 3, cleanupPolicy: 'delete', retentionMs: -1 }]);
    const p = bus.producer();
    const records = Array.from({ length: 300 }, (_, i) => ({
      key: Buffer.from(`vm-${i % 17}`),
      value: Buffer.from(`v${i}`),
      headers: { source: Buffer.from('smoke') },
      timestamp: 1_700_000_000_000 + i,
    }));
    const meta = await p.send(topic, records);
    meta.forEach((m, i) =>
      assert.equal(
        m.partition,
        partitionForKey(records[i]!.key, 3, () => 0),
      ),
    );
    await p.close();

    const got: ConsumedRecord[] = [];
    const c = bus.consumer({ groupId: `${topic}-g`, topics: [topic], maxBatchRecords: 50 });
    await new Promise<void>((resolve, reject) => {
      c.run(async (b) => {
        assert.ok(b.records.length <= 50, 'maxBatchRecords is honoured');
        got.push(...b.records);
        if (got.length >= records.length) resolve();
      }).catch(reject);
    });
    await c.close();
    assert.equal(got.length, records.length);
    const byValue = new Map(got.map((r) => [r.value!.toString(), r]));
    records.forEach((r, i) => {
      const g = byValue.get(`v${i}`)!;
      assert.deepEqual(g.key, r.key);
      assert.equal(g.partition, meta[i]!.partition);
      assert.equal(g.offset, meta[i]!.offset);
      assert.equal(g.timestamp, r.timestamp);
      assert.deepEqual(g.headers.source, Buffer.from('smoke'));
    });
    const committed = await bus.admin.committedOffsets(`${topic}-g`, topic);
    assert.deepEqual(committed, await bus.admin.endOffsets(topic));
  } finally {
    await bus.admin.deleteTopics([topic]);
    await bus.close();
  }
});

test('a consumer of a missing topic fails with CORDON_ERR_BUS_UNKNOWN_TOPIC', async () => {
  const bus = createKafkaBus({ brokers, ctx });
  try {
    const c = bus.consumer({ groupId: 'smoke-missing', topics: ['smoke-no-such-topic'] });
    await assert.rejects(
      c.run(async () => {}),
      (err) => ERR_UNKNOWN_TOPIC.is(err),
    );
    await c.close();
  } finally {
    await bus.close();
  }
});

test('an unreachable broker is CORDON_ERR_BUS_KAFKA_UNREACHABLE', async () => {
  const bus = createKafkaBus({ brokers: ['127.0.0.1:1'], ctx });
  try {
    await assert.rejects(bus.admin.listTopics(), (err) => ERR_KAFKA_UNREACHABLE.is(err));
  } finally {
    await bus.close();
  }
});

test('group protocol encodings round-trip and the range assignor matches Kafka', () => {
  assert.deepEqual(decodeSubscription(encodeSubscription(['a', 'b'])), ['a', 'b']);
  const tps = [
    { topic: 'a', partition: 0 },
    { topic: 'a', partition: 2 },
    { topic: 'b', partition: 1 },
  ];
  assert.deepEqual(decodeAssignment(encodeAssignment(tps)), tps);
  assert.deepEqual(decodeAssignment(Buffer.alloc(0)), []);
  // 7 partitions over 3 members: 3, 2, 2 in member-id order (Kafka's RangeAssignor).
  const out = rangeAssign(
    new Map([
      ['m2', ['t']],
      ['m1', ['t']],
      ['m3', ['t']],
    ]),
    new Map([['t', 7]]),
  );
  assert.deepEqual(
    out.get('m1')!.map((x) => x.partition),
    [0, 1, 2],
  );
  assert.deepEqual(
    out.get('m2')!.map((x) => x.partition),
    [3, 4],
  );
  assert.deepEqual(
    out.get('m3')!.map((x) => x.partition),
    [5, 6],
  );
});

test('onRevoke finishes before another member is assigned the partition (eager rebalance)', async () => {
  const bus = createKafkaBus({ brokers, clientId: 'smoke', ctx });
  const topic = `smoke-rb-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const groupId = `${topic}-g`;
  const events: string[] = [];
  const waitFor = async (cond: () => boolean, what: string) => {
    const deadline = Date.now() + 30_000;
    while (!cond()) {
      assert.ok(Date.now() < deadline, `timed out waiting for ${what}; events: ${events.join(' ')}`);
      await new Promise((r) => setTimeout(r, 50));
    }
  };
  try {
    await bus.admin.ensureTopics([{ name: topic, partitions: 2, cleanupPolicy: 'delete', retentionMs: -1 }]);
    const a = bus.consumer({
      groupId,
      topics: [topic],
      onAssign: (tps) => void events.push(`a+${tps.length}`),
      // A stage checkpoints here; the slow checkpoint must hold the other member back.
      onRevoke: async (tps) => {
        await new Promise((r) => setTimeout(r, 500));
        events.push(`a-${tps.length}`);
      },
    });
    const runA = a.run(async () => {});
    await waitFor(() => a.assignment().length === 2, 'the first member to own both partitions');
    const b = bus.consumer({ groupId, topics: [topic], onAssign: (tps) => void events.push(`b+${tps.length}`) });
    const runB = b.run(async () => {});
    await waitFor(() => events.includes('b+1') && events.includes('a+1'), 'the partitions to be split');
    assert.ok(
      events.indexOf('a-2') >= 0 && events.indexOf('a-2') < events.indexOf('b+1'),
      `order: ${events.join(' ')}`,
    );
    await b.close();
    await runB;
    await waitFor(() => a.assignment().length === 2, 'the remaining member to take both partitions back');
    await a.close();
    await runA;
  } finally {
    await bus.admin.deleteTopics([topic]);
    await bus.close();
  }
});

test("a stage's onAssign that fails — even with a network-looking error — ends the consumer at once, never retried as the cluster's unavailability", async () => {
  const bus = createKafkaBus({ brokers, clientId: 'smoke', ctx });
  const topic = `smoke-oa-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  try {
    await bus.admin.ensureTopics([{ name: topic, partitions: 1, cleanupPolicy: 'delete', retentionMs: -1 }]);
    let calls = 0;
    const boom = Object.assign(new Error('the checkpoint store is unreachable'), { code: 'ECONNREFUSED' });
    const c = bus.consumer({
      groupId: `${topic}-g`,
      topics: [topic],
      onAssign: () => {
        calls++;
        throw boom;
      },
    });
    const t0 = Date.now();
    await assert.rejects(
      c.run(async () => {}),
      (err: Error & { cause?: unknown }) => {
        const chain: unknown[] = [];
        for (let e: unknown = err; e && chain.length < 5; e = (e as { cause?: unknown }).cause) chain.push(e);
        assert.ok(chain.includes(boom), `the stage's own error ends it: ${String(err)}`);
        return true;
      },
    );
    assert.equal(calls, 1, 'onAssign ran once: not retried');
    assert.ok(Date.now() - t0 < 30_000, 'not waited out for the unavailability budget');
  } finally {
    await bus.admin.deleteTopics([topic]);
    await bus.close();
  }
});

test('a send made while the producer waits for its last answers is sent, not left in the queue', async () => {
  // the pipelined producer once left such a send queued until some later send came: a stage
  // stopping after its last send then waited forever (the protection-loop test hung in CI)
  const bus = createKafkaBus({ brokers, clientId: 'smoke-tail', ctx });
  const topic = `smoke-tail-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  try {
    await bus.admin.ensureTopics([{ name: topic, partitions: 1, cleanupPolicy: 'delete', retentionMs: -1 }]);
    const p = bus.producer();
    await p.send(topic, [{ key: null, value: Buffer.from('warm') }]);
    for (let round = 0; round < 20; round++) {
      // the second send lands at varying points of the first one's request
      const first = p.send(topic, [{ key: null, value: Buffer.from(`a${round}`) }]);
      for (let turns = 0; turns < round % 5; turns++) await new Promise((r) => setImmediate(r));
      const second = p.send(topic, [{ key: null, value: Buffer.from(`b${round}`) }]);
      let timer: NodeJS.Timeout | undefined;
      const stuck = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`round ${round}: a send never answered`)), 10_000);
      });
      try {
        const [a, b] = (await Promise.race([Promise.all([first, second]), stuck])) as [
          { offset: bigint }[],
          { offset: bigint }[],
        ];
        assert.equal(b[0]!.offset, a[0]!.offset + 1n, 'the second send right after the first');
      } finally {
        clearTimeout(timer);
      }
    }
    await p.close();
  } finally {
    await bus.close();
  }
});
