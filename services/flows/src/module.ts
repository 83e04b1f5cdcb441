import { describeError } from '@cordon/runtime';
import { readKeys, readRange, type ConsumedRecord, type TopicPartition } from '@cordon/bus';
import { defineStage } from '@cordon/stage';
import { codecFor, RecoveryFilter, stageStateKey, TOPICS, type PacketBatch, type StageState } from '@cordon/schemas';
import { flowsServiceConfigSchema } from './config.js';
import { ERR_FLOWS_SNAPSHOT } from './errors.js';
import { FlowTable } from './flow-table.js';

/**
 * The flows stage: `cordon.packets.v1` → FlowTable per input partition →
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

export const flowsStage = defineStage({
  name: STAGE,
  summary: 'packets → flow records (5-tuple, counters, end reason), checkpointed, exactly-once in effect',
  config: flowsServiceConfigSchema,
  inputs: (c) => [{ group: c.groupId, topic: c.inputTopic }],
  outputs: (c) => [c.outputTopic, c.stateTopic, c.dlqTopic],
  reads: (c) => [c.stateTopic, c.outputTopic],
  start(stage) {
    const { config, bus, ctx } = stage;
    const { log, metrics, clock } = ctx;
    const packetsCodec = codecFor(TOPICS.packets);
    const flowsCodec = codecFor(TOPICS.flows);
    const stateCodec = codecFor(TOPICS.state);
    const partitions = new Map<number, PartitionState>();

    async function loadStates(wanted: number[]): Promise<Map<number, ConsumedRecord>> {
      const found = await readKeys(
        bus,
        config.stateTopic,
        wanted.map((p) => stateKey(config.inputTopic, p)),
      );
      return new Map(
        wanted.flatMap((p) => {
          const r = found.get(stateKey(config.inputTopic, p));
          return r ? [[p, r] as const] : [];
        }),
      );
    }

    async function assign(tps: TopicPartition[]): Promise<void> {
      const mine = tps
        .filter((tp) => tp.topic === config.inputTopic && !partitions.has(tp.partition))
        .map((tp) => tp.partition);
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
            const restoredState = FlowTable.restoreState(st.state, config.table);
            table = restoredState.table;
            recovery.restore(p, restoredState.recovery);
            offset = BigInt(st.input_offset);
            for (const id of st.emitted_ids) suppress.add(id);
            await collectEmitted(p, st.output_offsets, suppress);
            restored = true;
          } catch (err) {
            // Fail open: a state we cannot read must not wedge the partition. Rebuild from the
            // start of the retained input (flows older than retention are lost) and keep the
            // bad record for inspection.
            const e = ERR_FLOWS_SNAPSHOT.is(err) ? err : ERR_FLOWS_SNAPSHOT.withCause(err, describeError(err).message);
            log.error(
              { err: e, partition: p },
              'Flow table checkpoint is unreadable; rebuilding the partition from the start of its input.',
            );
            await stage.send(config.dlqTopic, [stage.deadLetter(rec, rec, e)]);
          }
        }
        partitions.set(p, {
          table,
          nextOffset: offset,
          checkpointedOffset: restored ? offset : -1n,
          suppress,
          batchesSinceCheckpoint: 0,
          lastCheckpointMs: clock.now(),
        });
        if (!restored) fresh.push(p);
        loop.seek({ topic: config.inputTopic, partition: p, offset });
        log.debug(
          { partition: p, offset: String(offset), flows: table.size, restored, suppressed: suppress.size },
          'Flows partition assigned.',
        );
      }
      // The group's committed offset may lag the checkpoint: a crash between writing the state
      // record and committing leaves it behind. Commit what the state says, or a partition with
      // nothing new to read would never be committed past it (and never look caught up).
      const restoredTps = mine
        .filter((p) => !fresh.includes(p))
        .map((p) => ({ topic: config.inputTopic, partition: p, offset: partitions.get(p)!.nextOffset }));
      if (restoredTps.length) await loop.commit(restoredTps);
      // A first checkpoint before any output, so every output is covered by some checkpoint.
      if (fresh.length) {
        const ends = await bus.admin.endOffsets(config.outputTopic);
        for (const p of fresh) await checkpoint(p, partitions.get(p)!, ends);
      }
      if (mine.length)
        log.info({ partitions: mine, restored: mine.length - fresh.length }, 'Flows partitions assigned.');
      updateGauge();
    }

    /** Flow ids this partition emitted after a checkpoint (by an owner that then died). */
    async function collectEmitted(
      partition: number,
      outputOffsets: Record<string, number>,
      into: Set<string>,
    ): Promise<void> {
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
        recovery.forget(tp.partition);
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
        state: ps.table.snapshot(recovery.snapshot(partition)),
        output_offsets: Object.fromEntries([...ends].map(([p, o]) => [String(p), Number(o)])),
        emitted_ids: [...ps.suppress],
      };
      // Outputs up to nextOffset were acknowledged (batch.flush); only now may the state say so.
      await stage.send(config.stateTopic, [
        { key: Buffer.from(stateKey(config.inputTopic, partition)), value: stateCodec.encode(state) },
      ]);
      await loop.commit([{ topic: config.inputTopic, partition, offset: ps.nextOffset }]);
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

    // a lost agent's recovery (RecoveryFilter): its state of a partition is in the partition's
    // checkpoint, so a restart between the agent's last frames and the recovery counts none twice
    const recovery = new RecoveryFilter({ count: (what, n) => metrics.inc(what, n) });
    const loop = stage.consume<PacketBatch>({
      group: config.groupId,
      topics: [config.inputTopic],
      decode: (v) => packetsCodec.decode(v),
      dlqTopic: config.dlqTopic,
      commit: 'manual', // the committed offset is the checkpoint's offset, never ahead of it
      maxBatchRecords: config.maxBatchRecords,
      onAssign: (tps) => assign(tps),
      onRevoke: (tps) => revoke(tps),
      async handle(batch) {
        const ps = partitions.get(batch.partition);
        if (!ps) return; // revoked while this batch was in flight: not committed, the next owner reads it
        const origin = { [ORIGIN_HEADER]: Buffer.from(`${config.inputTopic}|${batch.partition}`) };
        let sourceEnded = false;
        let emitted = 0;
        for (const { value: pb, record: rec } of batch.records) {
          // a lost agent's recovery: the frames it delivered are counted once (records skipped
          // below still tell which frames the agent delivered)
          const pkts = recovery.packets(batch.partition, pb);
          // Records the restored table already reflects (a seek that landed early) are skipped.
          if (rec.offset < ps.nextOffset) continue;
          if (pb.end_of_source) sourceEnded = true;
          const r = ps.table.processBatch(pkts === pb.packets ? pb : { ...pb, packets: pkts });
          for (const f of r.flows) {
            if (ps.suppress.delete(f.record.flow_id)) {
              metrics.inc('flows_suppressed');
              continue;
            }
            batch.emit(config.outputTopic, { key: f.key, value: flowsCodec.encode(f.record), headers: origin });
            emitted++;
          }
          for (const bad of r.badFrames) {
            // Each undecodable frame is its own dead letter: a one-frame PacketBatch, replayable as is.
            const one: PacketBatch = {
              ...pb,
              batch_id: `${pb.batch_id}#${bad.packet.seq}`,
              end_of_source: false,
              packets: [bad.packet],
            };
            batch.reject(rec, bad.error, packetsCodec.encode(one));
          }
          metrics.inc('frames_bad', r.badFrames.length);
          metrics.inc('frames_non_ip', r.framesNonIp);
          metrics.inc('flows_evicted', r.flowsEvicted);
          ps.batchesSinceCheckpoint++;
        }
        metrics.inc('flows_emitted', emitted);
        if (batch.nextOffset > ps.nextOffset) ps.nextOffset = batch.nextOffset;
        updateGauge();
        if (
          sourceEnded || // a source finished: its flows were just flushed, a cheap and useful point
          ps.batchesSinceCheckpoint >= config.checkpointEveryBatches ||
          clock.now() - ps.lastCheckpointMs >= config.checkpointEverySeconds * 1000
        ) {
          await batch.flush();
          await checkpoint(batch.partition, ps);
        }
      },
    });

    // Partitions that went quiet still get their last state written within the interval.
    stage.every(
      Math.max(100, Math.min(1000, config.checkpointEverySeconds * 1000)),
      'A periodic flows checkpoint',
      () =>
        loop.exclusive(async () => {
          if (stage.stopping) return;
          for (const [p, ps] of partitions) {
            if (clock.now() - ps.lastCheckpointMs >= config.checkpointEverySeconds * 1000) await checkpoint(p, ps);
          }
        }),
    );
    return { partitions: partitions as ReadonlyMap<number, { readonly table: FlowTable }> };
  },
});
