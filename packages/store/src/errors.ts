import { defineError } from '@cordon/runtime';

/**
 * Every error the store raises. Codes are stable (tests, DLQ records and runbooks key off them);
 * messages say what to do next. The ClickHouse error (code, type, message) is kept as `cause`.
 */

export const ERR_STORE_BAD_OPTIONS = defineError(
  'CORDON_ERR_STORE_BAD_OPTIONS',
  (detail: string) => `Invalid store options: ${detail}. Fix the store configuration and restart.`,
);

export const ERR_STORE_ENGINE_BUSY = defineError(
  'CORDON_ERR_STORE_ENGINE_BUSY',
  (dataDir: string, detail: string) =>
    `Cannot open the embedded ClickHouse at ${dataDir}: the embedded engine binds one data directory per process ` +
    `(${detail}). Close every Store on the other directory first, or open this Store on the same dataDir.`,
);

export const ERR_STORE_DATA_DIR_LOCKED = defineError(
  'CORDON_ERR_STORE_DATA_DIR_LOCKED',
  (dataDir: string, pid: number) =>
    `The embedded ClickHouse at ${dataDir} is open in process ${pid} (a running "cordon up" or "cordon run"?), and one ` +
    `process at a time may open it. Commands such as "cordon query" go through that process when it runs "cordon up"; ` +
    `otherwise stop process ${pid} (kill -INT ${pid}) or use another --data-dir.`,
);

export const ERR_STORE_UNREACHABLE = defineError(
  'CORDON_ERR_STORE_UNREACHABLE',
  (where: string, detail: string) =>
    `ClickHouse at ${where} did not answer (${detail}). Check that the server is running and the URL, user and password are right.`,
);

export const ERR_STORE_CLOSED = defineError(
  'CORDON_ERR_STORE_CLOSED',
  (op: string) => `Store.${op}() was called after close(). Create a new Store with createStore().`,
);

export const ERR_STORE_QUERY = defineError(
  'CORDON_ERR_STORE_QUERY',
  (detail: string, sql: string) => `ClickHouse rejected the statement: ${detail}. Fix the SQL: ${sql}`,
);

export const ERR_STORE_BAD_TABLE = defineError(
  'CORDON_ERR_STORE_BAD_TABLE',
  (table: string, why: string) =>
    `Cannot insert into table "${table}": ${why}. Use a table created by a migration in schemas/clickhouse/.`,
);

export const ERR_STORE_BAD_BATCH_ID = defineError(
  'CORDON_ERR_STORE_BAD_BATCH_ID',
  (why: string) =>
    `Invalid batchId: ${why}. Pass a non-empty deterministic id derived from the input (e.g. "topic:partition:firstOffset-lastOffset") ` +
    'so that a replayed batch carries the same id.',
);

export const ERR_STORE_BAD_ROW = defineError(
  'CORDON_ERR_STORE_BAD_ROW',
  (table: string, batchId: string, detail: string) =>
    `Batch "${batchId}" for table "${table}" was rejected because of a bad row: ${detail}. ` +
    'Dead-letter that row and insert the rest; retrying the same rows cannot succeed.',
);

export const ERR_STORE_INSERT_FAILED = defineError(
  'CORDON_ERR_STORE_INSERT_FAILED',
  (table: string, batchId: string, detail: string) =>
    `Insert of batch "${batchId}" into "${table}" failed: ${detail}. Retry the same batch with the same batchId; ` +
    'rows already written are deduplicated.',
);

export const ERR_STORE_MIGRATION_NAME = defineError(
  'CORDON_ERR_STORE_MIGRATION_NAME',
  (file: string, dir: string) =>
    `Migration file "${file}" in ${dir} is not named NNNN_name.sql, or its version repeats another file's. ` +
    'Rename it with the next unused four-digit version.',
);

export const ERR_STORE_MIGRATION_CHANGED = defineError(
  'CORDON_ERR_STORE_MIGRATION_CHANGED',
  (file: string, applied: string, now: string) =>
    `Migration ${file} was already applied with checksum ${applied} but the file now has checksum ${now}. ` +
    'Applied migrations are immutable: restore the original file and put the change in a new migration.',
);

export const ERR_STORE_MIGRATION_MISSING = defineError(
  'CORDON_ERR_STORE_MIGRATION_MISSING',
  (version: string, name: string, dir: string) =>
    `Migration ${version}_${name} is recorded as applied in this database but its file is missing from ${dir}. ` +
    'Restore the file (migrations are never deleted), or point the Store at the right migrations directory.',
);

export const ERR_STORE_MIGRATION_FAILED = defineError(
  'CORDON_ERR_STORE_MIGRATION_FAILED',
  (file: string, statement: number, detail: string) =>
    `Migration ${file} failed at statement ${statement}: ${detail}. It is not recorded as applied; ` +
    'fix it (statements must be idempotent, e.g. CREATE TABLE IF NOT EXISTS) and restart to re-run it.',
);
