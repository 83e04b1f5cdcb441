import { childContext, describeError, serialized, type Context } from '@cordon/runtime';
import { readKeys, readRange, type Batch, type Bus, type ConsumedRecord, type ProduceRecord, type TopicPartition } from '@cordon/bus';
import { codecFor, stageStateKey, TOPICS, type PacketBatch, type StageState, deadLetter } from '@cordon/schemas';
import { parseFlowsConfig, type FlowsServiceConfig, type FlowsServiceConfigInput } from './config.js';
import { ERR_FLOWS_SNAPSHOT } from './errors.js';
import { FlowTable } from './flow-table.js';

/**
 * The flows stage's adapter: `cordon.packets.v1` → FlowTable per input partition →
 * `cordon.flows.v1`, bad input → `cordon.dlq.v1`, checkpoints → `cordon.state.v1`.
 *
 * Exactly-once effect: outputs of a batch are acknowledged before the batch counts as done;
 * a checkpoint (table snapshot + next input offset + the output topic's end offsets) is
 * written after that, then the group offset is committed to the same offset. After a crash
 * the next owner restores the newest checkpoint and re-reads its input from there; the flows
 * it rebuilds are the ones the crashed owner may already have emitted after the checkpoint,
 * so before resuming it reads the output topic from the checkpoint's end offsets, collects the
 * flow ids that came from this partition (header `cordon-origin`), and does not emit them
 * again. Every partition gets a checkpoint as soon as it is first assigned, so no output is
 * ever older than the newest checkpoint. (DLQ records of that window can repeat.)
 */

const STAGE = 'flows';

export interface FlowsServiceOptions {
  bus: Bus;
  ctx: Context;
  /** Validated here, at the edge: unknown keys are errors. */
  config?: FlowsServiceConfigInput;
}

export interface FlowsServiceHandle {
  /** Checkpoint every owned partition, then leave the group. */
  stop(): Promise<void>;
  /** Settles when the service has stopped (rejects if it failed). */
  readonly done: Promise<void>;
  readonly config: FlowsServiceConfig;
}

interface PartitionState {
  table: FlowTable;
  /** Next input offset not yet reflected in `table`. */
  nextOffset: bigint;
  /** Offset of the last checkpoint written (-1: none by this instance). */
  checkpointedOffset: bigint;
  /** Flow ids already emitted (by a previous owner) that this table will produce again. */
  suppress: Set<string>;
  batchesSinceCheckpoint: number;
  lastCheckpointMs: number;
}

export function stateKey(inputTopic: string, partition: number): string {
  return stageStateKey(STAGE, inputTopic, partition);
}

/** Header on every flow record naming the input partition it came from. */
export const ORIGIN_HEADER = 'cordon-origin';

