import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, ManualClock, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, murmur2, readTable } from '../src/index.js';
import { consumeN } from './conformance.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'cordon-bus-'));

test("murmur2 matches the vectors of Kafka's own partitioner tests", () => {
  const cases: Array<[string, number]> = [
    ['21', -973932308],
    ['foobar', -790332482],
    ['a-little-bit-long-string', -985981536],
    ['a-little-bit-longer-string', -1486304829],
    ['lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8', -58897971],
    ['abc', 479470107],
  ];
  for (const [s, want] of cases) assert.equal(murmur2(Buffer.from(s)), want, s);
});

test('a torn write at the tail of a partition log is truncated; earlier records survive', async () => {
  const dir = tmp();
  const ctx = createContext({ log: silentLogger });
  let bus = createEmbeddedBus({ dataDir: dir, ctx });
  await bus.admin.ensureTopics([{ name: 't', partitions: 1, cleanupPolicy: 'delete', retentionMs: -1 }]);
  await bus.producer().send('t', [
    { key: null, value: Buffer.from('one') },
    { key: null, value: Buffer.from('two') },
  ]);
  await bus.close();
  const file = join(dir, 'bus', 'topics', 't', '0.log');
  appendFileSync(file, Buffer.from([0, 0, 0, 50, 1, 2, 3])); // a frame header promising 50 bytes, then nothing
  bus = createEmbeddedBus({ dataDir: dir, ctx });
  const got = await consumeN(bus, { groupId: 'g', topics: ['t'] }, 2);
  assert.deepEqual(
    got.map((r) => r.value!.toString()),
    ['one', 'two'],
  );
  const meta = await bus.producer().send('t', [{ key: null, value: Buffer.from('three') }]);
  assert.equal(meta[0]!.offset, 2n, 'offsets continue after the truncated tail');
  await bus.close();
  rmSync(dir, { recursive: true, force: true });
});

test('a second process-level open of the same data dir is refused while the first is alive', async () => {
  const dir = tmp();
  const bus = createEmbeddedBus({ dataDir: dir, ctx: createContext({ log: silentLogger }) });
  // simulate another live owner: write our parent's pid (alive) into the lock
  const { writeFileSync } = await import('node:fs');
  writeFileSync(join(dir, 'bus', 'LOCK'), String(process.ppid));
  assert.throws(() => createEmbeddedBus({ dataDir: dir }), /in use by process/);
  await bus.close();
  rmSync(dir, { recursive: true, force: true });
});

test('retention drops old records, compaction keeps the newest per key, offsets never go back', async () => {
  const dir = tmp();
  const clock = new ManualClock(1_000_000);
  const ctx = createContext({ log: silentLogger, clock });
  let bus = createEmbeddedBus({ dataDir: dir, ctx, tombstoneRetentionMs: 1000 });
  await bus.admin.ensureTopics([
    { name: 'd', partitions: 1, cleanupPolicy: 'delete', retentionMs: 5000 },
    { name: 'c', partitions: 1, cleanupPolicy: 'compact', retentionMs: -1 },
  ]);
  const p = bus.producer();
  await p.send(
    'd',
    Array.from({ length: 100 }, (_, i) => ({ key: null, value: Buffer.alloc(100, i) })),
  );
  for (let i = 0; i < 100; i++) await p.send('c', [{ key: Buffer.from(`k${i % 3}`), value: Buffer.from(`v${i}`) }]);
  await p.send('c', [{ key: Buffer.from('k0'), value: null }]);
  clock.advance(10_000);
  await p.send('d', [{ key: null, value: Buffer.from('fresh') }]);
  await p.send('c', [{ key: Buffer.from('k9'), value: Buffer.from('last') }]);
  const before = statSync(join(dir, 'bus', 'topics', 'd', '0.log')).size;
  bus.maintain();
  assert.ok(statSync(join(dir, 'bus', 'topics', 'd', '0.log')).size < before, 'the log file shrank');
  const d = await consumeN(bus, { groupId: 'g1', topics: ['d'] }, 1);
  assert.deepEqual(
    d.map((r) => [r.offset, r.value!.toString()]),
    [[100n, 'fresh']],
  );
  const table = await readTable(bus, 'c');
  assert.deepEqual(Object.fromEntries([...table.values()].map((r) => [r.key!.toString(), r.value!.toString()])), {
    k1: 'v97',
    k2: 'v98',
    k9: 'last',
  });
  await bus.close();
  // after a restart the compacted state and the offsets are as they were
  bus = createEmbeddedBus({ dataDir: dir, ctx });
  const meta = await bus.producer().send('d', [{ key: null, value: Buffer.from('next') }]);
  assert.equal(meta[0]!.offset, 101n);
  assert.equal((await readTable(bus, 'c')).size, 3);
  assert.ok(readdirSync(join(dir, 'bus', 'topics')).length === 2);
  await bus.close();
  rmSync(dir, { recursive: true, force: true });
});

test('committed offsets are appended per commit; a torn last line falls back to the one before', async () => {
  const dir = tmp();
  try {
    const ctx = createContext({ log: silentLogger });
    let bus = createEmbeddedBus({ dataDir: dir, ctx });
    await bus.admin.ensureTopics([{ name: 't', partitions: 1, cleanupPolicy: 'delete', retentionMs: -1 }]);
    const c = bus.consumer({ groupId: 'g', topics: ['t'] });
    for (const offset of [1n, 2n, 3n]) await c.commit([{ topic: 't', partition: 0, offset }]);
    await c.close();
    await bus.close();
    const log = join(dir, 'bus', 'groups', 'g.offsets');
    appendFileSync(log, '{"t\\u00000":"9'); // a crash mid-write
    bus = createEmbeddedBus({ dataDir: dir, ctx });
    assert.equal((await bus.admin.committedOffsets('g', 't')).get(0), 3n);
    await bus.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
