import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createClient, type ClickHouseClient, type ClickHouseSettings } from '@clickhouse/client';
import {
  ERR_STORE_BAD_OPTIONS,
  ERR_STORE_DATA_DIR_LOCKED,
  ERR_STORE_ENGINE_BUSY,
  ERR_STORE_UNREACHABLE,
} from './errors.js';

/**
 * The only place that knows there are two engines. Both are driven through one
 * `@clickhouse/client` ClickHouseClient; the embedded one gets chdb's `Connection`
 * (`createChdbConnection` from `chdb/connection`) plugged into `createClient({ connection })`
 * instead of the HTTP connection, so every query, insert and error has the same shape.
 */
export interface Engine {
  readonly mode: 'embedded' | 'server';
  readonly client: ClickHouseClient;
  readonly location: string;
  close(): Promise<void>;
}

export type EngineOptions = ({ url: string } | { dataDir: string }) & {
  database: string;
  settings: ClickHouseSettings;
};

export function openEngine(opts: EngineOptions): Promise<Engine> {
  return 'url' in opts
    ? openServer(opts.url, opts.database, opts.settings)
    : openEmbedded(opts.dataDir, opts.database, opts.settings);
}

/**
 * chdb (libchdb) runs ONE ClickHouse engine per process, bound to one data directory. Any number
 * of connections (and so Stores) may share that directory, each with its own session state; a
 * second directory is refused until every connection to the first is closed. So: one dataDir per
 * process at a time — services in `cordon up` share one dataDir, and tests close their Store
 * before the next test opens its own temp dir.
 */
async function openEmbedded(dataDir: string, database: string, settings: ClickHouseSettings): Promise<Engine> {
  try {
    mkdirSync(dataDir, { recursive: true });
  } catch (err) {
    throw ERR_STORE_BAD_OPTIONS.withCause(err, `cannot create dataDir ${dataDir}: ${(err as Error).message}`);
  }
  // Loaded lazily: it maps a ~550 MB native library, which server mode never needs.
  const { createChdbConnection } = await import('chdb/connection');
  let connection: ReturnType<typeof createChdbConnection>;
  try {
    connection = createChdbConnection({ path: dataDir });
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    const holder = embeddedLockHolder(dataDir);
    if (holder !== null) throw ERR_STORE_DATA_DIR_LOCKED.withCause(err, dataDir, holder);
    if (/one active data directory|Cannot open a session/i.test(msg))
      throw ERR_STORE_ENGINE_BUSY.withCause(err, dataDir, msg);
    throw ERR_STORE_UNREACHABLE.withCause(err, `embedded engine (${dataDir})`, msg);
  }
  // No client-level clickhouse_settings here: chdb's connection turns them into a `SET …;` prefix
  // on every statement, and that prefix alone cost ~25% of insert throughput (measured). They are
  // session state on a chdb connection, so they are SET once instead.
  const client = createClient({
    connection: connection as unknown as NonNullable<Parameters<typeof createClient>[0]>['connection'],
  });
  try {
    await client.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
    // Unqualified table names resolve in `database` (the server path gets the same through the
    // client's `database` option).
    await client.command({ query: `USE ${database}` });
    for (const [name, value] of Object.entries(settings)) {
      await client.command({
        query: `SET ${name} = ${typeof value === 'string' ? `'${value.replace(/'/g, "''")}'` : String(value)}`,
      });
    }
  } catch (err) {
    await client.close();
    throw ERR_STORE_UNREACHABLE.withCause(err, `embedded engine (${dataDir})`, (err as Error).message);
  }
  return { mode: 'embedded', client, location: dataDir, close: () => client.close() };
}

/**
 * The process that holds an embedded ClickHouse data dir, or null: ClickHouse keeps a `status`
 * file there ("PID: 1234", …) while it has the directory open and removes it when it closes.
 */
export function embeddedLockHolder(dataDir: string): number | null {
  let text: string;
  try {
    text = readFileSync(join(dataDir, 'status'), 'utf8');
  } catch {
    return null;
  }
  const pid = Number(/^PID:\s*(\d+)/m.exec(text)?.[1]);
  if (!(pid > 0) || pid === process.pid) return null;
  try {
    process.kill(pid, 0);
    return pid;
  } catch (err) {
    // EPERM: it exists, as another user
    return (err as NodeJS.ErrnoException).code === 'EPERM' ? pid : null;
  }
}

async function openServer(url: string, database: string, settings: ClickHouseSettings): Promise<Engine> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    // what is between "//" and "@" may be a password: never in a message
    throw ERR_STORE_BAD_OPTIONS(
      `url "${url.replace(/\/\/[^/@]*@/, '//***@')}" is not a URL; expected http[s]://host:port`,
    );
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') {
    throw ERR_STORE_BAD_OPTIONS(
      `url protocol "${parsed.protocol}" is not supported; use http: or https: (the ClickHouse HTTP interface)`,
    );
  }
  const safe = new URL(parsed);
  safe.username = '';
  safe.password = '';
  const location = safe.toString();
  // The target database may not exist yet, and a client bound to a missing database fails every
  // request, so it is created through a client bound to the default one.
  const boot = createClient({ url, clickhouse_settings: settings });
  try {
    const ping = await boot.ping();
    if (!ping.success) throw ERR_STORE_UNREACHABLE.withCause(ping.error, location, ping.error.message);
    await boot.command({ query: `CREATE DATABASE IF NOT EXISTS ${database}` });
  } catch (err) {
    if (ERR_STORE_UNREACHABLE.is(err)) throw err;
    throw ERR_STORE_UNREACHABLE.withCause(err, location, (err as Error).message);
  } finally {
    await boot.close();
  }
  const client = createClient({ url, database, clickhouse_settings: settings });
  return { mode: 'server', client, location, close: () => client.close() };
}
