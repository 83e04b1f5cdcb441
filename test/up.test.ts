/** The README's first command: `cordon up` on the embedded defaults shows the demo's flows from ClickHouse. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');

test('cordon up replays the bundled sample and prints a flow summary from ClickHouse', { timeout: 180_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-up-'));
  try {
    const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'up', '--exit'], {
      cwd: dir,
      env: { ...process.env, CORDON_KAFKA_BROKERS: '', CORDON_LOG_LEVEL: 'warn' },
    });
    const totals = /flows\s+packets\s+bytes\s*\n[-\s]+\n\s*(\d+)\s+(\d+)\s+(\d+)/.exec(stdout);
    assert.ok(totals, `a totals table in:\n${stdout}`);
    // the sample: 20 web sessions (DNS + TCP), a ping and a 12-port scan
    assert.equal(Number(totals[1]), 20 * 2 + 1 + 12);
    assert.match(stdout, /Top conversations:/);
    assert.match(stdout, /192\.168\.66\.6\s+10\.0\.0\.10\s+\d+\s+tcp\s+1\s+2\s+\d+\s+\["rst"\]/, 'the port scan shows as RST-ended flows');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
