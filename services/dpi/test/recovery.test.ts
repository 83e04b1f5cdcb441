/**
 * A lost agent's recovery through the dpi stage: the watchdog publishes the frames it held while
 * the agent protected the VM (PacketBatch.recovery_of). The agent had delivered some of them;
 * those are not inspected twice, the rest — the ones nobody would have inspected — are. And an
 * agent cannot mark its own batches as a recovery (that would only hide its own traffic).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus, readAll } from '@cordon/bus';
import { applyPolicyFile } from '@cordon/policy';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS, type PacketBatch } from '@cordon/schemas';
import { createRecordSigner, runStage } from '@cordon/stage';
import { producerRegistration, udpFrame, waitFor } from '@cordon/testkit';
import { dpiStage } from '../src/index.js';

const packets = codecFor(TOPICS.packets);

const batch = (id: string, sensor: string, attacks: Array<[number, number]>, recoveryOf: string | null = null) => {
  const b: PacketBatch = {
    batch_id: id,
    sensor,
    vm: 'vm-r',
    linktype: 1,
    end_of_source: false,
    recovery_of: recoveryOf,
    packets: attacks.map(([n, ts], i) => {
      const frame = udpFrame(`CORDON-RECOVER-${n}`);
      return { ts_us: ts, seq: i, orig_len: frame.length, frame };
    }),
  };
  // one flow, one key: both sensors' frames of it reach the same partition, as the publisher keys them
  return { key: Buffer.from('203.0.113.9|10.0.0.10'), value: packets.encode(b) };
};

test(
  "a lost agent's recovery: frames it delivered are inspected once, frames it never sent are inspected, an agent's own 'recovery' is refused",
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-dpi-recovery-'));
    const ctx = createContext({ log: silentLogger });
    const bus = createEmbeddedBus({ dataDir: dir, ctx });
    try {
      await bus.admin.ensureTopics(allTopicSpecs({ partitions: { [TOPICS.packets]: 3 } }));
      const rules = [1, 2, 3, 4].map(
        (n) =>
          `alert udp any any -> any 5353 (msg:"recover ${n}"; content:"CORDON-RECOVER-${n}"; sid:${9400 + n}; rev:1;)`,
      );
      writeFileSync(join(dir, 'r.rules'), `${rules.join('\n')}\n`);
      writeFileSync(join(dir, 'policy.yaml'), `id: default\nruleFiles: [${join(dir, 'r.rules')}]\n`);
      await applyPolicyFile({ bus, ctx }, join(dir, 'policy.yaml'));

      const agent = createRecordSigner('agt-r', generateKeyPairSync('ed25519').privateKey);
      const t = Date.now() * 1000;
      const p = bus.producer();
      await p.send(TOPICS.producers, [producerRegistration(agent, { vm: 'vm-r' })]);
      await p.send(TOPICS.packets, [
        // what the agent delivered before it died
        agent.sign(
          TOPICS.packets,
          batch('agent:agt-r:1', 'agent:agt-r', [
            [1, t + 1_000],
            [2, t + 2_000],
          ]),
        ),
        // the watchdog's recovery: the same two packets as its bridge stamped them, and one the
        // agent never published
        batch(
          'watchdog:hv1:1',
          'watchdog:hv1',
          [
            [1, t + 1_010],
            [2, t + 2_005],
            [3, t + 10_000],
          ],
          'agent:agt-r',
        ),
        // an agent marking its own batch as a recovery
        agent.sign(TOPICS.packets, batch('agent:agt-r:2', 'agent:agt-r', [[4, t + 20_000]], 'agent:agt-r')),
      ]);
      await p.close();

      const svc = await runStage(dpiStage, { bus, ctx, config: { checksum: 'off' }, verifyRecords: true });
      const alerts = async () =>
        (await readAll(bus, TOPICS.alerts))
          .map((r) => codecFor(TOPICS.alerts).decode(r.value!))
          .filter((a) => a.category !== 'record-trust');
      try {
        await waitFor(
          'the recovered attack alerted and the agent’s recovery refused',
          async () =>
            (await alerts()).some((a) => a.rule_id === 'sid:9403') && (await readAll(bus, TOPICS.dlq)).length >= 1,
          60_000,
        );
        await new Promise((r) => setTimeout(r, 500));
      } finally {
        await svc.stop();
      }
      const per = (await alerts()).reduce<Record<string, number>>(
        (m, a) => ((m[a.rule_id] = (m[a.rule_id] ?? 0) + 1), m),
        {},
      );
      assert.deepEqual(per, { 'sid:9401': 1, 'sid:9402': 1, 'sid:9403': 1 });
      const dlq = (await readAll(bus, TOPICS.dlq)).map((r) => codecFor(TOPICS.dlq).decode(r.value!));
      assert.deepEqual(
        dlq.map((d) => [packets.decode(d.value!).batch_id, d.error_code]),
        [['agent:agt-r:2', 'CORDON_ERR_RECORD_MISBOUND']],
      );
    } finally {
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
