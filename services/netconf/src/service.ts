import { childContext, type Context } from '@cordon/runtime';
import { readTable, type Bus, type ProduceRecord } from '@cordon/bus';
import { codecFor, deadLetter, TOPICS, type NetSnapshot, type StageState } from '@cordon/schemas';
import { diffSnapshots, toAlert } from './diff.js';

const STAGE = 'netconf';
const stateKey = (vm: string) => `${STAGE}|vm|${vm}`;

export interface NetconfHandle {
  readonly done: Promise<void>;
  stop(): Promise<void>;
}

/**
 * netconf on the bus: NetSnapshots → alerts. Each VM's last snapshot is kept on the compacted
 * state topic (written before the input offset is committed), so a restart compares with what
 * was seen before it, not with nothing — a change made while the processor was down still alerts.
 */
export async function startNetconfService(opts: { bus: Bus; ctx: Context; groupId?: string }): Promise<NetconfHandle> {
  const ctx = childContext(opts.ctx, STAGE);
  const { bus } = opts;
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
      ctx.log.warn({ err, key: k }, 'A netconf baseline on the state topic is unreadable; that VM starts a new baseline.');
    }
  }
  const producer = bus.producer();
  const consumer = bus.consumer({ groupId: opts.groupId ?? 'cordon-netconf', topics: [TOPICS.netconf] });
  const done = consumer.run(async (batch) => {
    const alerts: ProduceRecord[] = [];
    const states: ProduceRecord[] = [];
    const letters: ProduceRecord[] = [];
    for (const r of batch.records) {
      ctx.metrics.inc('received');
      let snap: NetSnapshot;
      try {
        if (!r.value) throw new Error('record has no value (null)');
        snap = snapCodec.decode(r.value);
      } catch (err) {
        ctx.metrics.inc('errors');
        letters.push(deadLetter(STAGE, r, r, err, ctx.clock.now() * 1000));
        continue;
      }
      const prev = last.get(snap.vm) ?? null;
      if (prev && prev.ts_us >= snap.ts_us) continue; // an older or replayed snapshot
      for (const c of diffSnapshots(prev, snap)) alerts.push({ key: Buffer.from(snap.vm), value: alertCodec.encode(toAlert(c, snap)) });
      last.set(snap.vm, snap);
      const st: StageState = { stage: STAGE, input_topic: r.topic, input_partition: r.partition, input_offset: Number(r.offset) + 1, ts_us: snap.ts_us, state: snapCodec.encode(snap), output_offsets: {}, emitted_ids: [] };
      states.push({ key: Buffer.from(stateKey(snap.vm)), value: stateCodec.encode(st) });
    }
    if (alerts.length) await producer.send(TOPICS.alerts, alerts);
    if (states.length) await producer.send(TOPICS.state, states);
    if (letters.length) await producer.send(TOPICS.dlq, letters);
    ctx.metrics.inc('sent', alerts.length);
  });
  return {
    done,
    stop: async () => {
      await consumer.close();
      await producer.close();
    },
  };
}
