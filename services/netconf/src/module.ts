import { z } from 'zod';
import { readTable } from '@cordon/bus';
import { defineStage } from '@cordon/stage';
import { codecFor, TOPICS, type NetSnapshot, type StageState } from '@cordon/schemas';
import { diffSnapshots, toAlert } from './diff.js';

const STAGE = 'netconf';
const stateKey = (vm: string) => `${STAGE}|vm|${vm}`;

export const netconfConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-netconf'),
    maxBatchRecords: z.number().int().positive().default(500),
  })
  .strict();

/**
 * netconf: NetSnapshots → alerts on new listening sockets, promiscuous interfaces, route
 * changes. Each VM's last snapshot is kept on the compacted state topic (written with the
 * batch's outputs, before its offset is committed), so a restart compares with what was seen
 * before it, not with nothing — a change made while the stage was down still alerts.
 */
export const netconfStage = defineStage({
  name: STAGE,
  summary: 'network snapshots from agents → alerts on new listeners, promiscuous NICs, route changes',
  config: netconfConfigSchema,
  inputs: (c) => [{ group: c.groupId, topic: TOPICS.netconf }],
  outputs: () => [TOPICS.alerts, TOPICS.state, TOPICS.dlq],
  reads: () => [TOPICS.state],
  async start(stage) {
    const { bus, ctx, config } = stage;
    const snapCodec = codecFor(TOPICS.netconf);
    const stateCodec = codecFor(TOPICS.state);
    const alertCodec = codecFor(TOPICS.alerts);
    const last = new Map<string, NetSnapshot>();
    for (const r of (await readTable(bus, TOPICS.state)).values()) {
      const k = r.key?.toString() ?? '';
      if (!k.startsWith(`${STAGE}|vm|`) || !r.value) continue;
      try {
        last.set(k.slice(`${STAGE}|vm|`.length), snapCodec.decode(stateCodec.decode(r.value).state));
      } catch (err) {
        ctx.log.warn(
          { err, key: k },
          'A netconf baseline on the state topic is unreadable; that VM starts a new baseline.',
        );
      }
    }
    stage.consume<NetSnapshot>({
      group: config.groupId,
      topics: [TOPICS.netconf],
      maxBatchRecords: config.maxBatchRecords,
      handle(batch) {
        for (const { value: snap, record: r } of batch.records) {
          const prev = last.get(snap.vm) ?? null;
          if (prev && prev.ts_us >= snap.ts_us) continue; // an older or replayed snapshot
          for (const c of diffSnapshots(prev, snap))
            batch.emit(TOPICS.alerts, { key: Buffer.from(snap.vm), value: alertCodec.encode(toAlert(c, snap)) });
          last.set(snap.vm, snap);
          const st: StageState = {
            stage: STAGE,
            input_topic: r.topic,
            input_partition: r.partition,
            input_offset: Number(r.offset) + 1,
            ts_us: snap.ts_us,
            state: snapCodec.encode(snap),
            output_offsets: {},
            emitted_ids: [],
          };
          batch.emit(TOPICS.state, { key: Buffer.from(stateKey(snap.vm)), value: stateCodec.encode(st) });
        }
      },
    });
    return { baselines: last };
  },
});
