import { describeError } from '@cordon/runtime';
import { ERR_UNKNOWN_TOPIC, readKeys, type ConsumedRecord, type ProduceRecord, type TopicPartition } from '@cordon/bus';
import { defineStage } from '@cordon/stage';
import { codecFor, stageStateKey, TOPICS, type LogBatch } from '@cordon/schemas';
import { STAGE, toAlert, toBlock } from './alerts.js';
import { loginspectServiceConfigSchema } from './config.js';
import { ERR_LOGINSPECT_BAD_BATCH, ERR_LOGINSPECT_STATE } from './errors.js';
import { LogInspector, type InspectState } from './inspector.js';

/**
 * The loginspect stage: `cordon.logs.v1` → LogInspector (one InspectState per input
 * partition: a source's lines all land on one partition, keyed vm + source) →
 * `cordon.alerts.v1` and `cordon.blocks.v1`; undecodable batches → the DLQ.
 *
 * Outputs are sent before the batch's offset is committed (at-least-once), and every id is
 * derived from the input (alert: vm + source + line offset + rule; block: enforcer + address
 * + log time), so a redelivered batch produces the same records again, which the sink and the
 * compacted blocks topic absorb.
 *
 * The per-partition state (threshold counters, sshd sessions, repeat offenders) is
 * checkpointed to `cordon.state.v1` every `checkpointIntervalMs` and when a partition is given
 * up; whoever gets the partition next restores it and re-reads the input from the
 * checkpoint's offset — a brute force in progress keeps its count across a restart or a
 * rebalance, and the lines re-read give the same ids again.
 */
