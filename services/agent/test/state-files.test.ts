import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { LogTailer, startIdentity } from '../src/index.js';

test("the agent's state (identity.json, log positions) is readable by its owner only, whatever the umask", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-agent-state-'));
  const old = process.umask(0o022);
  try {
    const state = join(dir, 'state');
    const ctx = createContext({ log: silentLogger });
    startIdentity(state, 'agt-0123456789abcdef', ctx.log);
    const log = join(dir, 'auth.log');
    writeFileSync(log, 'a line\n');
    const t = new LogTailer({
      sources: [{ path: log }],
      roots: [dir],
      stateFile: join(state, 'logtail.json'),
      ctx,
      startAt: 'beginning',
      onBatch: async () => undefined,
    });
    await t.pollAll();
    await t.stop();
    assert.equal(statSync(state).mode & 0o777, 0o700, 'the state dir');
    for (const f of readdirSync(state)) assert.equal(statSync(join(state, f)).mode & 0o777, 0o600, f);
    assert.deepEqual(readdirSync(state).sort(), ['identity.json', 'logtail.json']);
  } finally {
    process.umask(old);
    rmSync(dir, { recursive: true, force: true });
  }
});
