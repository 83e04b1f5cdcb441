import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { createEmbeddedBus, readAll } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { defineStage, runStage } from '@cordon/stage';
import { allTopicSpecs, blockKey, codecFor, TOPICS, type BlockDecision } from '@cordon/schemas';
import { ipBlockDecision, waitFor } from '@cordon/testkit';
import { followBlocks, type BlockApplier } from '../src/index.js';

const codec = codecFor(TOPICS.blocks);
const statusCodec = codecFor(TOPICS.blockStatus);
const ME = 'watchdog:hv-1';

/** Records what an enforcer was asked to do; fails on the targets it is told to. */
class FakeSets implements BlockApplier {
  readonly inForce = new Map<string, number>();
  readonly calls: string[] = [];
  failApply = new Set<string>();
  failReconcile = false;
  targetOf(d: BlockDecision): string {
    return d.target.ip!;
  }
  async apply(d: BlockDecision, nowMs: number) {
    const ip = d.target.ip!;
    this.calls.push(`apply ${ip}`);
    if (this.failApply.has(ip)) throw new Error(`nft said no to ${ip}`);
    const ttlMs = Math.floor(d.expires_us / 1000 - nowMs);
    if (ttlMs <= 0) return null;
    this.inForce.set(ip, ttlMs);
    return { ttlMs };
  }
  async lift(ip: string) {
    this.calls.push(`lift ${ip}`);
    this.inForce.delete(ip);
  }
  async reconcile(keep: ReadonlySet<string>) {
    this.calls.push(`reconcile ${[...keep].sort().join(',')}`);
    if (this.failReconcile) throw new Error('the kernel is busy');
    let n = 0;
    for (const ip of [...this.inForce.keys()]) if (!keep.has(ip)) (this.inForce.delete(ip), n++);
    return n;
  }
}

const enforcerStage = (sets: FakeSets) =>
  defineStage({
    name: 'enforcer',
    summary: 'test',
    config: z.object({}).strict(),
    inputs: () => [],
    outputs: () => [TOPICS.blockStatus, TOPICS.alerts, TOPICS.dlq],
    start: async (stage) => followBlocks(stage, { enforcer: ME, applier: sets }),
  });

/** Every report the enforcer sent, in order (`target:status`; a tombstone is `target:lifted`). */
const statuses = async (bus: ReturnType<typeof createEmbeddedBus>) =>
  (await readAll(bus, TOPICS.blockStatus)).map((r) => {
    if (r.value === null) return `${r.key!.toString().split('|')[1]}:lifted`;
    const s = statusCodec.decode(r.value);
    assert.equal(r.key!.toString(), `${s.enforcer}|${s.target}`, 'a report is keyed as its decision');
    return `${s.target}:${s.status}`;
  });

