import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, readAll, type Bus, type TopicSpec } from '../src/index.js';
import { crc32 } from 'node:zlib';
import { consumeN } from './conformance.js';

/**
 * The embedded bus's files against damage (a flipped bit, a cut tail, a power loss) and
 * against other local users. Whatever happens to the bytes, an offset once handed out is
 * never handed out again, and nothing damaged is dropped silently.
 */
const tmp = () => mkdtempSync(join(tmpdir(), 'cordon-bus-dur-'));
const ctx = createContext({ log: silentLogger });
const DLQ: TopicSpec = { name: 'cordon.dlq.v1', partitions: 1, cleanupPolicy: 'delete', retentionMs: -1 };
const T: TopicSpec = { name: 't', partitions: 1, cleanupPolicy: 'delete', retentionMs: -1 };
const logFile = (dir: string) => join(dir, 'bus', 'topics', 't', '0.log');

/** Ten records, all consumed and committed by group g. */
async function tenCommitted(dir: string): Promise<void> {
  const bus = createEmbeddedBus({ dataDir: dir, ctx });
  await bus.admin.ensureTopics([T, DLQ]);
  await bus.producer().send(
    't',
    Array.from({ length: 10 }, (_, i) => ({
      key: Buffer.from(`k${i}`),
      value: Buffer.from(`record number ${i} `.repeat(4)),
    })),
  );
  const c = bus.consumer({ groupId: 'g', topics: ['t'] });
  let seen = 0;
  await new Promise<void>((resolve, reject) => {
    c.run(async (b) => {
      seen += b.records.length;
      await c.commit([{ topic: 't', partition: 0, offset: b.records.at(-1)!.offset + 1n }]);
      if (seen === 10) resolve();
    }).catch(reject);
  });
  await c.close();
  await bus.close();
}

const deadLetters = async (bus: Bus) => (await readAll(bus, 'cordon.dlq.v1')).map((r) => r.value!);