export function startFlowsService(opts: FlowsServiceOptions): FlowsServiceHandle {
  const config = parseFlowsConfig(opts.config ?? {});
  const { bus } = opts;
  const ctx = childContext(opts.ctx, STAGE);
  const { log, metrics, clock } = ctx;
  const packetsCodec = codecFor(TOPICS.packets);
  const flowsCodec = codecFor(TOPICS.flows);
  const stateCodec = codecFor(TOPICS.state);
  const producer = bus.producer();
  const partitions = new Map<number, PartitionState>();
  let stopping = false;

  // One operation at a time (a batch, a checkpoint, a rebalance callback): they all touch
  // the same partition states, and each awaits the bus in the middle.
  const exclusive = serialized();

  const consumer = bus.consumer({
    groupId: config.groupId,
    topics: [config.inputTopic],
    fromBeginning: true,
    autoCommit: false, // the committed offset is the checkpoint's offset, never ahead of it
    maxBatchRecords: config.maxBatchRecords,
    onAssign: (tps) => exclusive(() => assign(tps)),
    onRevoke: (tps) => exclusive(() => revoke(tps)),
  });

  const dlq = (source: { topic: string; partition: number; offset: bigint | null }, key: Buffer | null, value: Buffer | null, err: unknown): ProduceRecord =>
    deadLetter(STAGE, source, { key, value }, err, clock.now() * 1000);

  async function loadStates(wanted: number[]): Promise<Map<number, ConsumedRecord>> {
    const found = await readKeys(bus, config.stateTopic, wanted.map((p) => stateKey(config.inputTopic, p)));
    return new Map(wanted.flatMap((p) => {
      const r = found.get(stateKey(config.inputTopic, p));
      return r ? [[p, r] as const] : [];
    }));
  }

  async function assign(tps: TopicPartition[]): Promise<void> {
    const mine = tps.filter((tp) => tp.topic === config.inputTopic && !partitions.has(tp.partition)).map((tp) => tp.partition);
    const states = await loadStates(mine);
    const fresh: number[] = [];
    for (const p of mine) {
      let table = new FlowTable(config.table);
      let offset = 0n;
      let restored = false;
      const suppress = new Set<string>();
      const rec = states.get(p);
      if (rec?.value) {
        try {
          const st = stateCodec.decode(rec.value);
          table = FlowTable.restore(st.state, config.table);
          offset = BigInt(st.input_offset);
          for (const id of st.emitted_ids) suppress.add(id);
          await collectEmitted(p, st.output_offsets, suppress);
          restored = true;
        } catch (err) {
          // Fail open: a state we cannot read must not wedge the partition. Rebuild from the
          // start of the retained input (flows older than retention are lost) and keep the
          // bad record for inspection.
          metrics.inc('errors');
          const e = ERR_FLOWS_SNAPSHOT.is(err) ? err : ERR_FLOWS_SNAPSHOT.withCause(err, describeError(err).message);
          log.error({ err: e, partition: p }, 'Flow table checkpoint is unreadable; rebuilding the partition from the start of its input.');
          await producer.send(config.dlqTopic, [dlq({ topic: config.stateTopic, partition: rec.partition, offset: rec.offset }, rec.key, rec.value, e)]);
        }
      }
      partitions.set(p, { table, nextOffset: offset, checkpointedOffset: restored ? offset : -1n, suppress, batchesSinceCheckpoint: 0, lastCheckpointMs: clock.now() });
      if (!restored) fresh.push(p);
      consumer.seek({ topic: config.inputTopic, partition: p, offset });
      log.debug({ partition: p, offset: String(offset), flows: table.size, restored, suppressed: suppress.size }, 'Flows partition assigned.');
    }
    // The group's committed offset may lag the checkpoint: a crash between writing the state
    // record and committing leaves it behind. Commit what the state says, or a partition with
    // nothing new to read would never be committed past it (and never look caught up).
    const restoredTps = mine.filter((p) => !fresh.includes(p)).map((p) => ({ topic: config.inputTopic, partition: p, offset: partitions.get(p)!.nextOffset }));
    if (restoredTps.length) await consumer.commit(restoredTps);
    // A first checkpoint before any output, so every output is covered by some checkpoint.
    if (fresh.length) {
      const ends = await bus.admin.endOffsets(config.outputTopic);
      for (const p of fresh) await checkpoint(p, partitions.get(p)!, ends);
    }
    if (mine.length) log.info({ partitions: mine, restored: mine.length - fresh.length }, 'Flows partitions assigned.');
    updateGauge();
  }

  /** Flow ids this partition emitted after a checkpoint (by an owner that then died). */
  async function collectEmitted(partition: number, outputOffsets: Record<string, number>, into: Set<string>): Promise<void> {
    const from = new Map(Object.entries(outputOffsets).map(([p, o]) => [Number(p), BigInt(o)]));
    if (from.size === 0) return;
    const origin = `${config.inputTopic}|${partition}`;
    const ends = await bus.admin.endOffsets(config.outputTopic);
    // output partitions created after the checkpoint are read from their start
    for (const p of ends.keys()) if (!from.has(p)) from.set(p, 0n);
    await readRange(
      bus,
      config.outputTopic,
      (r) => {
        if (r.value && r.headers[ORIGIN_HEADER]?.toString() === origin) into.add(flowsCodec.decode(r.value).flow_id);
      },
      { from },
    );
  }

  async function revoke(tps: TopicPartition[]): Promise<void> {
    for (const tp of tps) {
      if (tp.topic !== config.inputTopic) continue;
      const ps = partitions.get(tp.partition);
      if (!ps) continue;
      await checkpoint(tp.partition, ps);
      partitions.delete(tp.partition);
    }
    updateGauge();
  }

  async function checkpoint(partition: number, ps: PartitionState, outputEnds?: Map<number, bigint>): Promise<void> {
    if (ps.nextOffset === ps.checkpointedOffset) return;
    // Every output up to now is acknowledged, so these ends cover all of them.
    const ends = outputEnds ?? (await bus.admin.endOffsets(config.outputTopic));
    const state: StageState = {
      stage: STAGE,
      input_topic: config.inputTopic,
      input_partition: partition,
      input_offset: Number(ps.nextOffset),
      ts_us: clock.now() * 1000,
      state: ps.table.snapshot(),
      output_offsets: Object.fromEntries([...ends].map(([p, o]) => [String(p), Number(o)])),
      emitted_ids: [...ps.suppress],
    };
    // Outputs up to nextOffset were acknowledged in handleBatch; only now may the state say so.
    await producer.send(config.stateTopic, [{ key: Buffer.from(stateKey(config.inputTopic, partition)), value: stateCodec.encode(state) }]);
    await consumer.commit([{ topic: config.inputTopic, partition, offset: ps.nextOffset }]);
    ps.checkpointedOffset = ps.nextOffset;
    ps.batchesSinceCheckpoint = 0;
    ps.lastCheckpointMs = clock.now();
    metrics.inc('checkpoints');
  }

  function updateGauge(): void {
    let open = 0;
    for (const ps of partitions.values()) open += ps.table.size;
    metrics.set('flows_open', open);
  }

  async function handleBatch(batch: Batch): Promise<void> {
    // Stopping: leave the batch unprocessed and uncommitted; the next owner reads it again.
    if (stopping || batch.topic !== config.inputTopic) return;
    const ps = partitions.get(batch.partition);
    if (!ps) return; // revoked while this batch was in flight
    const flows: ProduceRecord[] = [];
    const letters: ProduceRecord[] = [];
    const source = { topic: batch.topic, partition: batch.partition };
    let next = ps.nextOffset;
    let sourceEnded = false;
    const origin = { [ORIGIN_HEADER]: Buffer.from(`${config.inputTopic}|${batch.partition}`) };
    for (const rec of batch.records) {
      // Records the restored table already reflects (a seek that landed early) are skipped.
      if (rec.offset < ps.nextOffset) continue;
      next = rec.offset + 1n;
      metrics.inc('received');
      let pb: PacketBatch;
      try {
        if (rec.value === null) throw new Error('record has no value (null)');
        pb = packetsCodec.decode(rec.value);
      } catch (err) {
        // Fail open per record: the whole undecodable batch goes to the DLQ, the stream goes on.
        metrics.inc('errors');
        metrics.inc('dropped');
        letters.push(dlq({ ...source, offset: rec.offset }, rec.key, rec.value, err));
        continue;
      }
      if (pb.end_of_source) sourceEnded = true;
      const r = ps.table.processBatch(pb);
      for (const f of r.flows) {
        if (ps.suppress.delete(f.record.flow_id)) {
          metrics.inc('flows_suppressed');
          continue;
        }
        flows.push({ key: f.key, value: flowsCodec.encode(f.record), headers: origin });
      }
      for (const bad of r.badFrames) {
        // Each undecodable frame is its own DLQ record: a one-frame PacketBatch, replayable as is.
        const one: PacketBatch = { ...pb, batch_id: `${pb.batch_id}#${bad.packet.seq}`, end_of_source: false, packets: [bad.packet] };
        letters.push(dlq({ ...source, offset: rec.offset }, rec.key, packetsCodec.encode(one), bad.error));
      }
      metrics.inc('frames_bad', r.badFrames.length);
      metrics.inc('errors', r.badFrames.length);
      metrics.inc('frames_non_ip', r.framesNonIp);
      metrics.inc('dropped', r.badFrames.length + r.framesNonIp);
      metrics.inc('flows_evicted', r.flowsEvicted);
      ps.batchesSinceCheckpoint++;
    }
    if (flows.length) await producer.send(config.outputTopic, flows);
    if (letters.length) await producer.send(config.dlqTopic, letters);
    metrics.inc('sent', flows.length);
    metrics.inc('flows_emitted', flows.length);
    ps.nextOffset = next;
    updateGauge();
    if (
      sourceEnded || // a source finished: its flows were just flushed, a cheap and useful point
      ps.batchesSinceCheckpoint >= config.checkpointEveryBatches ||
      clock.now() - ps.lastCheckpointMs >= config.checkpointEverySeconds * 1000
    ) {
      await checkpoint(batch.partition, ps);
    }
  }

  // Partitions that went quiet still get their last state written within the interval.
  const timer = setInterval(() => {
    void exclusive(async () => {
      if (stopping) return;
      for (const [p, ps] of partitions) {
        if (clock.now() - ps.lastCheckpointMs >= config.checkpointEverySeconds * 1000) await checkpoint(p, ps);
      }
    }).catch((err: unknown) => log.error({ err }, 'Periodic flows checkpoint failed; the next one will retry.'));
  }, Math.max(100, Math.min(1000, config.checkpointEverySeconds * 1000)));
  timer.unref();

  const running = consumer.run((batch) => exclusive(() => handleBatch(batch)));
  let stopped: Promise<void> | null = null;

  const done = running.finally(async () => {
    clearInterval(timer);
  });

  return {
    config,
    done,
    stop(): Promise<void> {
      stopped ??= (async () => {
        stopping = true;
        clearInterval(timer);
        await exclusive(async () => {
          for (const [p, ps] of partitions) await checkpoint(p, ps);
        });
        await consumer.close();
        await running.catch(() => undefined);
        await producer.close();
        log.info('Flows service stopped.');
      })();
      return stopped;
    },
  };
}
