/**
 * The security findings of the "Trust" issue that are reached through the `cordon` command:
 * each test performs the attack (or the mistake an attacker waits for) against the command
 * as a user runs it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');
const ENV = { ...process.env, CORDON_KAFKA_BROKERS: '', CORDON_CLICKHOUSE_URL: '', CORDON_LOG_LEVEL: 'warn', CORDON_METRICS_ADDR: 'off' };

const cordon = (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...ENV, ...env }, timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

/** Every path below `dir` that its group or others may read, write or enter. */
function notPrivate(dir: string): string[] {
  const bad: string[] = [];
  const walk = (p: string) => {
    const st = statSync(p);
    if (st.mode & 0o077) bad.push(`${p} ${(st.mode & 0o777).toString(8)}`);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  walk(dir);
  return bad;
}

test('a data dir made by any cordon command is its owner\'s only: the embedded ClickHouse and bus included', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-trust-modes-'));
  try {
    const data = join(dir, 'data');
    const q = await cordon(['query', 'SELECT 1', '--data-dir', data]);
    assert.equal(q.code, 0, q.stderr);
    const t = await cordon(['topics', 'apply', '--data-dir', data]);
    assert.equal(t.code, 0, t.stderr);
    assert.deepEqual(notPrivate(data), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
