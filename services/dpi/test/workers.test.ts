import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus, readAll } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS, type PacketBatch } from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { udpFrame, waitFor } from '@cordon/testkit';
import { dpiStage } from '../src/index.js';

// Two consume loops (workers) in one dpi stage split the partitions of the packets topic; each
// flow's alert comes out (under one id), from whichever loop owns its flow's partition.
for (const workers of [1, 2]) {
  test(
    `the dpi stage with ${workers} worker(s): every flow's alert under one id, flows spread over partitions`,
    { timeout: 120_000 },
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'cordon-dpi-workers-'));
      const ctx = createContext({ log: silentLogger });
      const bus = createEmbeddedBus({ dataDir: dir, ctx });
      try {
        await bus.admin.ensureTopics(allTopicSpecs());
        const rules = join(dir, 'w.rules');
        writeFileSync(rules, 'alert udp any any -> any 5353 (msg:"w"; content:"EVIL"; sid:9001; rev:1;)\n');
        const s = await runStage(dpiStage, { bus, ctx, config: { ruleFiles: [rules], checksum: 'off', workers } });
        try {
          const codec = codecFor(TOPICS.packets);
          const FLOWS = 40;
          const records = Array.from({ length: FLOWS }, (_, i) => {
            const pb: PacketBatch = {
              batch_id: `w${workers}-${i}`,
              sensor: 'test',
              vm: null,
              linktype: 1,
              end_of_source: false,
              recovery_of: null,
              packets: [1, 2, 3].map((n) => {
                const frame = udpFrame(n === 2 ? 'xxEVILxx' : 'hello', {
                  src: `203.0.113.${i + 1}`,
                  sport: 40_000 + i,
                });
                return { ts_us: 1_700_000_000_000_000 + i * 10 + n, seq: n, orig_len: frame.length, frame };
              }),
            };
            return { key: Buffer.from(`flow-${i}`), value: codec.encode(pb) };
          });
          await bus.producer().send(TOPICS.packets, records);
          const partitions = new Set((await readAll(bus, TOPICS.packets)).map((r) => r.partition));
          assert.ok(partitions.size >= 4, `the flows landed on ${partitions.size} partitions only`);
          const alerts = async () =>
            (await readAll(bus, TOPICS.alerts)).map((r) => codecFor(TOPICS.alerts).decode(r.value!));
          // A partition that moves to the second loop as it joins may see a batch again (at
          // least once); its alerts are then the same alerts (same ids), stored once by the sink.
          const distinct = async () => new Map((await alerts()).map((a) => [a.alert_id, a]));
          await waitFor(`${FLOWS} alerts`, async () => (await distinct()).size >= FLOWS, 60_000);
          const got = [...(await distinct()).values()];
          assert.equal(got.length, FLOWS);
          assert.ok(got.every((a) => a.rule_id === 'sid:9001'));
          assert.equal(new Set(got.map((a) => `${a.src_ip}:${a.src_port}`)).size, FLOWS, 'one alert per flow');
        } finally {
          await s.stop();
        }
      } finally {
        await bus.close();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
}
