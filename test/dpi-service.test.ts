/**
 * The dpi stage on the bus: captures replayed onto a 12-partition packets topic, inspected by
 * one dpi instance and, separately, by two instances sharing the partitions — both must give
 * the same alerts, and the alerts Suricata gives for those captures.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, readRange } from '@cordon/bus';
import { allTopicSpecs, codecFor, TOPICS, type Alert } from '@cordon/schemas';
import { dpiStage } from '@cordon/dpi';
import { runStage } from '@cordon/stage';
import { replayCapture, waitCaughtUp } from '@cordon/cli';
import { corpusPath, skipWithoutCorpus } from '@cordon/testkit';

const CORPUS = corpusPath('suricata-verify');

test(
  'two dpi instances on a 12-partition topic give the same alerts as one, and the expected ones',
  { timeout: 300_000, skip: skipWithoutCorpus('suricata-verify') },
  async () => {
    const dirs = readdirSync(CORPUS)
      .filter((d) => d.startsWith('http-evader__'))
      .sort()
      .slice(0, 40);
    const meta = dirs.map((d) => ({
      name: d,
      ...(JSON.parse(readFileSync(join(CORPUS, d, 'expected.json'), 'utf8')) as {
        pcap: string;
        rules: string;
        expect: Array<{ sid: number; count: number }>;
      }),
    }));
    const ctx = createContext({ log: silentLogger });
    const dataDir = mkdtempSync(join(tmpdir(), 'cordon-dpi-svc-'));
    const bus = createEmbeddedBus({ dataDir, ctx });
    try {
      await bus.admin.ensureTopics([
        ...allTopicSpecs().map((t) => (t.name === TOPICS.packets ? { ...t, partitions: 12 } : t)),
        { name: 'alerts-one', partitions: 3, cleanupPolicy: 'delete', retentionMs: -1 },
        { name: 'alerts-two', partitions: 3, cleanupPolicy: 'delete', retentionMs: -1 },
      ]);
      const ruleFiles = [join(CORPUS, dirs[0]!, meta[0]!.rules)];

      // two instances join first, so the partitions are split before any packet arrives
      const two = await Promise.all(
        [0, 1].map(() =>
          runStage(dpiStage, { bus, ctx, config: { ruleFiles, groupId: 'dpi-two', outputTopic: 'alerts-two' } }),
        ),
      );
      const deadline = Date.now() + 30_000;
      while ((await bus.admin.committedOffsets('dpi-two', TOPICS.packets)).size === 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 50));
      for (const m of meta) await replayCapture({ bus, ctx, file: join(CORPUS, m.name, m.pcap), sensor: m.name });
      await waitCaughtUp(bus, [{ group: 'dpi-two', topic: TOPICS.packets }]);
      for (const s of two) await s.stop();

      const one = await runStage(dpiStage, {
        bus,
        ctx,
        config: { ruleFiles, groupId: 'dpi-one', outputTopic: 'alerts-one' },
      });
      await waitCaughtUp(bus, [{ group: 'dpi-one', topic: TOPICS.packets }]);
      await one.stop();

      const read = async (topic: string) => {
        const out: Alert[] = [];
        await readRange(bus, topic, (r) => out.push(codecFor(TOPICS.alerts).decode(r.value!)));
        return out;
      };
      const sig = (a: Alert) =>
        `${a.sensor}|${a.rule_id}|${a.src_ip}:${a.src_port}>${a.dst_ip}:${a.dst_port}|${a.ts_us}|${a.alert_id}`;
      const alertsOne = await read('alerts-one');
      const alertsTwo = await read('alerts-two');
      assert.ok(alertsOne.length >= meta.length, `${alertsOne.length} alerts`);
      assert.deepEqual(alertsTwo.map(sig).sort(), alertsOne.map(sig).sort(), 'the same alerts, with the same ids');

      // and they are the alerts expected for these captures (the ones the CLI also passes)
      let agree = 0;
      for (const m of meta) {
        const got = alertsOne.filter((a) => a.sensor === m.name);
        const ok = m.expect.every((e) => got.filter((a) => a.rule_id === `sid:${e.sid}`).length === e.count);
        if (ok) agree++;
      }
      assert.ok(
        agree >= Math.ceil(meta.length * 0.9),
        `${agree} of ${meta.length} captures give exactly the expected alerts`,
      );
    } finally {
      await bus.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  },
);
