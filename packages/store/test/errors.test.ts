import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  createStore,
  ERR_STORE_BAD_BATCH_ID,
  ERR_STORE_BAD_OPTIONS,
  ERR_STORE_BAD_ROW,
  ERR_STORE_BAD_TABLE,
  ERR_STORE_CLOSED,
  ERR_STORE_ENGINE_BUSY,
  ERR_STORE_QUERY,
  ERR_STORE_UNREACHABLE,
} from '../src/index.js';
import { count, flowRow, open, tempDir } from './helpers.js';

test('bad SQL is a typed error that keeps the ClickHouse cause, and the store keeps working', async (t) => {
  const store = await open(tempDir(t));
  try {
    await assert.rejects(store.query('SELEC 1'), (err: unknown) => {
      assert.ok(ERR_STORE_QUERY.is(err));
      assert.match(err.message, /SYNTAX_ERROR/);
      assert.ok(err.cause instanceof Error);
      return true;
    });
    await assert.rejects(
      store.query('SELECT * FROM no_such_table'),
      (err: unknown) => ERR_STORE_QUERY.is(err) && /UNKNOWN_TABLE/.test(err.message),
    );
    await assert.rejects(store.command('CREATE TABLE x'), (err: unknown) => ERR_STORE_QUERY.is(err));
    assert.deepEqual(await store.query('SELECT 1 + {n:UInt8} AS two', { n: 1 }), [{ two: 2 }]);
  } finally {
    await store.close();
  }
});

test('bad rows are refused with the row, the column and what was expected; nothing of the batch is written', async (t) => {
  const store = await open(tempDir(t));
  try {
    const cases: Array<[string, Record<string, unknown>, RegExp]> = [
      [
        'out-of-range integer (ClickHouse would wrap it)',
        { ...flowRow(9), proto: 300 },
        /rows\[1\] column "proto" must be an integer in 0\.\.255, got number 300/,
      ],
      [
        'unknown column (ClickHouse would skip it)',
        { ...flowRow(9), protocol: 6 },
        /rows\[1\] has unknown column "protocol"/,
      ],
      [
        'missing required column (ClickHouse would default it)',
        withoutKey(flowRow(9), 'flow_id'),
        /rows\[1\] is missing required column "flow_id"/,
      ],
      [
        'null in a required column',
        { ...flowRow(9), sensor: null },
        /rows\[1\] column "sensor" is null but the column is required/,
      ],
      [
        'epoch number for a DateTime64',
        { ...flowRow(9), first_seen: 1_700_000_000 },
        /rows\[1\] column "first_seen" must be a Date or a date-time string/,
      ],
      ['not an IP address', { ...flowRow(9), src_ip: 'not-an-ip' }, /CANNOT_PARSE_IPV6/],
      [
        'an end_reason outside the enum',
        { ...flowRow(9), end_reason: 'exploded' },
        /VIOLATED_CONSTRAINT.*end_reason_known/,
      ],
      [
        'last_seen before first_seen',
        { ...flowRow(9), last_seen: '2000-01-01 00:00:00' },
        /VIOLATED_CONSTRAINT.*seen_in_order/,
      ],
    ];
    for (const [what, bad, expected] of cases) {
      await assert.rejects(store.insert('flows', [flowRow(1), bad], { batchId: `bad:${what}` }), (err: unknown) => {
        assert.ok(ERR_STORE_BAD_ROW.is(err), `${what}: ${String(err)}`);
        assert.match(err.message, expected, what);
        assert.match(err.message, /Dead-letter that row/);
        return true;
      });
    }
    await assert.rejects(
      store.insert('flows', [flowRow(1), 'x' as unknown as object], { batchId: 'b' }),
      (err: unknown) => ERR_STORE_BAD_ROW.is(err) && /rows\[1\] is x/.test(err.message),
    );
    assert.equal(await count(store, 'SELECT count() AS n FROM flows'), 0, 'no row of a rejected batch is written');

    // The good rows of a rejected batch go in once the bad row is taken out.
    await store.insert('flows', [flowRow(1)], { batchId: 'b2' });
    assert.equal(await count(store, 'SELECT count() AS n FROM flows'), 1);
  } finally {
    await store.close();
  }
});

