import { performance } from 'node:perf_hooks';
import type { Batch, Bus, ConsumedRecord, ProduceRecord, TopicPartition } from '@cordon/bus';
import { describeError, serialized, type Context } from '@cordon/runtime';
import { codecFor, TOPIC_MANIFEST, TOPICS, type TopicName } from '@cordon/schemas';
import { ERR_STAGE_CONFIG, ERR_STAGE_NO_VALUE } from './errors.js';
import type { ConsumeLoop, ConsumeSpec, Decoded, StageBatch } from './module.js';
import type { RecordTrust } from './record-trust.js';
import type { LagSample, StageCounters } from './telemetry.js';

/** What a consume loop needs from the stage that runs it. */
export interface LoopHost {
  readonly stage: string;
  readonly bus: Bus;
  readonly ctx: Context;
  readonly counters: StageCounters;
  /** Send, counted as output. */
  send(topic: string, records: ProduceRecord[]): Promise<void>;
  /** A dead letter for a record (the replacement value, when given, is what the DLQ keeps). */
  letter(record: ConsumedRecord, err: unknown, value?: Buffer | null): ProduceRecord;
  /** The loop failed (not while stopping): the stage fails. */
  fail(what: string, err: unknown): void;
  /** Producer signatures and bindings are checked on the topics agents and watchdogs write (null: trusted by configuration). */
  readonly trust: RecordTrust | null;
}

export interface RunningLoop extends ConsumeLoop {
  readonly group: string;
  lag(): Promise<LagSample[]>;
  /** Stop fetching; the batch in flight finishes (outputs sent, offset committed), revoke callbacks run. */
  close(): Promise<void>;
}

/** Outputs of one batch: per topic in the order first emitted, records in order. */
class Outbox {
  private readonly byTopic = new Map<string, ProduceRecord[]>();
  add(topic: string, records: ProduceRecord | ProduceRecord[]): void {
    let list = this.byTopic.get(topic);
    if (!list) this.byTopic.set(topic, (list = []));
    if (Array.isArray(records)) {
      for (const r of records) list.push(r);
    } else list.push(records);
  }
  async flush(send: (topic: string, records: ProduceRecord[]) => Promise<void>): Promise<void> {
    for (const [topic, records] of this.byTopic) {
      if (records.length === 0) continue;
      // taken out first: a failed send leaves nothing to be sent twice by a later flush
      this.byTopic.set(topic, []);
      await send(topic, records);
    }
  }
}

