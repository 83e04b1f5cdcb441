/**
 * One behaviour suite for every bus adapter. The Kafka run talks to the real broker started
 * by infra/kafka; the embedded run to a fresh data dir. Topic names are unique per test so
 * runs never see each other's records.
 */
import { describe, test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import {
  partitionForKey,
  readTable,
  type Batch,
  type Bus,
  type ConsumedRecord,
  type ConsumerOptions,
  type TopicSpec,
} from '../src/index.js';

export interface BusUnderTest {
  bus: Bus;
  /** A second, independent connection to the same bus (for the Kafka adapter: a new client). */
  reopen?: () => Promise<Bus>;
  cleanup: () => Promise<void>;
}

const uniq = () => `conf-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
const spec = (name: string, partitions = 3, cleanupPolicy: TopicSpec['cleanupPolicy'] = 'delete'): TopicSpec => ({
  name,
  partitions,
  cleanupPolicy,
  retentionMs: -1,
});

/** Consume with `opts` until `n` records arrived (or fail after `ms`), then close. */
export async function consumeN(bus: Bus, opts: ConsumerOptions, n: number, ms = 30_000): Promise<ConsumedRecord[]> {
  const got: ConsumedRecord[] = [];
  const consumer = bus.consumer(opts);
  let timer: NodeJS.Timeout | undefined;
  await new Promise<void>((resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out with ${got.length}/${n} records`)), ms);
    if (n === 0) resolve();
    consumer
      .run(async (b: Batch) => {
        got.push(...b.records);
        if (got.length >= n) resolve();
      })
      .catch(reject);
  }).finally(() => clearTimeout(timer));
  await consumer.close();
  return got;
}