test('64-bit counters keep every digit, through bigint or decimal strings', async (t) => {
  const store = await open(tempDir(t));
  try {
    await store.insert(
      'flows',
      [{ ...flowRow(1), bytes_toserver: 2n ** 64n - 1n, bytes_toclient: '18446744073709551614' }],
      { batchId: 'big' },
    );
    const [row] = await store.query<{ a: string; b: string }>(
      'SELECT bytes_toserver AS a, bytes_toclient AS b FROM flows',
    );
    assert.deepEqual(row, { a: '18446744073709551615', b: '18446744073709551614' });
  } finally {
    await store.close();
  }
});

test('unknown tables, bad batch ids, bad options and use after close are typed errors', async (t) => {
  const store = await open(tempDir(t));
  try {
    await assert.rejects(
      store.insert('nope', [{ a: 1 }], { batchId: 'b' }),
      (err: unknown) => ERR_STORE_BAD_TABLE.is(err) && /does not exist/.test(err.message),
    );
    await assert.rejects(store.insert('flows; DROP TABLE flows', [], { batchId: 'b' }), (err: unknown) =>
      ERR_STORE_BAD_TABLE.is(err),
    );
    await assert.rejects(store.insert('flows', [flowRow(1)], { batchId: '' }), (err: unknown) =>
      ERR_STORE_BAD_BATCH_ID.is(err),
    );
    await assert.rejects(store.insert('flows', [flowRow(1)], {} as { batchId: string }), (err: unknown) =>
      ERR_STORE_BAD_BATCH_ID.is(err),
    );
    // A quote in a batchId is data, not SQL.
    await store.insert('flows', [flowRow(1)], { batchId: "it's \\ fine" });
    await store.insert('flows', [flowRow(1)], { batchId: "it's \\ fine" });
    assert.equal(await count(store, 'SELECT count() AS n FROM flows'), 1);
  } finally {
    await store.close();
  }
  await assert.rejects(
    store.query('SELECT 1'),
    (err: unknown) => ERR_STORE_CLOSED.is(err) && /createStore/.test(err.message),
  );
  await assert.rejects(
    createStore({ dataDir: tempDir(t), dataDirectory: 'x' } as never),
    (err: unknown) => ERR_STORE_BAD_OPTIONS.is(err) && /"dataDirectory"/.test(err.message),
  );
  await assert.rejects(createStore({ dataDir: tempDir(t), url: 'http://localhost:8123' }), (err: unknown) =>
    ERR_STORE_BAD_OPTIONS.is(err),
  );
  await assert.rejects(
    createStore({ url: 'clickhouse://x' }),
    (err: unknown) => ERR_STORE_BAD_OPTIONS.is(err) && /http/.test(err.message),
  );
  await assert.rejects(createStore({ dataDir: tempDir(t), database: 'a-b' }), (err: unknown) =>
    ERR_STORE_BAD_OPTIONS.is(err),
  );
});

test('a second data dir in the same process is refused until the first is closed', async (t) => {
  const a = await open(tempDir(t));
  const other = tempDir(t);
  try {
    await assert.rejects(open(other), (err: unknown) => {
      assert.ok(ERR_STORE_ENGINE_BUSY.is(err), String(err));
      assert.match(err.message, /one data directory per process/);
      return true;
    });
  } finally {
    await a.close();
  }
  const b = await open(other);
  await b.close();
});

test('a ClickHouse server that does not answer is a typed error naming the URL, without its password', async () => {
  await assert.rejects(createStore({ url: 'http://cordon:s3cret@127.0.0.1:1' }), (err: unknown) => {
    assert.ok(ERR_STORE_UNREACHABLE.is(err), String(err));
    assert.match(err.message, /http:\/\/127\.0\.0\.1:1\//);
    assert.doesNotMatch(err.message, /s3cret/);
    return true;
  });
});

function withoutKey(row: Record<string, unknown>, key: string): Record<string, unknown> {
  const copy = { ...row };
  delete copy[key];
  return copy;
}