test('restore: every decision in force, one that fails is reported failed and does not stop the others; stale elements reconciled away', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-enforce-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: dir, ctx });
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    const p = bus.producer();
    const now = Date.now();
    const put = (ip: string, extra: Partial<BlockDecision> = {}) => ({
      key: blockKey(ME, ip),
      value: codec.encode({ ...ipBlockDecision({ enforcer: ME, ip, ttlMs: 600_000, now }), ...extra }),
    });
    await p.send(TOPICS.blocks, [
      put('10.0.0.1'),
      put('10.0.0.2'),
      put('10.0.0.3', { status: 'failed' }), // a failed decision still stands: tried again
      put('10.0.0.4', { status: 'expired' }),
      put('10.0.0.9'),
      { key: blockKey(ME, '10.0.0.9'), value: null }, // lifted while we were down
      {
        key: blockKey('watchdog:other', '10.0.0.5'),
        value: codec.encode(ipBlockDecision({ enforcer: 'watchdog:other', ip: '10.0.0.5', ttlMs: 600_000, now })),
      },
      {
        key: blockKey(ME, '10.0.0.6'),
        value: codec.encode(ipBlockDecision({ enforcer: ME, ip: '10.0.0.7', ttlMs: 600_000, now })),
      }, // key and target disagree
      { key: blockKey(ME, '10.0.0.8'), value: Buffer.from('garbage') },
    ]);
    const sets = new FakeSets();
    sets.inForce.set('10.0.0.9', 1); // still in the kernel from before
    sets.failApply.add('10.0.0.2');
    // a report left from before on a decision lifted while the enforcer was down: taken back
    await p.send(TOPICS.blockStatus, [
      {
        key: blockKey(ME, '10.0.0.9'),
        value: statusCodec.encode({
          block_id: 'old',
          enforcer: ME,
          target: '10.0.0.9',
          status: 'applied',
          ts_us: now * 1000,
          expires_us: (now + 600_000) * 1000,
          error: null,
        }),
      },
    ]);
    const decisionsWritten = (await readAll(bus, TOPICS.blocks)).length;
    let s = await runStage(enforcerStage(sets), { bus, ctx });
    try {
      assert.deepEqual([...sets.inForce.keys()].sort(), ['10.0.0.1', '10.0.0.3']);
      assert.deepEqual([...s.active.keys()].sort(), ['10.0.0.1', '10.0.0.3']);
      assert.ok(sets.calls.includes('reconcile 10.0.0.1,10.0.0.3'), sets.calls.join('; '));
      assert.ok(!sets.calls.some((c) => c.includes('10.0.0.5') || c.includes('10.0.0.7')));
      await waitFor(
        'the reports',
        async () => (await statuses(bus)).filter((x) => /:(applied|failed)$/.test(x)).length >= 3,
      );
      await waitFor('the stale report taken back', async () => (await statuses(bus)).includes('10.0.0.9:lifted'));
      const st = await statuses(bus);
      assert.ok(
        st.includes('10.0.0.1:applied') && st.includes('10.0.0.3:applied') && st.includes('10.0.0.2:failed'),
        st.join(' '),
      );
      const failed = (await readAll(bus, TOPICS.blockStatus))
        .filter((r) => r.value)
        .map((r) => statusCodec.decode(r.value!))
        .find((x) => x.target === '10.0.0.2')!;
      assert.equal(failed.error, 'CORDON_ERR_UNEXPECTED', 'a failure says why (an uncoded nft error here)');
      const letters = (await readAll(bus, TOPICS.dlq))
        .map((r) => codecFor(TOPICS.dlq).decode(r.value!).error_code)
        .sort();
      assert.deepEqual(letters, ['CORDON_ERR_BLOCK_KEY_MISMATCH', 'CORDON_ERR_SCHEMA_WIRE_FORMAT']);

      // following: a request is applied once and reported, a tombstone lifts and takes the report back
      await p.send(TOPICS.blocks, [put('10.0.1.1')]);
      await waitFor('the new block', () => sets.inForce.has('10.0.1.1'));
      await waitFor('its report', async () => (await statuses(bus)).includes('10.0.1.1:applied'));
      await p.send(TOPICS.blocks, [{ key: blockKey(ME, '10.0.1.1'), value: null }]);
      await waitFor('the lift', () => !sets.inForce.has('10.0.1.1'));
      await waitFor('its report taken back', async () => (await statuses(bus)).includes('10.0.1.1:lifted'));
      assert.equal(sets.calls.filter((c) => c === 'apply 10.0.1.1').length, 1);
      // the enforcer wrote nothing on the decisions topic: its reports went to their own topic
      assert.equal((await readAll(bus, TOPICS.blocks)).length, decisionsWritten + 2, 'only the test wrote decisions');

      // a restart re-applies what stands and says again only what changed
      await s.stop();
      const reportsBefore = (await statuses(bus)).length;
      s = await runStage(enforcerStage(sets), { bus, ctx });
      assert.deepEqual([...s.active.keys()].sort(), ['10.0.0.1', '10.0.0.3']);
      sets.failApply.delete('10.0.0.2');
      await s.stop();
      s = await runStage(enforcerStage(sets), { bus, ctx });
      // (reports land on three partitions: compared as counts, not in order)
      await waitFor('the decision that failed, now applied', async () =>
        (await statuses(bus)).includes('10.0.0.2:applied'),
      );
      assert.equal((await statuses(bus)).length, reportsBefore + 1, 'nothing else said again');
    } finally {
      await s.stop();
      await p.close();
    }
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('restore: a reconcile that fails leaves the enforcer running and every decision in force', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-enforce-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: dir, ctx });
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    const p = bus.producer();
    await p.send(TOPICS.blocks, [
      {
        key: blockKey(ME, '10.0.0.1'),
        value: codec.encode(ipBlockDecision({ enforcer: ME, ip: '10.0.0.1', ttlMs: 600_000 })),
      },
    ]);
    const sets = new FakeSets();
    sets.failReconcile = true;
    const s = await runStage(enforcerStage(sets), { bus, ctx });
    try {
      assert.deepEqual([...sets.inForce.keys()], ['10.0.0.1']);
      await p.send(TOPICS.blocks, [
        {
          key: blockKey(ME, '10.0.0.2'),
          value: codec.encode(ipBlockDecision({ enforcer: ME, ip: '10.0.0.2', ttlMs: 600_000 })),
        },
      ]);
      await waitFor('a block after the failed reconcile', () => sets.inForce.has('10.0.0.2'));
    } finally {
      await s.stop();
      await p.close();
    }
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
