/**
 * A signed topic followed as a table (the responder's and the manager's view of block status)
 * is held to the consume loop's check: a report forged, misbound, or unsigned in an enrolled
 * enforcer's name never enters the table.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { createEmbeddedBus, type ProduceRecord } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS } from '@cordon/schemas';
import { producerRegistration, waitFor } from '@cordon/testkit';
import { createRecordSigner, defineStage, runStage, stageAcls } from '../src/index.js';

const signer = (id: string) => createRecordSigner(id, generateKeyPairSync('ed25519').privateKey);

const report = (enforcer: string, target: string, value = true): ProduceRecord => ({
  key: Buffer.from(`${enforcer}|${target}`),
  value: value
    ? codecFor(TOPICS.blockStatus).encode({
        block_id: `b-${target}`,
        enforcer,
        target,
        status: 'applied',
        ts_us: 1_700_000_000_000_000,
        expires_us: 1_700_000_600_000_000,
        error: null,
      })
    : null,
});

const follower = (seen: Map<string, boolean>) =>
  defineStage({
    name: 'viewer',
    summary: 'follows block status as a table',
    config: z.object({}).strict(),
    inputs: () => [],
    reads: () => [TOPICS.blockStatus],
    outputs: () => [],
    async start(stage) {
      await stage.follow(TOPICS.blockStatus, (r) => {
        seen.set(r.key!.toString(), r.value !== null);
      });
      return {};
    },
  });

test('a followed block-status table takes an enforcer’s own signed reports and refuses forged, misbound and unsigned-in-its-name ones', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-follow-trust-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: dir, ctx });
  await bus.admin.ensureTopics(allTopicSpecs());
  const a = signer('agt-a');
  const b = signer('agt-b');
  const stranger = signer('agt-nobody'); // never registered
  const p = bus.producer();
  await p.send(TOPICS.producers, [producerRegistration(a, { vm: 'vm-a' }), producerRegistration(b, { vm: 'vm-b' })]);
  const seen = new Map<string, boolean>();
  const running = await runStage(follower(seen), { bus, ctx, config: {}, verifyRecords: true });
  try {
    const bs = TOPICS.blockStatus;
    await p.send(bs, b.signAll(bs, [report('agent:agt-b', '198.51.100.1')])); // b's own: kept
    await p.send(bs, a.signAll(bs, [report('agent:agt-b', '198.51.100.2')])); // a speaking for b: MISBOUND
    await p.send(bs, [report('agent:agt-b', '198.51.100.3')]); // unsigned in b's name: UNSIGNED
    await p.send(bs, stranger.signAll(bs, [report('agent:agt-nobody', '198.51.100.4')])); // FORGED
    const forged = b.signAll(bs, [report('agent:agt-b', '198.51.100.5')])[0]!;
    await p.send(bs, [{ ...forged, value: report('agent:agt-b', '198.51.100.6').value }]); // altered: FORGED
    await p.send(bs, [report('agent:agt-b', '198.51.100.1', false)]); // unsigned tombstone in b's name
    await p.send(bs, [report('watchdog:h9', '198.51.100.7')]); // an unenrolled watchdog's unsigned report: kept
    await p.send(bs, a.signAll(bs, [report('agent:agt-a', '198.51.100.8')])); // a's own, last: kept
    await waitFor('the last report to reach the table', () => seen.has('agent:agt-a|198.51.100.8'), 10_000, 20);
    assert.deepEqual(Object.fromEntries(seen), {
      'agent:agt-b|198.51.100.1': true, // the unsigned tombstone did not lift it
      'watchdog:h9|198.51.100.7': true,
      'agent:agt-a|198.51.100.8': true,
    });
  } finally {
    await running.stop();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a stage that only follows a signed topic may read the producer keys (its Kafka ACLs)', () => {
  const names = stageAcls(follower(new Map()), {}).map((a) => `${a.name} ${a.operation}`);
  assert.ok(names.includes(`${TOPICS.producers} READ`), names.join(', '));
});
