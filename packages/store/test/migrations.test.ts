import assert from 'node:assert/strict';
import { appendFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import {
  ERR_STORE_MIGRATION_CHANGED,
  ERR_STORE_MIGRATION_FAILED,
  ERR_STORE_MIGRATION_MISSING,
  ERR_STORE_MIGRATION_NAME,
  loadMigrations,
} from '../src/index.js';
import { count, flowRow, migrationsCopy, open, REPO_MIGRATIONS, tempDir } from './helpers.js';

test('the repository migrations load in version order, each with its statements', () => {
  const ms = loadMigrations(REPO_MIGRATIONS);
  assert.deepEqual(ms.map((m) => m.file).slice(0, 2), ['0001_flows.sql', '0002_dlq.sql']);
  for (const m of ms) assert.ok(m.statements.length >= 1, `${m.file} has no statement`);
});

test('migrations apply once, are recorded, and a restarted store resumes on the same data', async (t) => {
  const dir = tempDir(t);
  const first = await open(dir);
  try {
    const applied = await first.query<{ version: number; name: string }>(
      'SELECT version, name FROM schema_migrations ORDER BY version',
    );
    assert.deepEqual(applied.slice(0, 2), [
      { version: 1, name: 'flows' },
      { version: 2, name: 'dlq' },
    ]);
    const again = await first.migrate();
    assert.deepEqual(again.applied, [], 'a second migrate() applies nothing');
    await first.insert('flows', [flowRow(1), flowRow(2)], { batchId: 'b1' });

    // A second Store on the same data dir, while the first is open, shares the engine and sees the rows.
    const second = await open(dir);
    try {
      assert.equal(await count(second, 'SELECT count() AS n FROM flows'), 2);
    } finally {
      await second.close();
    }
  } finally {
    await first.close();
  }

  // Restart: a new Store on the persisted dir applies nothing and sees the data.
  const restarted = await open(dir, { migrate: false });
  try {
    const res = await restarted.migrate();
    assert.deepEqual(res.applied, []);
    assert.deepEqual(res.alreadyApplied.slice(0, 2), [1, 2]);
    assert.equal(await count(restarted, 'SELECT count() AS n FROM flows'), 2);
    assert.equal(
      await count(restarted, 'SELECT count() AS n FROM schema_migrations FINAL'),
      loadMigrations(REPO_MIGRATIONS).length,
    );
  } finally {
    await restarted.close();
  }
});

test('a new migration file is applied on the next start, and only it', async (t) => {
  const dir = tempDir(t);
  const migrations = migrationsCopy(t);
  await (await open(dir, { migrationsDir: migrations })).close();
  writeFileSync(
    join(migrations, '0900_notes.sql'),
    [
      '-- two statements; the string literal holds a ";" that must not split them',
      "CREATE TABLE IF NOT EXISTS notes (id UInt32, s String DEFAULT 'a;b') ENGINE = MergeTree ORDER BY id;",
      '/* a block comment; with a semicolon */',
      'INSERT INTO notes (id) SELECT 1 WHERE (SELECT count() FROM notes) = 0;',
      '',
    ].join('\n'),
  );
  const store = await open(dir, { migrationsDir: migrations });
  try {
    assert.deepEqual(await store.query('SELECT id, s FROM notes'), [{ id: 1, s: 'a;b' }]);
    const res = await store.migrate();
    assert.deepEqual(res.applied, []);
  } finally {
    await store.close();
  }
});

test('a store refuses to start when an applied migration file changed', async (t) => {
  const dir = tempDir(t);
  const migrations = migrationsCopy(t);
  await (await open(dir, { migrationsDir: migrations })).close();
  appendFileSync(join(migrations, '0002_dlq.sql'), '\n-- an innocent-looking edit\n');
  await assert.rejects(open(dir, { migrationsDir: migrations }), (err: unknown) => {
    assert.ok(ERR_STORE_MIGRATION_CHANGED.is(err));
    assert.match(err.message, /0002_dlq\.sql.*new migration/);
    return true;
  });
  // CRLF line endings alone are not a change.
  const other = migrationsCopy(t);
  for (const f of readdirSync(other).filter((f) => f.endsWith('.sql'))) {
    const p = join(other, f);
    writeFileSync(p, readFileSync(p, 'utf8').replace(/\n/g, '\r\n'));
  }
  await (await open(dir, { migrationsDir: other })).close();
});

test('a failing migration is reported with its file and statement, not recorded, and re-run once fixed', async (t) => {
  const dir = tempDir(t);
  const migrations = migrationsCopy(t);
  const file = join(migrations, '0901_broken.sql');
  writeFileSync(
    file,
    'CREATE TABLE IF NOT EXISTS broken (id UInt32) ENGINE = MergeTree ORDER BY id;\nALTER TABLE broken ADD COLUMN COLUMN;\n',
  );
  await assert.rejects(open(dir, { migrationsDir: migrations }), (err: unknown) => {
    assert.ok(ERR_STORE_MIGRATION_FAILED.is(err), String(err));
    assert.match(err.message, /0901_broken\.sql failed at statement 2/);
    assert.ok(err.cause, 'the ClickHouse error is kept as cause');
    return true;
  });
  writeFileSync(
    file,
    'CREATE TABLE IF NOT EXISTS broken (id UInt32) ENGINE = MergeTree ORDER BY id;\nALTER TABLE broken ADD COLUMN IF NOT EXISTS s String;\n',
  );
  const store = await open(dir, { migrationsDir: migrations });
  try {
    const cols = await store.query<{ name: string }>(
      "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'broken' ORDER BY position",
    );
    assert.deepEqual(
      cols.map((c) => c.name),
      ['id', 's'],
    );
  } finally {
    await store.close();
  }
});

test('a deleted or misnamed migration file is refused', async (t) => {
  const dir = tempDir(t);
  const migrations = migrationsCopy(t);
  await (await open(dir, { migrationsDir: migrations })).close();
  rmSync(join(migrations, '0002_dlq.sql'));
  await assert.rejects(open(dir, { migrationsDir: migrations }), (err: unknown) => ERR_STORE_MIGRATION_MISSING.is(err));
  writeFileSync(join(migrations, '0002_dlq.sql'), '');
  writeFileSync(join(migrations, '3_bad name.sql'), 'SELECT 1');
  await assert.rejects(open(dir, { migrationsDir: migrations }), (err: unknown) => ERR_STORE_MIGRATION_NAME.is(err));
});
