import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS, type Assignment } from '@cordon/schemas';
import { assignmentsOf } from '../src/index.js';

test("a VM's assignment history says when the watchdog recovered a lost agent's frames, and from when", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-rows-'));
  const bus = createEmbeddedBus({ dataDir: dir, ctx: createContext({ log: silentLogger }) });
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    const t = Date.UTC(2026, 11, 6, 12) * 1000;
    const a = (o: Partial<Assignment>): Assignment => ({
      vm: 'vm1',
      mode: 'watchdog',
      host: 'hv1',
      agent: null,
      incarnation: null,
      policy_version: 1,
      reason: '',
      since_us: t,
      enforcer: 'watchdog:hv1',
      handoff_us: t,
      epoch: 1,
      gated: false,
      recovery_of: null,
      recovery_from_us: 0,
      clock_offset_us: 0,
      ...o,
    });
    const codec = codecFor(TOPICS.assignments);
    await bus.producer().send(
      TOPICS.assignments,
      [
        a({
          mode: 'agent',
          agent: 'agt-1',
          enforcer: 'agent:agt-1',
          epoch: 2,
          reason: 'agent agt-1 is current',
          clock_offset_us: -7_400,
        }),
        a({
          epoch: 3,
          handoff_us: t + 2_000_000,
          recovery_of: 'agent:agt-1',
          recovery_from_us: t + 1_500_000,
          reason: 'watchdog: agent agt-1 has been silent for 5.0 s',
        }),
      ].map((x) => ({ key: Buffer.from('vm1'), value: codec.encode(x) })),
    );
    const rows = await assignmentsOf(bus, 'vm1', true);
    assert.deepEqual(
      rows.map((r) => [r.epoch, r.mode, r.clock, r.recovery]),
      [
        [2, 'agent', '-7.4 ms', '-'],
        [3, 'watchdog', '-', 'agent:agt-1 from 2026-12-06T12:00:01.500Z'],
      ],
    );
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
