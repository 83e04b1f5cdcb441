import { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import type { ClickHouseClient } from '@clickhouse/client';
import { childContext, createContext, silentLogger, type Context } from '@cordon/runtime';
import { openEngine, type Engine } from './engine.js';
import {
  ERR_STORE_BAD_BATCH_ID,
  ERR_STORE_BAD_OPTIONS,
  ERR_STORE_BAD_ROW,
  ERR_STORE_BAD_TABLE,
  ERR_STORE_CLOSED,
  ERR_STORE_INSERT_FAILED,
  ERR_STORE_MIGRATION_CHANGED,
  ERR_STORE_MIGRATION_FAILED,
  ERR_STORE_MIGRATION_MISSING,
  ERR_STORE_QUERY,
} from './errors.js';
import { loadMigrations, MIGRATIONS_DDL, MIGRATIONS_TABLE, versionLabel } from './migrations.js';
import { compileTableSpec, encodeRows, isProblem, type ColumnInfo, type TableSpec } from './rows.js';

export interface StoreOptions {
  /** ClickHouse server URL (http[s]://user:pass@host:8123). Omit to use the embedded engine. */
  url?: string;
  /** Embedded engine data directory. Default `./data/clickhouse`. Not allowed with `url`. */
  dataDir?: string;
  /** Database for every table. Created if missing. Default `cordon`. */
  database?: string;
  /** Where the NNNN_name.sql files are. Default: the repository's `schemas/clickhouse/`. */
  migrationsDir?: string;
  /** Apply pending migrations in createStore(). Default true (false when readOnly). */
  migrate?: boolean;
  /**
   * A session that can only read: ClickHouse's `readonly = 1` on every statement (no writes, no
   * DDL, no settings changes), for analysts' ad-hoc SQL (`cordon query`). No migrations run.
   */
  readOnly?: boolean;
  ctx?: Context;
}

export interface InsertOptions {
  /**
   * Deterministic id of this batch (e.g. `cordon.flows.v1:3:1200-1299`). A replay of the same
   * batchId with the same rows is dropped by ClickHouse instead of being counted twice.
   */
  batchId: string;
}

export interface InsertResult {
  readonly rows: number;
  readonly bytes: number;
}

export interface MigrateResult {
  /** Files applied by this call, e.g. `0002_dlq.sql`. */
  readonly applied: readonly string[];
  /** Versions that were already applied before this call. */
  readonly alreadyApplied: readonly number[];
}

export interface Store {
  readonly mode: 'embedded' | 'server';
  readonly database: string;
  /** Where the data is: the absolute data dir (embedded) or the server URL without credentials. */
  readonly location: string;
  migrate(): Promise<MigrateResult>;
  insert(table: string, rows: readonly object[], opts: InsertOptions): Promise<InsertResult>;
  /** Run a SELECT; rows come back as JSON objects. 64-bit integers come back as strings (JSON can't hold them exactly). */
  query<T = Record<string, unknown>>(sql: string, params?: Record<string, unknown>): Promise<T[]>;
  /** Run a statement that returns no rows (DDL, OPTIMIZE, …). */
  command(sql: string, params?: Record<string, unknown>): Promise<void>;
  close(): Promise<void>;
}

const KNOWN_OPTIONS = new Set(['url', 'dataDir', 'database', 'migrationsDir', 'migrate', 'readOnly', 'ctx']);
const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const DEFAULT_MIGRATIONS_DIR = fileURLToPath(new URL('../../../../schemas/clickhouse/', import.meta.url));

/**
 * Settings every insert carries, in the INSERT's own SETTINGS clause rather than as client
 * `clickhouse_settings`: the chdb connection applies `clickhouse_settings` as session-wide `SET`s,
 * so a dedup token passed that way would stick to the session and silently swallow the next
 * insert that has no token (measured: it does).
 *
 * Why insert_deduplication_token: it makes a replayed batch a no-op at insert time, so plain
 * `count()` / `sum()` — what analysts and dashboards write — are exact without FINAL. ClickHouse
 * remembers the last `non_replicated_deduplication_window` block tokens per table (set in each
 * migration; replicated tables use replicated_deduplication_window), persisted on disk, so it also
 * holds across restarts. A batch split into several blocks (one per partition) gets one token per
 * block (token_0, token_1, …), so a half-written batch is completed, not doubled, by its replay.
 * Its limit is the window: a replay older than the window, or the same rows under a different
 * batchId, is written again — tables whose rows have a deterministic id (flows.flow_id) are
 * ReplacingMergeTree on that id as the backstop (exact with FINAL, and after merges). Measured
 * with chdb in packages/store/test/idempotency.test.ts.
 */
const INSERT_SETTINGS = [
  'insert_deduplicate = 1',
  'deduplicate_blocks_in_dependent_materialized_views = 1',
  'async_insert = 0',
  'input_format_skip_unknown_fields = 0',
  "date_time_input_format = 'best_effort'",
].join(', ');

/** Query-output settings for every request: client settings on a server, session SETs on chdb (see engine.ts). */
const CLIENT_SETTINGS = {
  output_format_json_quote_64bit_integers: 1,
} as const;

/** Open a Store, create its database and (by default) apply pending migrations. */
export async function createStore(opts: StoreOptions = {}): Promise<Store> {
  for (const key of Object.keys(opts)) {
    if (!KNOWN_OPTIONS.has(key))
      throw ERR_STORE_BAD_OPTIONS(`unknown option "${key}" (known: ${[...KNOWN_OPTIONS].join(', ')})`);
  }
  if (opts.url !== undefined && opts.dataDir !== undefined) {
    throw ERR_STORE_BAD_OPTIONS('give either url (ClickHouse server) or dataDir (embedded engine), not both');
  }
  const database = opts.database ?? 'cordon';
  if (!IDENT.test(database))
    throw ERR_STORE_BAD_OPTIONS(`database "${database}" is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)`);
  const ctx = childContext(opts.ctx ?? createContext({ log: silentLogger }), 'store');
  const engine = await openEngine({
    ...(opts.url !== undefined ? { url: opts.url } : { dataDir: resolve(opts.dataDir ?? './data/clickhouse') }),
    database,
    // readonly last: once it is set, the session may change no setting
    settings: opts.readOnly ? { ...CLIENT_SETTINGS, readonly: '1' } : CLIENT_SETTINGS,
  });
  const store = new ClickHouseStore(engine, database, resolve(opts.migrationsDir ?? DEFAULT_MIGRATIONS_DIR), ctx);
  if (opts.migrate !== false && !opts.readOnly) {
    try {
      const res = await store.migrate();
      if (res.applied.length > 0) ctx.log.info({ applied: res.applied, database }, 'Applied ClickHouse migrations.');
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  return store;
}

class ClickHouseStore implements Store {
  readonly mode: 'embedded' | 'server';
  readonly location: string;
  private readonly client: ClickHouseClient;
  private readonly specs = new Map<string, Promise<TableSpec>>();
  private readonly inflight = new Set<Promise<unknown>>();
  private closed = false;

  constructor(
    private readonly engine: Engine,
    readonly database: string,
    private readonly migrationsDir: string,
    private readonly ctx: Context,
  ) {
    this.client = engine.client;
    this.mode = engine.mode;
    this.location = engine.location;
  }

  migrate(): Promise<MigrateResult> {
    return this.track('migrate', () => this.runMigrations());
  }

  insert(table: string, rows: readonly object[], opts: InsertOptions): Promise<InsertResult> {
    return this.track('insert', () => this.runInsert(table, rows, opts));
  }

  query<T = Record<string, unknown>>(sql: string, params?: Record<string, unknown>): Promise<T[]> {
    return this.track('query', async () => {
      try {
        const rs = await this.client.query({
          query: sql,
          format: 'JSONEachRow',
          ...(params ? { query_params: params } : {}),
        });
        return await rs.json<T>();
      } catch (err) {
        this.ctx.metrics.inc('errors');
        throw ERR_STORE_QUERY.withCause(err, clickhouseDetail(err), oneLine(sql));
      }
    });
  }

  command(sql: string, params?: Record<string, unknown>): Promise<void> {
    return this.track('command', async () => {
      try {
        await this.client.command({ query: sql, ...(params ? { query_params: params } : {}) });
      } catch (err) {
        this.ctx.metrics.inc('errors');
        throw ERR_STORE_QUERY.withCause(err, clickhouseDetail(err), oneLine(sql));
      } finally {
        // DDL may have changed a table's columns.
        this.specs.clear();
      }
    });
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // chdb defers tearing down a session that still has work running, and until it has, no other
    // data dir can be opened in this process: wait for our own calls first.
    await Promise.allSettled([...this.inflight]);
    await this.engine.close();
  }

  private async track<T>(op: string, fn: () => Promise<T>): Promise<T> {
    if (this.closed) throw ERR_STORE_CLOSED(op);
    const p = fn();
    this.inflight.add(p);
    try {
      return await p;
    } finally {
      this.inflight.delete(p);
    }
  }

  private async runInsert(table: string, rows: readonly object[], opts: InsertOptions): Promise<InsertResult> {
    const batchId = opts?.batchId;
    if (typeof batchId !== 'string' || batchId.length === 0) throw ERR_STORE_BAD_BATCH_ID('it is missing or empty');
    if (batchId.length > 1024)
      throw ERR_STORE_BAD_BATCH_ID(`it is ${batchId.length} characters long, the limit is 1024`);
    if (!Array.isArray(rows)) throw ERR_STORE_BAD_ROW(table, batchId, 'rows is not an array');
    const spec = await this.tableSpec(table);
    if (rows.length === 0) return { rows: 0, bytes: 0 };
    const encoded = encodeRows(spec, rows);
    if (isProblem(encoded)) {
      this.ctx.metrics.inc('errors');
      throw ERR_STORE_BAD_ROW(table, batchId, encoded.message);
    }
    const query = `INSERT INTO ${table} SETTINGS ${INSERT_SETTINGS}, insert_deduplication_token = ${sqlString(batchId)} FORMAT JSONEachRow`;
    try {
      const res = await this.client.exec({ query, values: Readable.from([encoded.body]) });
      res.stream.destroy();
    } catch (err) {
      this.ctx.metrics.inc('errors');
      const detail = clickhouseDetail(err);
      if (BAD_ROW_TYPES.test(clickhouseError(err)?.type ?? ''))
        throw ERR_STORE_BAD_ROW.withCause(err, table, batchId, detail);
      throw ERR_STORE_INSERT_FAILED.withCause(err, table, batchId, detail);
    }
    this.ctx.metrics.inc('insert.batches');
    this.ctx.metrics.inc('insert.rows', rows.length);
    this.ctx.metrics.inc('insert.bytes', encoded.bytes);
    return { rows: rows.length, bytes: encoded.bytes };
  }

  private tableSpec(table: string): Promise<TableSpec> {
    if (!IDENT.test(table)) {
      return Promise.reject(ERR_STORE_BAD_TABLE(table, 'the name is not a plain identifier ([A-Za-z_][A-Za-z0-9_]*)'));
    }
    let spec = this.specs.get(table);
    if (!spec) {
      spec = this.loadSpec(table);
      this.specs.set(table, spec);
      spec.catch(() => this.specs.delete(table));
    }
    return spec;
  }

  private async loadSpec(table: string): Promise<TableSpec> {
    let cols: ColumnInfo[];
    try {
      const rs = await this.client.query({
        query:
          'SELECT name, type, default_kind FROM system.columns WHERE database = {db:String} AND table = {t:String} ORDER BY position',
        format: 'JSONEachRow',
        query_params: { db: this.database, t: table },
      });
      cols = await rs.json<ColumnInfo>();
    } catch (err) {
      throw ERR_STORE_QUERY.withCause(
        err,
        `could not read the columns of table "${table}": ${clickhouseDetail(err)}`,
        'SELECT … FROM system.columns',
      );
    }
    if (cols.length === 0) throw ERR_STORE_BAD_TABLE(table, `it does not exist in database "${this.database}"`);
    return compileTableSpec(table, cols);
  }

  private async runMigrations(): Promise<MigrateResult> {
    const migrations = loadMigrations(this.migrationsDir);
    await this.exec(MIGRATIONS_DDL);
    const rs = await this.client.query({
      query: `SELECT version, any(name) AS name, groupUniqArray(checksum) AS checksums FROM ${MIGRATIONS_TABLE} GROUP BY version ORDER BY version`,
      format: 'JSONEachRow',
    });
    const applied = new Map(
      (await rs.json<{ version: number; name: string; checksums: string[] }>()).map((r) => [r.version, r]),
    );
    const byVersion = new Map(migrations.map((m) => [m.version, m]));
    for (const [version, rec] of applied) {
      const m = byVersion.get(version);
      if (!m) throw ERR_STORE_MIGRATION_MISSING(versionLabel(version), rec.name, this.migrationsDir);
      const other = rec.checksums.find((c) => c !== m.checksum);
      if (other !== undefined) throw ERR_STORE_MIGRATION_CHANGED(m.file, other, m.checksum);
    }
    const done: string[] = [];
    for (const m of migrations) {
      if (applied.has(m.version)) continue;
      for (let i = 0; i < m.statements.length; i++) {
        try {
          await this.client.command({ query: m.statements[i]! });
        } catch (err) {
          throw ERR_STORE_MIGRATION_FAILED.withCause(err, m.file, i + 1, clickhouseDetail(err));
        }
      }
      // Recorded only after every statement succeeded: a crash in between re-runs the file, which is
      // why migration statements must be idempotent (IF NOT EXISTS).
      await this.runInsert(MIGRATIONS_TABLE, [{ version: m.version, name: m.name, checksum: m.checksum }], {
        batchId: `migration:${m.version}:${m.checksum}`,
      });
      done.push(m.file);
    }
    this.specs.clear();
    return { applied: done, alreadyApplied: [...applied.keys()] };
  }

  private async exec(sql: string): Promise<void> {
    try {
      await this.client.command({ query: sql });
    } catch (err) {
      throw ERR_STORE_QUERY.withCause(err, clickhouseDetail(err), oneLine(sql));
    }
  }
}

/** ClickHouse error types that mean "this data is wrong", as opposed to "the server is". */
const BAD_ROW_TYPES =
  /PARSE|CANNOT_READ|INCORRECT_DATA|TYPE_MISMATCH|VIOLATED_CONSTRAINT|ARGUMENT_OUT_OF_BOUND|CANNOT_CONVERT|NO_SUCH_COLUMN|UNKNOWN_IDENTIFIER|TOO_LARGE_STRING_SIZE|DECIMAL_OVERFLOW/;

/**
 * A ClickHouse server error, by shape: `instanceof ClickHouseError` is not reliable, because
 * @clickhouse/client bundles its own copy of the class and chdb throws the one from
 * @clickhouse/client-common.
 */
function clickhouseError(err: unknown): { code: string; type: string | undefined; message: string } | undefined {
  if (!(err instanceof Error) || err.constructor.name !== 'ClickHouseError') return undefined;
  const e = err as Error & { code?: unknown; type?: unknown };
  return { code: String(e.code), type: typeof e.type === 'string' ? e.type : undefined, message: e.message };
}

function clickhouseDetail(err: unknown): string {
  const ch = clickhouseError(err);
  if (ch) return `${ch.type ?? 'UNKNOWN'} (${ch.code}): ${oneLine(ch.message)}`;
  if (err instanceof Error) return oneLine(err.message);
  return String(err);
}

function oneLine(s: string, max = 500): string {
  const line = s.replace(/\s+/g, ' ').trim();
  return line.length > max ? `${line.slice(0, max)}…` : line;
}

/** A ClickHouse string literal: backslash and quote escaped. */
function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}
