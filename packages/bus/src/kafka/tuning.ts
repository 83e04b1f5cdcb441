/**
 * Two paths through the Kafka bus, tuned apart (issue 19): the control path — alerts, blocks,
 * policy, commands, assignments, state: few records, each one waited for (detection → block) —
 * and the bulk path — packets, flows, logs, FIM events, SIEM export: many records, where
 * throughput and CPU per record matter more than a millisecond.
 *
 * - lingerMs: under traffic, requests leave at most once per lingerMs, so sends that come in a
 *   steady trickle share one (0: at once). After a lull the first few requests (LINGER_BURST in
 *   producer.ts, refilled at one per lingerMs) leave at once — an attack's first packets pay no
 *   linger. Each class has its own
 *   request queue, so a control send never waits behind a bulk request in flight.
 * - fetchMaxWaitMs / fetchMinBytes: how long the broker holds a fetch for fetchMinBytes to
 *   arrive. With fetchMinBytes 1 a fetch returns as soon as one record is there; the wait then
 *   only bounds how late a close or a rebalance is noticed while idle.
 * A consumer subscribed to topics of both classes fetches with the control settings.
 */
import { ERR_KAFKA_TUNING } from '../errors.js';

export type TopicClass = 'control' | 'bulk';

export interface PathTuning {
  lingerMs: number;
  fetchMaxWaitMs: number;
  fetchMinBytes: number;
}

export interface KafkaTuning {
  control: PathTuning;
  bulk: PathTuning;
  /** Topics of the bulk path: exact names, or prefixes ending in `*`. Every other topic is control. */
  bulkTopics: string[];
}

export const DEFAULT_TUNING: Readonly<KafkaTuning> = Object.freeze({
  control: Object.freeze({ lingerMs: 0, fetchMaxWaitMs: 100, fetchMinBytes: 1 }),
  bulk: Object.freeze({ lingerMs: 2, fetchMaxWaitMs: 250, fetchMinBytes: 1 }),
  bulkTopics: Object.freeze([
    'cordon.packets.v1',
    'cordon.flows.v1',
    'cordon.logs.v1',
    'cordon.fim.v1',
    'cordon.siem.v1',
  ]) as string[],
});

/** Tuning with `over`'s fields in place of the defaults' (each class field by field). */
export function resolveTuning(over?: {
  control?: Partial<PathTuning>;
  bulk?: Partial<PathTuning>;
  bulkTopics?: string[];
}): KafkaTuning {
  const t: KafkaTuning = {
    control: { ...DEFAULT_TUNING.control, ...over?.control },
    bulk: { ...DEFAULT_TUNING.bulk, ...over?.bulk },
    bulkTopics: [...(over?.bulkTopics ?? DEFAULT_TUNING.bulkTopics)],
  };
  for (const b of t.bulkTopics)
    if (typeof b !== 'string' || b === '' || b === '*' || b.slice(0, -1).includes('*'))
      throw ERR_KAFKA_TUNING(`bulkTopics entries are topic names or prefixes ending in *, not ${JSON.stringify(b)}`);
  for (const cls of ['control', 'bulk'] as const) {
    const p = t[cls];
    const bad = (what: string, v: number, max: number) =>
      !Number.isInteger(v) || v < 0 || v > max ? `${cls}.${what} must be an integer 0..${max}, not ${v}` : null;
    const why =
      bad('lingerMs', p.lingerMs, 1_000) ??
      bad('fetchMaxWaitMs', p.fetchMaxWaitMs, 10_000) ??
      bad('fetchMinBytes', p.fetchMinBytes, 64 * 1024 * 1024);
    if (why) throw ERR_KAFKA_TUNING(why);
  }
  return t;
}

export function topicClass(topic: string, tuning: KafkaTuning): TopicClass {
  for (const t of tuning.bulkTopics) {
    if (t.endsWith('*') ? topic.startsWith(t.slice(0, -1)) : topic === t) return 'bulk';
  }
  return 'control';
}
