import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createContext, silentLogger } from '@cordon/runtime';
import { createStore, microsToDateTime64, type Store, type StoreOptions } from '../src/index.js';

export const REPO_MIGRATIONS = fileURLToPath(new URL('../../../../schemas/clickhouse/', import.meta.url));

/** A fresh directory, removed when the test ends. */
export function tempDir(t: { after(fn: () => void): void }, prefix = 'cordon-store-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A copy of the repository's migrations that a test may edit. */
export function migrationsCopy(t: { after(fn: () => void): void }): string {
  const dir = tempDir(t, 'cordon-migrations-');
  cpSync(REPO_MIGRATIONS, dir, { recursive: true });
  return dir;
}

export function open(dataDir: string, extra: Omit<StoreOptions, 'dataDir'> = {}): Promise<Store> {
  return createStore({ dataDir, ctx: createContext({ log: silentLogger }), ...extra });
}

/** Flow rows as the sink writes them; `month` moves first_seen so a batch can span partitions. */
export function flowRow(i: number, month = 0): Record<string, unknown> {
  const first = 1_700_000_000_000_000 + month * 31 * 86_400_000_000 + i * 1_000;
  return {
    flow_id: `flow-${month}-${i}`,
    sensor: 'sensor-1',
    vm: `vm-${i % 7}`,
    vlan: i % 4094,
    proto: i % 2 === 0 ? 6 : 17,
    src_ip: `10.0.${(i >> 8) & 255}.${i & 255}`,
    src_port: 1024 + (i % 60000),
    dst_ip: '2001:db8::1',
    dst_port: 443,
    first_seen: microsToDateTime64(first),
    last_seen: microsToDateTime64(first + 2_500_000),
    pkts_toserver: 10,
    pkts_toclient: 12,
    bytes_toserver: 1_000 + i,
    bytes_toclient: 20_000,
    tcp_flags_toserver: 0x1b,
    tcp_flags_toclient: 0x1b,
    end_reason: 'fin',
  };
}

export async function count(store: Store, sql: string): Promise<number> {
  const [row] = await store.query<{ n: string }>(sql);
  return Number(row?.n);
}
