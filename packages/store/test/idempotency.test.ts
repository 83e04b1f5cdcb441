import assert from 'node:assert/strict';
import { test } from 'node:test';
import { count, flowRow, open, tempDir } from './helpers.js';

const batch = (n: number, months = 1) => Array.from({ length: n }, (_, i) => flowRow(i, i % months));

test('replaying a batch with the same batchId does not double-count, even across partitions', async (t) => {
  const store = await open(tempDir(t));
  try {
    const rows = batch(3_000, 3); // three months: one block (and one dedup token) per partition
    await store.insert('flows', rows, { batchId: 'cordon.flows.v1:0:0-2999' });
    await store.insert('flows', rows, { batchId: 'cordon.flows.v1:0:0-2999' });
    await store.insert('flows', rows, { batchId: 'cordon.flows.v1:0:0-2999' });
    // Plain count(), no FINAL: what an analyst or a dashboard writes.
    assert.equal(await count(store, 'SELECT count() AS n FROM flows'), 3_000);
    assert.equal(await count(store, 'SELECT sum(bytes_toclient) AS n FROM flows'), 3_000 * 20_000);
    const parts = await store.query<{ p: string }>(
      "SELECT uniqExact(partition) AS p FROM system.parts WHERE database = currentDatabase() AND table = 'flows' AND active",
    );
    assert.equal(Number(parts[0]?.p), 3);

    // A different batch is written.
    await store.insert('flows', [flowRow(0, 7)], { batchId: 'cordon.flows.v1:0:3000-3000' });
    assert.equal(await count(store, 'SELECT count() AS n FROM flows'), 3_001);
  } finally {
    await store.close();
  }
});

test('a replay after a restart is still deduplicated (the window persists in the data dir)', async (t) => {
  const dir = tempDir(t);
  const rows = batch(500);
  const before = await open(dir);
  try {
    await insertBatch(before, rows);
  } finally {
    await before.close();
  }
  const after = await open(dir);
  try {
    await insertBatch(after, rows);
    assert.equal(await count(after, 'SELECT count() AS n FROM flows'), 500);
  } finally {
    await after.close();
  }
  function insertBatch(s: Awaited<ReturnType<typeof open>>, r: object[]) {
    return s.insert('flows', r, { batchId: 'cordon.flows.v1:2:100-599' });
  }
});

test('dead letters are idempotent per batch too', async (t) => {
  const store = await open(tempDir(t));
  try {
    const rows = Array.from({ length: 50 }, (_, i) => ({
      ts: new Date(Date.UTC(2024, 0, 1, 0, 0, i)),
      stage: 'sink',
      source_topic: 'cordon.flows.v1',
      source_partition: 1,
      source_offset: 1_000 + i,
      error_code: 'CORDON_ERR_SCHEMA_DECODE',
      error: 'unknown schema id 99',
      key_base64: null,
      value_base64: Buffer.from([0, 0, 0, 0, 99, i]).toString('base64'),
    }));
    await store.insert('dlq', rows, { batchId: 'dlq:1:1000-1049' });
    await store.insert('dlq', rows, { batchId: 'dlq:1:1000-1049' });
    assert.equal(await count(store, 'SELECT count() AS n FROM dlq'), 50);
    const [first] = await store.query<{ v: string; ts: string }>(
      'SELECT hex(base64Decode(value_base64)) AS v, toString(ts) AS ts FROM dlq ORDER BY source_offset LIMIT 1',
    );
    assert.deepEqual(first, { v: '000000006300', ts: '2024-01-01 00:00:00.000000' });
  } finally {
    await store.close();
  }
});

test('the same flows under a different batchId are caught by ReplacingMergeTree: exact with FINAL and after merges', async (t) => {
  // The limit of token dedup, shown: it keys on the batchId, not on the rows.
  const store = await open(tempDir(t));
  try {
    const rows = batch(1_000);
    await store.insert('flows', rows, { batchId: 'first-run:0-999' });
    await store.insert('flows', rows, { batchId: 're-batched:0-999' });
    assert.equal(
      await count(store, 'SELECT count() AS n FROM flows'),
      2_000,
      'plain count double-counts until a merge',
    );
    assert.equal(await count(store, 'SELECT count() AS n FROM flows FINAL'), 1_000);
    await store.command('OPTIMIZE TABLE flows FINAL');
    assert.equal(await count(store, 'SELECT count() AS n FROM flows'), 1_000);
  } finally {
    await store.close();
  }
});

test("a batch's dedup token does not leak into later statements on the same connection", async (t) => {
  // Regression guard: chdb's connection turns per-request clickhouse_settings into session-wide
  // SETs. Had the token been passed that way, this untokened insert would be silently dropped.
  const store = await open(tempDir(t));
  try {
    await store.command(
      'CREATE TABLE t (id UInt32) ENGINE = MergeTree ORDER BY id SETTINGS non_replicated_deduplication_window = 100',
    );
    await store.insert('t', [{ id: 1 }], { batchId: 'b' });
    await store.command('INSERT INTO t VALUES (2)');
    await store.command('INSERT INTO t VALUES (3)');
    assert.equal(await count(store, 'SELECT count() AS n FROM t'), 3);
  } finally {
    await store.close();
  }
});

test('concurrent inserts of distinct batches all land', async (t) => {
  const store = await open(tempDir(t));
  try {
    await Promise.all(
      Array.from({ length: 8 }, (_, b) => store.insert('flows', [flowRow(b, 0), flowRow(b, 1)], { batchId: `c:${b}` })),
    );
    assert.equal(await count(store, 'SELECT count() AS n FROM flows'), 16);
  } finally {
    await store.close();
  }
});