export function runConformance(name: string, make: () => Promise<BusUnderTest>): void {
  describe(`bus conformance: ${name}`, { timeout: 180_000 }, () => {
    let sut: BusUnderTest;
    let bus: Bus;
    before(async () => {
      sut = await make();
      bus = sut.bus;
    });
    after(async () => {
      await sut?.cleanup();
    });

    test('topics are provisioned idempotently and listed with their partitions', async () => {
      const t = uniq();
      await bus.admin.ensureTopics([spec(t, 4)]);
      await bus.admin.ensureTopics([spec(t, 4)]);
      const listed = (await bus.admin.listTopics()).find((x) => x.name === t);
      assert.deepEqual(listed, { name: t, partitions: 4 });
      await bus.admin.deleteTopics([t]);
    });

    test('keyed records land on the murmur2 partition, in order, with sequential offsets', async () => {
      const t = uniq();
      await bus.admin.ensureTopics([spec(t, 5)]);
      const p = bus.producer();
      const keys = Array.from({ length: 40 }, (_, i) => Buffer.from(`key-${i % 8}`));
      const meta = await p.send(
        t,
        keys.map((key, i) => ({ key, value: Buffer.from(String(i)) })),
      );
      for (let i = 0; i < keys.length; i++) {
        assert.equal(
          meta[i]!.partition,
          partitionForKey(keys[i]!, 5, () => 0),
          `record ${i}`,
        );
      }
      const perPartition = new Map<number, bigint[]>();
      for (const m of meta) perPartition.set(m.partition, [...(perPartition.get(m.partition) ?? []), m.offset]);
      for (const offs of perPartition.values()) offs.forEach((o, i) => assert.equal(o, BigInt(i)));
      const got = await consumeN(bus, { groupId: uniq(), topics: [t] }, 40);
      for (let part = 0; part < 5; part++) {
        const values = got.filter((r) => r.partition === part).map((r) => Number(r.value!.toString()));
        assert.deepEqual(
          values,
          [...values].sort((a, b) => a - b),
          `partition ${part} is in order`,
        );
      }
      const ends = await bus.admin.endOffsets(t);
      assert.equal(
        [...ends.values()].reduce((a, b) => a + b, 0n),
        40n,
      );
      await p.close();
    });

    test('a send larger than a broker batch (1 MiB) arrives whole, in order, with the offsets it was given', async () => {
      const t = uniq();
      await bus.admin.ensureTopics([spec(t, 1)]);
      const p = bus.producer();
      // 3 MiB in one call: the broker refuses a record batch above message.max.bytes
      const values = Array.from({ length: 48 }, (_, i) =>
        Buffer.concat([Buffer.from(`${i}:`), randomBytes(64 * 1024)]),
      );
      const [meta, meta2] = await Promise.all([
        p.send(
          t,
          values.map((value) => ({ key: Buffer.from('k'), value })),
        ),
        p.send(t, [{ key: Buffer.from('k'), value: Buffer.from('after') }]),
      ]);
      assert.deepEqual(
        meta.map((m) => m.offset),
        values.map((_, i) => BigInt(i)),
      );
      assert.equal(meta2[0]!.offset, 48n);
      const got = await consumeN(bus, { groupId: uniq(), topics: [t] }, 49);
      assert.deepEqual(
        got.slice(0, 48).map((r) => r.value),
        values,
      );
      assert.equal(got[48]!.value!.toString(), 'after');
      await p.close();
    });

    test('null keys, null values and headers survive the round trip', async () => {
      const t = uniq();
      await bus.admin.ensureTopics([spec(t, 1)]);
      const p = bus.producer();
      await p.send(t, [
        { key: null, value: Buffer.from('v'), headers: { h1: Buffer.from('x'), h2: Buffer.from([0, 1, 2]) } },
        { key: Buffer.from('k'), value: null },
        { key: Buffer.from(''), value: Buffer.alloc(0) },
      ]);
      const got = await consumeN(bus, { groupId: uniq(), topics: [t] }, 3);
      assert.equal(got[0]!.key, null);
      assert.deepEqual(got[0]!.headers.h1, Buffer.from('x'));
      assert.deepEqual(got[0]!.headers.h2, Buffer.from([0, 1, 2]));
      assert.equal(got[1]!.value, null);
      assert.deepEqual(got[1]!.key, Buffer.from('k'));
      assert.equal(got[2]!.value?.length, 0);
      await p.close();
    });

    test('a group resumes from its committed offset; another group starts over', async () => {
      const t = uniq();
      const g = uniq();
      await bus.admin.ensureTopics([spec(t, 2)]);
      const p = bus.producer();
      await p.send(
        t,
        Array.from({ length: 10 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`a${i}`) })),
      );
      assert.equal((await consumeN(bus, { groupId: g, topics: [t] }, 10)).length, 10);
      const committed = await bus.admin.committedOffsets(g, t);
      assert.equal(
        [...committed.values()].reduce((a, b) => a + b, 0n),
        10n,
      );
      await p.send(
        t,
        Array.from({ length: 5 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`b${i}`) })),
      );
      const second = await consumeN(bus, { groupId: g, topics: [t] }, 5);
      assert.deepEqual(second.map((r) => r.value!.toString()).sort(), ['b0', 'b1', 'b2', 'b3', 'b4']);
      const other = await consumeN(bus, { groupId: uniq(), topics: [t] }, 15);
      assert.equal(other.length, 15);
      await p.close();
    });

    test('fromBeginning: false starts a new group at the end', async () => {
      const t = uniq();
      await bus.admin.ensureTopics([spec(t, 1)]);
      const p = bus.producer();
      await p.send(t, [{ key: null, value: Buffer.from('old') }]);
      const g = uniq();
      const got: string[] = [];
      const c = bus.consumer({ groupId: g, topics: [t], fromBeginning: false });
      let assigned!: () => void;
      const ready = new Promise<void>((r) => (assigned = r));
      const done = new Promise<void>((resolve, reject) => {
        c.run(async (b) => {
          got.push(...b.records.map((r) => r.value!.toString()));
          if (got.includes('new')) resolve();
        }).catch(reject);
      });
      // wait for the assignment, then give the consumer time to fetch (nothing)
      const deadline = Date.now() + 30_000;
      while (c.assignment().length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      assigned();
      await ready;
      await new Promise((r) => setTimeout(r, 1000));
      await p.send(t, [{ key: null, value: Buffer.from('new') }]);
      await done;
      await c.close();
      assert.deepEqual(got, ['new']);
      await p.close();
    });

    test('two members of a group split the partitions; when one leaves the other takes over', async () => {
      const t = uniq();
      const g = uniq();
      await bus.admin.ensureTopics([spec(t, 6)]);
      const p = bus.producer();
      const seen = new Map<string, string[]>();
      const mk = (who: string) => {
        const c = bus.consumer({ groupId: g, topics: [t] });
        const run = c.run(async (b) => {
          for (const r of b.records) seen.set(r.value!.toString(), [...(seen.get(r.value!.toString()) ?? []), who]);
        });
        return { c, run };
      };
      const a = mk('a');
      const b = mk('b');
      const deadline = Date.now() + 60_000;
      while ((a.c.assignment().length === 0 || b.c.assignment().length === 0) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 100));
      }
      const pa = a.c.assignment().map((x) => x.partition);
      const pb = b.c.assignment().map((x) => x.partition);
      assert.equal(pa.length + pb.length, 6, `assignments ${pa} / ${pb}`);
      assert.equal(new Set([...pa, ...pb]).size, 6, 'no partition is owned twice');
      await p.send(
        t,
        Array.from({ length: 60 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) })),
      );
      while (seen.size < 60 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.equal(seen.size, 60);
      assert.ok(
        [...seen.values()].every((w) => w.length === 1),
        'every record delivered once',
      );
      await b.c.close();
      await b.run;
      while (a.c.assignment().length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.equal(a.c.assignment().length, 6, 'the remaining member owns every partition');
      await p.send(
        t,
        Array.from({ length: 30 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`w${i}`) })),
      );
      while (seen.size < 90 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.equal(seen.size, 90);
      assert.ok([...seen.entries()].filter(([k]) => k.startsWith('w')).every(([, w]) => w.join() === 'a'));
      await a.c.close();
      await a.run;
      await p.close();
    });

    test('seek re-reads a partition from an offset, and wins over records already on their way', async () => {
      const t = uniq();
      await bus.admin.ensureTopics([spec(t, 1)]);
      const p = bus.producer();
      await p.send(
        t,
        Array.from({ length: 5 }, (_, i) => ({ key: null, value: Buffer.from(`v${i}`) })),
      );
      const values: string[] = [];
      const c = bus.consumer({ groupId: uniq(), topics: [t] });
      let seeked = false;
      await new Promise<void>((resolve, reject) => {
        c.run(async (b) => {
          values.push(...b.records.map((r) => r.value!.toString()));
          if (!seeked && values.length >= 5) {
            seeked = true;
            // records arriving now may already be fetched for the next round (the Kafka
            // consumer fetches ahead while a batch is handled); the seek must win over them
            await p.send(t, [{ key: null, value: Buffer.from('v5') }]);
            await new Promise((r) => setTimeout(r, 200));
            c.seek({ topic: t, partition: 0, offset: 3n });
          } else if (seeked && values.length >= 8) resolve();
        }).catch(reject);
      });
      await c.close();
      assert.deepEqual(values.slice(5, 8), ['v3', 'v4', 'v5']);
      await p.close();
    });

    test('a failing handler stops the consumer and its batch is delivered again', async () => {
      const t = uniq();
      const g = uniq();
      await bus.admin.ensureTopics([spec(t, 1)]);
      const p = bus.producer();
      await p.send(t, [{ key: null, value: Buffer.from('x') }]);
      const c = bus.consumer({ groupId: g, topics: [t] });
      await assert.rejects(
        c.run(async () => {
          throw new Error('boom');
        }),
        /boom/,
      );
      await c.close();
      const again = await consumeN(bus, { groupId: g, topics: [t] }, 1);
      assert.equal(again[0]!.value!.toString(), 'x');
      await p.close();
    });

    test('a compacted topic reads back as its newest value per key; a tombstone removes the key', async () => {
      const t = uniq();
      await bus.admin.ensureTopics([spec(t, 2, 'compact')]);
      const p = bus.producer();
      await p.send(t, [
        { key: Buffer.from('a'), value: Buffer.from('1') },
        { key: Buffer.from('b'), value: Buffer.from('1') },
        { key: Buffer.from('a'), value: Buffer.from('2') },
        { key: Buffer.from('c'), value: Buffer.from('1') },
        { key: Buffer.from('c'), value: null },
      ]);
      const table = await readTable(bus, t);
      const plain = Object.fromEntries([...table.values()].map((r) => [r.key!.toString(), r.value!.toString()]));
      assert.deepEqual(plain, { a: '2', b: '1' });
      await p.close();
    });

    test('producing to a topic that does not exist is a clear error', async () => {
      const p = bus.producer();
      await assert.rejects(
        p.send(uniq(), [{ key: null, value: Buffer.from('x') }]),
        (err: Error & { code?: string }) => {
          return /exist|unknown/i.test(err.message);
        },
      );
      await p.close();
    });

    test('records survive a reconnect (persistence)', async (t) => {
      if (!sut.reopen) return t.skip('adapter has no reopen');
      const name = uniq();
      await bus.admin.ensureTopics([spec(name, 2)]);
      const p = bus.producer();
      await p.send(
        name,
        Array.from({ length: 20 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: Buffer.from(`v${i}`) })),
      );
      await p.close();
      bus = await sut.reopen();
      const got = await consumeN(bus, { groupId: uniq(), topics: [name] }, 20);
      assert.equal(got.length, 20);
    });
  });
}