/** The topics' own Avro codecs; a topic with no schema of its own needs the stage's `decode`. */
function avroDecoder<T>(stage: string, topics: readonly string[]): (value: Buffer, r: ConsumedRecord) => T {
  const codecs = new Map<string, { decode(b: Buffer): unknown }>();
  for (const t of topics) {
    if (!Object.hasOwn(TOPIC_MANIFEST, t))
      throw ERR_STAGE_CONFIG(stage, `topic ${t} has no schema of its own; the stage must give a decoder for it`);
    codecs.set(t, codecFor(t as TopicName));
  }
  return (value, r) => codecs.get(r.topic)!.decode(value) as T;
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/**
 * The one consume loop: per batch of one partition — count, decode (bad records to the DLQ
 * with the error's code), hand the decoded records to the stage, send what it emitted, then
 * let the bus commit (or leave the commit to the stage). Batches and rebalance callbacks of a
 * loop never overlap. Back-pressure is the bus's: the next fetch waits for this batch.
 */
export function startLoop<T>(host: LoopHost, spec: ConsumeSpec<T>): RunningLoop {
  const { bus, counters } = host;
  const dlqTopic = spec.dlqTopic ?? TOPICS.dlq;
  const exclusive = serialized();
  const positions = new Map<string, bigint>();
  const fromBeginning = spec.fromBeginning ?? true;
  const decode = spec.decode ?? avroDecoder<T>(host.stage, spec.topics);
  const trust = host.trust;
  let closing = false;

  const consumer = bus.consumer({
    groupId: spec.group,
    topics: spec.topics,
    fromBeginning,
    autoCommit: (spec.commit ?? 'batch') === 'batch',
    ...(spec.maxBatchRecords ? { maxBatchRecords: spec.maxBatchRecords } : {}),
    onAssign: (tps: TopicPartition[]) => exclusive(async () => spec.onAssign?.(tps)),
    onRevoke: (tps: TopicPartition[]) =>
      exclusive(async () => {
        await spec.onRevoke?.(tps);
        for (const tp of tps) positions.delete(tpKey(tp.topic, tp.partition));
      }),
  });

  async function onBatch(batch: Batch): Promise<void> {
    const started = performance.now();
    counters.records(batch.topic, 'in', batch.records.length);
    host.ctx.metrics.inc('received', batch.records.length);
    const out = new Outbox();
    const reject = (record: ConsumedRecord, err: unknown, value?: Buffer | null) => {
      counters.error(describeError(err).code);
      counters.records(record.topic, 'dlq', 1);
      host.ctx.metrics.inc('errors');
      host.ctx.metrics.inc('dropped');
      out.add(dlqTopic, host.letter(record, err, value));
    };
    // the signatures are checked off the event loop while the records are decoded (a send at a
    // time: one tree, one signature); then the bindings, then hand over or refuse in order
    const signatures = trust?.signatures(batch.records.filter((r) => r.value !== null && trust.covers(r.topic)));
    // awaited below when a record needs it; a failure is seen there, not as an unhandled rejection
    signatures?.catch(() => {});
    const decoded: Array<{ r: ConsumedRecord; value: T } | { r: ConsumedRecord; err: unknown } | null> = [];
    const toCheck: { r: ConsumedRecord; value: unknown }[] = [];
    const checkAt: number[] = [];
    for (const r of batch.records) {
      if (r.value === null) {
        decoded.push(spec.tombstones !== 'skip' ? { r, err: ERR_STAGE_NO_VALUE(r.topic) } : null);
        continue;
      }
      try {
        const d = { r, value: decode(r.value, r) };
        // a record an agent or watchdog did not sign, or signed for another VM, never reaches the stage
        if (trust?.covers(r.topic)) {
          checkAt.push(decoded.length);
          toCheck.push(d);
        }
        decoded.push(d);
      } catch (err) {
        decoded.push({ r, err });
      }
    }
    const verdicts = trust && toCheck.length > 0 ? await trust.checkAll(toCheck, signatures) : [];
    const refusedAt = new Map<number, NonNullable<(typeof verdicts)[number]>>();
    checkAt.forEach((at, j) => {
      const v = verdicts[j];
      if (v) refusedAt.set(at, v);
    });
    const records: Decoded<T>[] = [];
    decoded.forEach((d, i) => {
      if (d === null) return;
      if ('err' in d) {
        reject(d.r, d.err);
        return;
      }
      const refused = refusedAt.get(i);
      if (refused) {
        reject(d.r, refused);
        const alert = trust!.alertFor(refused, d.r, d.value);
        if (alert) out.add(TOPICS.alerts, alert);
        return;
      }
      records.push({ value: d.value, record: d.r });
    });
    const nextOffset = batch.records[batch.records.length - 1]!.offset + 1n;
    const view: StageBatch<T> = {
      topic: batch.topic,
      partition: batch.partition,
      records,
      firstOffset: batch.records[0]!.offset,
      nextOffset,
      emit: (topic, recs) => out.add(topic, recs),
      reject,
      flush: () => out.flush((topic, recs) => host.send(topic, recs)),
    };
    await spec.handle(view);
    // Outputs are acknowledged before this returns, so the commit that follows never covers
    // an input whose outputs could still be lost.
    await out.flush((topic, recs) => host.send(topic, recs));
    positions.set(tpKey(batch.topic, batch.partition), nextOffset);
    counters.batch((performance.now() - started) / 1000);
  }

  const running = consumer.run((batch) => exclusive(() => onBatch(batch)));
  running.catch((err: unknown) => {
    if (!closing) host.fail(`the consume loop of group ${spec.group}`, err);
  });

  return {
    group: spec.group,
    exclusive,
    seek: (tp) => consumer.seek(tp),
    commit: (offsets) => consumer.commit(offsets),
    assignment: () => consumer.assignment(),
    async lag(): Promise<LagSample[]> {
      const samples: LagSample[] = [];
      const owned = consumer.assignment();
      for (const topic of spec.topics) {
        const mine = owned.filter((tp) => tp.topic === topic);
        if (mine.length === 0) continue;
        const ends = await bus.admin.endOffsets(topic);
        let committed: Map<number, bigint> | null = null;
        for (const tp of mine) {
          const end = ends.get(tp.partition) ?? 0n;
          let pos = positions.get(tpKey(topic, tp.partition));
          if (pos === undefined) {
            committed ??= await bus.admin.committedOffsets(spec.group, topic);
            pos = committed.get(tp.partition) ?? (fromBeginning ? 0n : end);
          }
          samples.push({ stage: host.stage, topic, partition: tp.partition, lag: Number(end > pos ? end - pos : 0n) });
        }
      }
      return samples;
    },
    async close(): Promise<void> {
      closing = true;
      await consumer.close();
      await running.catch(() => undefined);
    },
  };
}
