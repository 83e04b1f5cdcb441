/**
 * Silent sources through the stage: an agent that stops heartbeating and a log source that
 * stops shipping raise one alert each on the alerts topic; a capture that ended (end of
 * source) and an agent that said it is stopping do not.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, readRange } from '@cordon/bus';
import { allTopicSpecs, codecFor, TOPICS, type Alert } from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { waitFor } from '@cordon/testkit';
import { notifyStage } from '../src/index.js';

test(
  'an agent and a log source that fall silent raise an alert each; an ended capture and a stopping agent do not',
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-silence-'));
    const ctx = createContext({ log: silentLogger });
    const bus = createEmbeddedBus({ dataDir: dir, ctx });
    await bus.admin.ensureTopics(allTopicSpecs());
    const stage = await runStage(notifyStage, {
      bus,
      ctx,
      config: { siem: { enabled: false }, silence: { checkEveryS: 0.2, agentS: 1, logS: 1, sensorS: 1 } },
    });
    try {
      // the tracker follows from its start: give the consumer its partitions first
      await new Promise((r) => setTimeout(r, 1000));
      const p = bus.producer();
      const hb = (agent: string, status: 'running' | 'stopping') =>
        codecFor(TOPICS.agents).encode({
          agent,
          vm: `vm-${agent}`,
          version: '1',
          config_hash: 'h',
          identity: 'i',
          heartbeat_us: Date.now() * 1000,
          status,
          kind: 'agent',
          host: null,
          policy_version: 0,
          capture: null,
          acks: {},
          heartbeat_interval_ms: 0,
          public_key: null,
          processes: null,
        });
      await p.send(TOPICS.agents, [
        { key: Buffer.from('agt-1'), value: hb('agt-1', 'running') },
        { key: Buffer.from('agt-2'), value: hb('agt-2', 'running') },
        { key: Buffer.from('agt-2'), value: hb('agt-2', 'stopping') },
      ]);
      await p.send(TOPICS.logs, [
        {
          key: Buffer.from('db-1|/var/log/auth.log'),
          value: codecFor(TOPICS.logs).encode({
            batch_id: 'b',
            agent: 'agt-1',
            vm: 'db-1',
            source: '/var/log/auth.log',
            format: 'auth',
            lines: [],
          }),
        },
      ]);
      const pb = (end: boolean) =>
        codecFor(TOPICS.packets).encode({
          batch_id: 'x',
          sensor: 'replay:x.pcap',
          vm: null,
          linktype: 1,
          end_of_source: end,
          packets: [],
        });
      await p.send(TOPICS.packets, [
        { key: Buffer.from('k'), value: pb(false) },
        { key: Buffer.from('k'), value: pb(true) },
      ]);

      const alerts = await waitFor(
        'two silent-source alerts',
        async () => {
          const out: Alert[] = [];
          await readRange(bus, TOPICS.alerts, (r) => {
            if (r.value) out.push(codecFor(TOPICS.alerts).decode(r.value));
          });
          return out.length >= 2 ? out : null;
        },
        20_000,
        100,
      );
      await new Promise((r) => setTimeout(r, 1000)); // no more come
      const again: Alert[] = [];
      await readRange(bus, TOPICS.alerts, (r) => {
        if (r.value) again.push(codecFor(TOPICS.alerts).decode(r.value));
      });
      assert.deepEqual(
        again.map((a) => a.rule_id).sort(),
        ['cordon:silent-agent', 'cordon:silent-log'],
        JSON.stringify(again.map((a) => a.signature)),
      );
      assert.equal(alerts.find((a) => a.rule_id === 'cordon:silent-agent')!.vm, 'vm-agt-1');
      assert.equal(alerts.find((a) => a.rule_id === 'cordon:silent-log')!.vm, 'db-1');
    } finally {
      await stage.stop();
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