export const loginspectStage = defineStage({
  name: STAGE,
  summary: 'log lines from agents → decoders, Sigma and threshold rules → alerts and blocks',
  config: loginspectServiceConfigSchema,
  inputs: (c) => [{ group: c.groupId, topic: c.inputTopic }],
  outputs: (c) => [c.alertsTopic, c.blocksTopic, c.stateTopic, c.dlqTopic],
  reads: (c) => [c.stateTopic],
  start(stage) {
    const { config, ctx, bus } = stage;
    const { log, metrics, clock } = ctx;
    const inspector = LogInspector.fromConfig(config.inspector);
    if (inspector.rules.refused.length) {
      log.info(
        { loaded: inspector.rules.rules.length, refused: inspector.rules.refused.length },
        'Some rules were refused; `cordon logtest --stats` lists them with reasons.',
      );
    }
    const logsCodec = codecFor(TOPICS.logs);
    const alertsCodec = codecFor(TOPICS.alerts);
    const blocksCodec = codecFor(TOPICS.blocks);
    const stateCodec = codecFor(TOPICS.state);
    /** Per input partition: its state, the next offset it reflects, when it was last saved. */
    const states = new Map<number, { state: InspectState; next: bigint; savedNext: bigint; savedAt: number }>();
    const stateKey = (p: number) => stageStateKey(STAGE, config.inputTopic, p);
    /** Without the state topic (a bare test bus) the stage runs, without checkpoints. */
    let checkpoints = true;

    async function checkpoint(partitions: number[]): Promise<void> {
      const records: ProduceRecord[] = [];
      for (const p of partitions) {
        const s = states.get(p);
        if (!checkpoints) break;
        if (!s || s.next === s.savedNext) continue;
        records.push({
          key: Buffer.from(stateKey(p)),
          value: stateCodec.encode({
            stage: STAGE,
            input_topic: config.inputTopic,
            input_partition: p,
            input_offset: Number(s.next),
            ts_us: clock.now() * 1000,
            state: inspector.saveState(s.state),
            output_offsets: {},
            emitted_ids: [],
          }),
        });
        s.savedNext = s.next;
        s.savedAt = clock.now();
      }
      if (records.length === 0) return;
      try {
        await stage.send(config.stateTopic, records);
        metrics.inc('checkpoints', records.length);
      } catch (err) {
        // a lost checkpoint costs counts after a restart, never input: the stage goes on
        for (const p of partitions) {
          const s = states.get(p);
          if (s) s.savedNext = -1n;
        }
        metrics.inc('errors');
        log.warn(
          { err: describeError(err), topic: config.stateTopic },
          'A loginspect checkpoint could not be written; the next one retries.',
        );
      }
    }

    /** Newly assigned partitions: state and position from their checkpoint, when there is one. */
    async function restore(tps: TopicPartition[]): Promise<void> {
      const mine = tps
        .filter((tp) => tp.topic === config.inputTopic && !states.has(tp.partition))
        .map((tp) => tp.partition);
      if (mine.length === 0) return;
      let found: Map<string, ConsumedRecord>;
      try {
        found = await readKeys(bus, config.stateTopic, mine.map(stateKey));
      } catch (err) {
        if (!ERR_UNKNOWN_TOPIC.is(err)) throw err;
        if (checkpoints)
          log.warn(
            { topic: config.stateTopic },
            'The state topic does not exist: loginspect state is not checkpointed.',
          );
        checkpoints = false;
        return;
      }
      for (const p of mine) {
        const rec = found.get(stateKey(p));
        if (!rec?.value) continue;
        try {
          const st = stateCodec.decode(rec.value);
          const state = inspector.loadState(st.state);
          const next = BigInt(st.input_offset);
          states.set(p, { state, next, savedNext: next, savedAt: clock.now() });
          loop.seek({ topic: config.inputTopic, partition: p, offset: next });
          metrics.inc('restored');
          log.info(
            { partition: p, offset: String(next), counters: state.thresholds.size },
            'Loginspect state restored from its checkpoint.',
          );
        } catch (err) {
          // fail open: the partition goes on with empty state, the bad record goes to the DLQ
          const e = ERR_LOGINSPECT_STATE.is(err)
            ? err
            : ERR_LOGINSPECT_STATE.withCause(err, describeError(err).message);
          log.error(
            { err: e, partition: p },
            'A loginspect checkpoint is unreadable; the partition starts with empty state.',
          );
          await stage.send(config.dlqTopic, [stage.deadLetter(rec, rec, e)]);
        }
      }
    }

    const loop = stage.consume<LogBatch>({
      group: config.groupId,
      topics: [config.inputTopic],
      dlqTopic: config.dlqTopic,
      maxBatchRecords: config.maxBatchRecords,
      decode: (v) => {
        try {
          return logsCodec.decode(v);
        } catch (err) {
          throw ERR_LOGINSPECT_BAD_BATCH.withCause(err, describeError(err).message);
        }
      },
      onAssign: (tps) => restore(tps),
      async onRevoke(tps) {
        const mine = tps.filter((tp) => tp.topic === config.inputTopic).map((tp) => tp.partition);
        await checkpoint(mine);
        for (const p of mine) states.delete(p);
      },
      async handle(batch) {
        let slot = states.get(batch.partition);
        if (!slot)
          states.set(
            batch.partition,
            (slot = { state: inspector.newState(), next: -1n, savedNext: -1n, savedAt: clock.now() }),
          );
        const state = slot.state;
        const blocks: ProduceRecord[] = [];
        for (const { value: lb } of batch.records) {
          const hint = lb.format ?? lb.source;
          // binary bytes decode lossily (U+FFFD) rather than failing the line
          const texts = lb.lines.map((line) => line.line.toString('utf8').replace(/\r?\n$/, ''));
          // the batch's literals searched at once (natively, when Hyperscan is there)
          inspector.prepare(texts);
          for (let k = 0; k < lb.lines.length; k++) {
            const line = lb.lines[k]!;
            metrics.inc('lines');
            const r = inspector.inspect(state, texts[k]!, { refMs: Math.floor(line.ts_us / 1000), hint }, k);
            for (const d of r.detections) {
              const alert = toAlert(lb, line.offset, d);
              if (alert.ts_us === 0) alert.ts_us = line.ts_us;
              batch.emit(config.alertsTopic, { key: Buffer.from(lb.vm), value: alertsCodec.encode(alert) });
              metrics.inc('alerts');
              for (const b of r.blocks) {
                if (b.rule !== d.rule) continue;
                const blk = toBlock(lb, b, alert.alert_id, config.inspector.blocks.action);
                blocks.push({ key: blk.key, value: blocksCodec.encode(blk.value) });
              }
            }
          }
        }
        // Blocks after their alerts: a consumer of both never sees a block whose reason is unknown.
        batch.emit(config.blocksTopic, blocks);
        metrics.inc('blocks', blocks.length);
        slot.next = batch.nextOffset;
        if (clock.now() - slot.savedAt >= config.checkpointIntervalMs) {
          // the checkpoint says the input up to here is done: its outputs must be out first
          await batch.flush();
          await checkpoint([batch.partition]);
        }
      },
    });
    return { inspector };
  },
});
