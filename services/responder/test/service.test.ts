import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, readRange, type Bus } from '@cordon/bus';
import { applyInventoryFile, applyPolicyFile } from '@cordon/policy';
import { allTopicSpecs, codecFor, TOPICS, type AlertInput, type BlockDecision } from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { waitFor } from '@cordon/testkit';
import { blockIdFor, responderStage } from '../src/index.js';

const alertsCodec = codecFor(TOPICS.alerts);
const blocksCodec = codecFor(TOPICS.blocks);

async function blocks(bus: Bus): Promise<BlockDecision[]> {
  const out: BlockDecision[] = [];
  await readRange(bus, TOPICS.blocks, (r) => out.push(blocksCodec.decode(r.value!)));
  return out;
}

test('the responder turns prevent-mode alerts into blocks, sends bad alerts to the DLQ, and decides nothing twice on replay', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-responder-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    writeFileSync(join(dir, 'policy.yaml'), 'mode: detect\nrules:\n  "2010935": prevent\nblocks:\n  ttlS: 60\n');
    writeFileSync(
      join(dir, 'inv.yaml'),
      'hosts:\n  hv1:\n    vms:\n      web-1:\n        nics:\n          - mac: 02:00:0a:d5:01:0a\n            ips: [10.213.1.10]\n',
    );
    await applyPolicyFile({ bus, ctx }, join(dir, 'policy.yaml'));
    await applyInventoryFile({ bus, ctx }, join(dir, 'inv.yaml'));
    const now = Date.now() * 1000;
    const base: AlertInput = {
      alert_id: 'a-1',
      ts_us: now,
      stage: 'dpi',
      vm: null,
      sensor: 'hv1',
      rule_id: 'sid:2010935',
      rule_rev: 1,
      signature: 'x',
      severity: 1,
      category: null,
      action: 'alert',
      src_ip: '10.213.1.66',
      src_port: 40000,
      dst_ip: '10.213.1.10',
      dst_port: 80,
      proto: 'TCP',
      flow_id: null,
      evidence: '{}',
    };
    const producer = bus.producer();
    await producer.send(TOPICS.alerts, [
      { key: Buffer.from('web-1'), value: alertsCodec.encode(base) },
      { key: Buffer.from('web-1'), value: alertsCodec.encode({ ...base, alert_id: 'a-detect', rule_id: 'sid:1' }) }, // detect: no block
      { key: Buffer.from('web-1'), value: Buffer.from('not avro') },
      {
        key: Buffer.from('web-1'),
        value: alertsCodec.encode({ ...base, alert_id: 'a-hostile', src_ip: '1.2.3.4; flush ruleset' }),
      },
    ]);
    const r1 = await runStage(responderStage, { bus, ctx });
    const got = await waitFor('a block', async () => ((await blocks(bus)).length ? blocks(bus) : undefined));
    assert.equal(got.length, 1);
    assert.equal(got[0]!.enforcer, 'watchdog:hv1');
    assert.equal(got[0]!.target.ip, '10.213.1.66');
    assert.equal(got[0]!.block_id, blockIdFor('a-1'));
    assert.equal(got[0]!.ttl_ms, 60_000);
    const letters = await waitFor('two dead letters', async () => {
      const l: string[] = [];
      await readRange(bus, TOPICS.dlq, (r) => l.push(codecFor(TOPICS.dlq).decode(r.value!).error_code));
      return l.length >= 2 ? l : undefined;
    });
    assert.deepEqual(letters.sort(), ['CORDON_ERR_RESPONDER_ALERT', 'CORDON_ERR_SCHEMA_WIRE_FORMAT']);
    assert.equal(ctx.metrics.get('responder.skipped_not-blocking'), 1);

    // the same alert delivered again, and a second alert while the block is active
    await producer.send(TOPICS.alerts, [
      { key: Buffer.from('web-1'), value: alertsCodec.encode(base) },
      { key: Buffer.from('web-1'), value: alertsCodec.encode({ ...base, alert_id: 'a-2', ts_us: now + 1000 }) },
    ]);
    await waitFor('the replayed alerts to be read', async () =>
      ctx.metrics.get('responder.received') >= 6 ? true : undefined,
    );
    await r1.stop();
    // a whole replay of the alerts topic by a fresh group: nothing new either
    const r2 = await runStage(responderStage, { bus, ctx, config: { groupId: 'cordon-responder-replay' } });
    await waitFor('the full replay', async () => (ctx.metrics.get('responder.received') >= 12 ? true : undefined));
    await r2.stop();
    assert.equal((await blocks(bus)).length, 1, 'one block, neither duplicated nor extended');
    await producer.close();
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
