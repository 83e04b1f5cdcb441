import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@cordon/runtime';
import { adoptGeneration, checkpointGeneration, startIdentity } from '../src/identity.js';

test('the generation counts starts and checkpoints; a restored state dir comes back behind; an adopted one goes on', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-identity-'));
  try {
    const state = join(dir, 'state');
    const a = startIdentity(state, 'agt-1', silentLogger);
    assert.equal(a.generation, 1);
    cpSync(state, join(dir, 'snapshot'), { recursive: true });
    // running on after the snapshot, without a restart: the checkpoints move it
    checkpointGeneration(state, a);
    checkpointGeneration(state, a);
    assert.equal(a.generation, 3);
    assert.equal(
      startIdentity(state, 'agt-1', silentLogger).generation,
      4,
      'a restart goes on from the last checkpoint',
    );
    // the VM reverted to the snapshot: behind the newest seen (4)
    rmSync(state, { recursive: true });
    cpSync(join(dir, 'snapshot'), state, { recursive: true });
    const r = startIdentity(state, 'agt-1', silentLogger);
    assert.equal(r.generation, 2);
    assert.equal(adoptGeneration(state, r, 5), true);
    assert.equal(adoptGeneration(state, r, 3), false, 'never backwards');
    assert.equal(startIdentity(state, 'agt-1', silentLogger).generation, 6);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