test('a flipped byte in the middle of a partition log loses that record only: the rest is read, the end offset does not go back, the damage goes to the DLQ', async () => {
  const dir = tmp();
  try {
    await tenCommitted(dir);
    const file = logFile(dir);
    const bytes = readFileSync(file);
    const at = bytes.indexOf('record number 5');
    bytes[at + 3] = bytes[at + 3]! ^ 0x20;
    writeFileSync(file, bytes);

    const bus = createEmbeddedBus({ dataDir: dir, ctx });
    try {
      assert.equal((await bus.admin.endOffsets('t')).get(0), 10n, 'the end offset stays at 10');
      const left = await readAll(bus, 't');
      assert.deepEqual(
        left.map((r) => Number(r.offset)),
        [0, 1, 2, 3, 4, 6, 7, 8, 9],
        'only the damaged record is missing',
      );
      const meta = await bus.producer().send('t', [{ key: null, value: Buffer.from('after') }]);
      assert.equal(meta[0]!.offset, 10n, 'no offset is handed out twice');
      const letters = await deadLetters(bus);
      assert.equal(letters.length, 1, 'one dead letter for the damaged bytes');
      assert.ok(
        letters[0]!.includes(Buffer.from('CORDON_ERR_BUS_CORRUPT_LOG')) &&
          letters[0]!.includes(Buffer.from('recOrd number 5')),
        'it names the code and carries the bytes',
      );
      assert.ok(readdirSync(join(dir, 'bus', 'quarantine')).length === 1, 'and a copy is kept beside the log');
    } finally {
      await bus.close();
    }
    // the repaired log opens clean the next time: nothing is quarantined twice
    const again = createEmbeddedBus({ dataDir: dir, ctx });
    assert.equal((await deadLetters(again)).length, 1);
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a cut tail below the committed offset: new records still get offsets past it, and the group that committed them reads them', async () => {
  const dir = tmp();
  try {
    await tenCommitted(dir);
    const file = logFile(dir);
    const bytes = readFileSync(file);
    truncateSync(file, bytes.indexOf('record number 8') + 5); // records 8 and 9 are gone, 8 half-written
    const bus = createEmbeddedBus({ dataDir: dir, ctx });
    try {
      assert.ok(
        (await bus.admin.endOffsets('t')).get(0)! >= 10n,
        'the end offset does not go back below what group g committed',
      );
      await bus.producer().send('t', [
        { key: null, value: Buffer.from('new 1') },
        { key: null, value: Buffer.from('new 2') },
      ]);
      const got = await consumeN(bus, { groupId: 'g', topics: ['t'] }, 2);
      assert.deepEqual(
        got.map((r) => r.value!.toString()),
        ['new 1', 'new 2'],
        'group g, committed at 10, sees what was written after',
      );
    } finally {
      await bus.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test("fsync: a control topic's send returns once an fsync has covered its records, run on a pool thread while the event loop goes on; data topics are synced on an interval, off the event loop", async () => {
  const dir = tmp();
  const real = fs.fsyncSync;
  const realAsync = fs.fsync;
  let syncs = 0;
  let background = 0;
  /** Per fd, the file size the last completed fsync covered. */
  const covered = new Map<number, number>();
  fs.fsyncSync = (fd: number) => {
    syncs++;
    real(fd);
  };
  // a slow disk: each fsync on the pool takes 30 ms
  (fs as { fsync: typeof fs.fsync }).fsync = ((fd: number, cb: (err: NodeJS.ErrnoException | null) => void) => {
    background++;
    const size = fs.fstatSync(fd).size;
    realAsync(fd, (err) =>
      setTimeout(() => {
        if (!err) covered.set(fd, Math.max(covered.get(fd) ?? 0, size));
        cb(err);
      }, 30),
    );
  }) as typeof fs.fsync;
  syncBuiltinESMExports();
  try {
    const bus = createEmbeddedBus({ dataDir: dir, ctx });
    try {
      await bus.admin.ensureTopics([
        { name: 'cordon.blocks.v1', partitions: 1, cleanupPolicy: 'compact', retentionMs: -1 },
        { name: 'cordon.packets.v1', partitions: 1, cleanupPolicy: 'delete', retentionMs: -1 },
      ]);
      const blocksLog = join(dir, 'bus', 'topics', encodeURIComponent('cordon.blocks.v1'), '0.log');
      const p = bus.producer();
      let before = syncs;
      let ticks = 0;
      const ticker = setInterval(() => ticks++, 2);
      try {
        for (let i = 0; i < 5; i++) {
          const t0 = ticks;
          await p.send('cordon.blocks.v1', [{ key: Buffer.from(`k${i}`), value: Buffer.from('v') }]);
          assert.ok(
            Math.max(0, ...covered.values()) >= statSync(blocksLog).size,
            `send ${i} returned before an fsync covered its record`,
          );
          assert.ok(ticks > t0, `the event loop stood still while send ${i} waited for the disk`);
        }
      } finally {
        clearInterval(ticker);
      }
      assert.equal(syncs - before, 0, 'a control send ran fsyncSync on the event loop');
      // sends at once share the fsyncs: one under way, the next covering all that came meanwhile
      const b0 = background;
      await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          p.send('cordon.blocks.v1', [{ key: Buffer.from(`m${i}`), value: Buffer.from('v') }]),
        ),
      );
      assert.ok(background - b0 <= 3, `${background - b0} fsyncs for 20 sends at once`);
      assert.ok(Math.max(0, ...covered.values()) >= statSync(blocksLog).size, 'every one of them covered');
      before = syncs;
      const bg = background;
      for (let i = 0; i < 50; i++) await p.send('cordon.packets.v1', [{ key: null, value: Buffer.from('frame') }]);
      assert.ok(syncs - before < 5, `${syncs - before} fsyncs for 50 batches of a data topic`);
      assert.equal(background, bg, 'a data topic send waited for an fsync');
      before = syncs;
      await new Promise((r) => setTimeout(r, 1500));
      assert.ok(background > bg, 'the data topic was synced within its interval');
      // waiting for the disk on the event loop stalled every stage of the process
      assert.equal(syncs - before, 0, 'the interval sync ran fsyncSync on the event loop');
    } finally {
      await bus.close();
    }
  } finally {
    fs.fsyncSync = real;
    (fs as { fsync: typeof fs.fsync }).fsync = realAsync;
    syncBuiltinESMExports();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the bus files are the owner's only: directories 0700, files 0600, whatever the umask", async () => {
  const dir = tmp();
  const old = process.umask(0o022);
  try {
    const bus = createEmbeddedBus({ dataDir: dir, ctx });
    await bus.admin.ensureTopics([T, { name: 'c', partitions: 2, cleanupPolicy: 'compact', retentionMs: -1 }]);
    await bus.producer().send('t', [{ key: null, value: Buffer.from('token: secret') }]);
    const c = bus.consumer({ groupId: 'g', topics: ['t'] });
    await c.commit([{ topic: 't', partition: 0, offset: 1n }]);
    await c.close();
    const bad: string[] = [];
    const walk = (p: string) => {
      const st = statSync(p);
      const mode = st.mode & 0o777;
      if (st.isDirectory()) {
        if (mode !== 0o700) bad.push(`${p} ${mode.toString(8)}`);
        for (const n of readdirSync(p)) walk(join(p, n));
      } else if (mode !== 0o600) bad.push(`${p} ${mode.toString(8)}`);
    };
    walk(join(dir, 'bus'));
    await bus.close();
    assert.deepEqual(bad, []);
  } finally {
    process.umask(old);
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A record as Cordon wrote partition logs before the v2 format: u32 length, u32 CRC-32 of the payload, payload. */
function v1Frame(offset: number, value: string): Buffer {
  const v = Buffer.from(value);
  const payload = Buffer.alloc(8 + 8 + 4 + 4 + v.length + 4);
  payload.writeBigInt64BE(BigInt(offset), 0);
  payload.writeDoubleBE(1_700_000_000_000, 8);
  payload.writeInt32BE(-1, 16); // no key
  payload.writeInt32BE(v.length, 20);
  v.copy(payload, 24);
  payload.writeUInt32BE(0, 24 + v.length); // no headers
  const head = Buffer.alloc(8);
  head.writeUInt32BE(payload.length, 0);
  head.writeUInt32BE(crc32(payload), 4);
  return Buffer.concat([head, payload]);
}

test('a log in the old format is read, its damaged tail quarantined, and it is rewritten in the new one', async () => {
  const dir = tmp();
  try {
    const bus0 = createEmbeddedBus({ dataDir: dir, ctx });
    await bus0.admin.ensureTopics([T, DLQ]);
    await bus0.close();
    writeFileSync(
      logFile(dir),
      Buffer.concat([v1Frame(0, 'old zero'), v1Frame(1, 'old one'), v1Frame(2, 'old two').subarray(0, 30)]),
    );
    const bus = createEmbeddedBus({ dataDir: dir, ctx });
    try {
      assert.deepEqual(
        (await readAll(bus, 't')).map((r) => r.value!.toString()),
        ['old zero', 'old one'],
      );
      assert.equal((await bus.producer().send('t', [{ key: null, value: Buffer.from('new') }]))[0]!.offset, 2n);
      assert.equal((await deadLetters(bus)).length, 1, 'the torn v1 record is dead-lettered');
      assert.equal(readFileSync(logFile(dir)).subarray(0, 8).toString(), 'CRDLOG2\n', 'rewritten in the new format');
    } finally {
      await bus.close();
    }
    const again = createEmbeddedBus({ dataDir: dir, ctx });
    assert.deepEqual(
      (await readAll(again, 't')).map((r) => r.value!.toString()),
      ['old zero', 'old one', 'new'],
    );
    await again.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a flipped byte in the file header loses nothing: the frames say which format it is', async () => {
  const dir = tmp();
  try {
    await tenCommitted(dir);
    const bytes = readFileSync(logFile(dir));
    bytes[2] = bytes[2]! ^ 0x01;
    writeFileSync(logFile(dir), bytes);
    const bus = createEmbeddedBus({ dataDir: dir, ctx });
    try {
      assert.equal((await readAll(bus, 't')).length, 10);
      assert.equal((await deadLetters(bus)).length, 0);
      assert.equal(readFileSync(logFile(dir)).subarray(0, 8).toString(), 'CRDLOG2\n', 'the header is written again');
    } finally {
      await bus.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
