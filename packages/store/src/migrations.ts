import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ERR_STORE_MIGRATION_NAME } from './errors.js';
import { splitStatements } from './sql-split.js';

/** One `schemas/clickhouse/NNNN_name.sql` file, parsed. */
export interface Migration {
  readonly version: number;
  readonly name: string;
  /** `NNNN_name.sql`, for messages. */
  readonly file: string;
  /** SHA-256 of the file with line endings normalised, so a CRLF checkout is not "changed". */
  readonly checksum: string;
  readonly statements: readonly string[];
}

const FILE = /^(\d{4})_([a-z0-9_]+)\.sql$/;

/** Read every migration in `dir`, in version order. Other files (README.md) are ignored. */
export function loadMigrations(dir: string): Migration[] {
  const seen = new Map<number, string>();
  const out: Migration[] = [];
  for (const file of readdirSync(dir).sort()) {
    if (!file.endsWith('.sql')) continue;
    const m = FILE.exec(file);
    if (!m) throw ERR_STORE_MIGRATION_NAME(file, dir);
    const version = Number(m[1]);
    if (seen.has(version)) throw ERR_STORE_MIGRATION_NAME(file, dir);
    seen.set(version, file);
    const text = readFileSync(join(dir, file), 'utf8').replace(/\r\n/g, '\n');
    out.push({
      version,
      name: m[2]!,
      file,
      checksum: createHash('sha256').update(text).digest('hex'),
      statements: splitStatements(text),
    });
  }
  return out.sort((a, b) => a.version - b.version);
}

export function versionLabel(version: number): string {
  return String(version).padStart(4, '0');
}

/**
 * The ledger of applied migrations. ReplacingMergeTree keyed by version: if two processes migrate
 * the same server at once (ClickHouse has no DDL transactions or locks), both records collapse into
 * one, and readers group by version anyway.
 */
export const MIGRATIONS_TABLE = 'schema_migrations';
export const MIGRATIONS_DDL = `CREATE TABLE IF NOT EXISTS ${MIGRATIONS_TABLE}
(
    version UInt32,
    name String,
    checksum String,
    applied_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ReplacingMergeTree(applied_at)
ORDER BY version
SETTINGS non_replicated_deduplication_window = 1000`;
