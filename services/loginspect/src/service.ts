import { createHash } from 'node:crypto';
import { childContext, describeError, serialized, type Context } from '@cordon/runtime';
import { ERR_UNKNOWN_TOPIC, readKeys, type Batch, type Bus, type ConsumedRecord, type ProduceRecord, type TopicPartition } from '@cordon/bus';
import { agentEnforcer, blockKey, codecFor, stageStateKey, TOPICS, type Alert, type BlockDecision, type LogBatch, deadLetter } from '@cordon/schemas';
import { parseLoginspectConfig, type LoginspectServiceConfig, type LoginspectServiceConfigInput } from './config.js';
import { ERR_LOGINSPECT_BAD_BATCH, ERR_LOGINSPECT_STATE } from './errors.js';
import { LogInspector, type BlockRequest, type Detection, type InspectState } from './inspector.js';

/**
 * The loginspect stage's adapter: `cordon.logs.v1` → LogInspector (one InspectState per
 * input partition: a source's lines all land on one partition, keyed vm + source) →
 * `cordon.alerts.v1` and `cordon.blocks.v1`; undecodable batches → `cordon.dlq.v1`.
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

const STAGE = 'loginspect';

export interface LoginspectServiceOptions {
  bus: Bus;
  ctx: Context;
  config?: LoginspectServiceConfigInput;
  /** Share compiled rules between instances (tests, `cordon up`); loaded from the config otherwise. */
  inspector?: LogInspector;
}

export interface LoginspectServiceHandle {
  stop(): Promise<void>;
  readonly done: Promise<void>;
  readonly config: LoginspectServiceConfig;
  readonly inspector: LogInspector;
}

const MAX_EVIDENCE_LINE = 2048;

export function alertIdFor(vm: string, source: string, offset: number | bigint, ruleId: string): string {
  return createHash('sha256').update(`${STAGE}\u0000${vm}\u0000${source}\u0000${String(offset)}\u0000${ruleId}`).digest('hex').slice(0, 32);
}

export function ruleRef(d: Detection): string {
  return `${d.rule.origin}:${d.rule.id}`;
}

/** Detection → Alert record (pure: the same detection always gives the same record). */
export function toAlert(batch: LogBatch, offset: number, d: Detection): Alert {
  const ev = d.event;
  const tsMs = ev.ts ?? 0;
  return {
    alert_id: alertIdFor(batch.vm, batch.source, offset, ruleRef(d)),
    ts_us: tsMs * 1000,
    stage: STAGE,
    vm: batch.vm,
    sensor: `agent:${batch.agent}`,
    rule_id: ruleRef(d),
    rule_rev: 0,
    signature: d.rule.title,
    severity: d.rule.severity,
    category: d.rule.tags[0] ?? null,
    action: 'alert',
    src_ip: d.srcIp,
    src_port: null,
    dst_ip: null,
    dst_port: null,
    proto: null,
    flow_id: null,
    evidence: JSON.stringify({
      source: batch.source,
      offset,
      line: ev.raw.length > MAX_EVIDENCE_LINE ? `${ev.raw.slice(0, MAX_EVIDENCE_LINE)}…` : ev.raw,
      program: ev.program,
      host: ev.host,
      rule_origin: d.rule.origin,
      rule_author: d.rule.author,
      level: d.rule.level,
      threshold: d.crossing ? { count: d.crossing.count, window_s: d.crossing.windowMs / 1000, group: d.crossing.group, first_ts_us: d.crossing.firstMs * 1000 } : null,
    }),
  };
}

/** Block request → BlockDecision addressed to the agent that shipped the lines. */
export function toBlock(batch: LogBatch, b: BlockRequest, reasonAlert: string, action: 'drop' | 'reject'): { key: Buffer; value: BlockDecision } {
  const enforcer = agentEnforcer(batch.agent);
  const created = b.tsMs * 1000;
  const value: BlockDecision = {
    block_id: createHash('sha256').update(`${enforcer}\u0000${b.ip}\u0000${created}`).digest('hex').slice(0, 32),
    enforcer,
    target: { kind: 'ip', ip: b.ip, proto: null, src_ip: null, src_port: null, dst_ip: null, dst_port: null, vm: null },
    scope: batch.vm,
    action,
    ttl_ms: b.ttlMs,
    created_us: created,
    expires_us: created + b.ttlMs * 1000,
    reason_alert: reasonAlert,
    status: 'requested',
  };
  return { key: blockKey(enforcer, b.ip), value };
}

export function startLoginspectService(opts: LoginspectServiceOptions): LoginspectServiceHandle {
  const config = parseLoginspectConfig(opts.config ?? {});
  const { bus } = opts;
  const ctx = childContext(opts.ctx, STAGE);
  const { log, metrics, clock } = ctx;
  const inspector = opts.inspector ?? LogInspector.fromConfig(config.inspector);
  if (inspector.rules.refused.length) {
    log.info({ loaded: inspector.rules.rules.length, refused: inspector.rules.refused.length }, 'Some rules were refused; `cordon logtest --stats` lists them with reasons.');
  }
  const logsCodec = codecFor(TOPICS.logs);
  const alertsCodec = codecFor(TOPICS.alerts);
  const blocksCodec = codecFor(TOPICS.blocks);
  const stateCodec = codecFor(TOPICS.state);
  const producer = bus.producer();
  /** Per input partition: its state, the next offset it reflects, when it was last saved. */
  const states = new Map<number, { state: InspectState; next: bigint; savedNext: bigint; savedAt: number }>();

  // one operation at a time (a batch, a checkpoint, a rebalance callback): they share `states`
  const exclusive = serialized();

  const consumer = bus.consumer({
    groupId: config.groupId,
    topics: [config.inputTopic],
    fromBeginning: true,
    autoCommit: true,
    maxBatchRecords: config.maxBatchRecords,
    onAssign: (tps) => exclusive(() => restore(tps)),
    onRevoke: (tps) =>
      exclusive(async () => {
        const mine = tps.filter((tp) => tp.topic === config.inputTopic).map((tp) => tp.partition);
        await checkpoint(mine);
        for (const p of mine) states.delete(p);
      }),
  });

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
      await producer.send(config.stateTopic, records);
      metrics.inc('checkpoints', records.length);
    } catch (err) {
      // a lost checkpoint costs counts after a restart, never input: the stage goes on
      for (const p of partitions) {
        const s = states.get(p);
        if (s) s.savedNext = -1n;
      }
      metrics.inc('errors');
      log.warn({ err: describeError(err), topic: config.stateTopic }, 'A loginspect checkpoint could not be written; the next one retries.');
    }
  }

  /** Newly assigned partitions: state and position from their checkpoint, when there is one. */
  async function restore(tps: TopicPartition[]): Promise<void> {
    const mine = tps.filter((tp) => tp.topic === config.inputTopic && !states.has(tp.partition)).map((tp) => tp.partition);
    if (mine.length === 0) return;
    let found: Map<string, ConsumedRecord>;
    try {
      found = await readKeys(bus, config.stateTopic, mine.map(stateKey));
    } catch (err) {
      if (!ERR_UNKNOWN_TOPIC.is(err)) throw err;
      if (checkpoints) log.warn({ topic: config.stateTopic }, 'The state topic does not exist: loginspect state is not checkpointed.');
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
        consumer.seek({ topic: config.inputTopic, partition: p, offset: next });
        metrics.inc('restored');
        log.info({ partition: p, offset: String(next), counters: state.thresholds.size }, 'Loginspect state restored from its checkpoint.');
      } catch (err) {
        // fail open: the partition goes on with empty state, the bad record goes to the DLQ
        metrics.inc('errors');
        const e = ERR_LOGINSPECT_STATE.is(err) ? err : ERR_LOGINSPECT_STATE.withCause(err, describeError(err).message);
        log.error({ err: e, partition: p }, 'A loginspect checkpoint is unreadable; the partition starts with empty state.');
        await producer.send(config.dlqTopic, [stateLetter(rec, e)]);
      }
    }
  }

  const dlq = (batch: Batch, offset: bigint, key: Buffer | null, value: Buffer | null, err: unknown): ProduceRecord =>
    deadLetter(STAGE, { topic: batch.topic, partition: batch.partition, offset }, { key, value }, err, clock.now() * 1000);

  const stateLetter = (rec: ConsumedRecord, err: unknown): ProduceRecord =>
    deadLetter(STAGE, { topic: rec.topic, partition: rec.partition, offset: rec.offset }, { key: rec.key, value: rec.value }, err, clock.now() * 1000);

  async function handleBatch(batch: Batch): Promise<void> {
    // A batch in flight when stop() is called is finished: with auto-commit, skipping it would lose it.
    if (batch.topic !== config.inputTopic) return;
    let slot = states.get(batch.partition);
    if (!slot) states.set(batch.partition, (slot = { state: inspector.newState(), next: -1n, savedNext: -1n, savedAt: clock.now() }));
    const state = slot.state;
    const alerts: ProduceRecord[] = [];
    const blocks: ProduceRecord[] = [];
    const letters: ProduceRecord[] = [];
    for (const rec of batch.records) {
      metrics.inc('received');
      let lb: LogBatch;
      try {
        if (rec.value === null) throw new Error('record has no value (null)');
        lb = logsCodec.decode(rec.value);
      } catch (err) {
        metrics.inc('errors');
        metrics.inc('dropped');
        letters.push(dlq(batch, rec.offset, rec.key, rec.value, ERR_LOGINSPECT_BAD_BATCH.withCause(err, describeError(err).message)));
        continue;
      }
      const hint = lb.format ?? lb.source;
      for (const line of lb.lines) {
        metrics.inc('lines');
        // binary bytes decode lossily (U+FFFD) rather than failing the line
        const text = line.line.toString('utf8').replace(/\r?\n$/, '');
        const r = inspector.inspect(state, text, { refMs: Math.floor(line.ts_us / 1000), hint });
        for (const d of r.detections) {
          const alert = toAlert(lb, line.offset, d);
          if (alert.ts_us === 0) alert.ts_us = line.ts_us;
          alerts.push({ key: Buffer.from(lb.vm), value: alertsCodec.encode(alert) });
          for (const b of r.blocks) {
            if (b.rule !== d.rule) continue;
            const blk = toBlock(lb, b, alert.alert_id, config.inspector.blocks.action);
            blocks.push({ key: blk.key, value: blocksCodec.encode(blk.value) });
          }
        }
      }
    }
    // Blocks after their alerts: a consumer of both never sees a block whose reason is unknown.
    if (alerts.length) await producer.send(config.alertsTopic, alerts);
    if (blocks.length) await producer.send(config.blocksTopic, blocks);
    if (letters.length) await producer.send(config.dlqTopic, letters);
    metrics.inc('sent', alerts.length + blocks.length);
    metrics.inc('alerts', alerts.length);
    metrics.inc('blocks', blocks.length);
    slot.next = batch.records[batch.records.length - 1]!.offset + 1n;
    if (clock.now() - slot.savedAt >= config.checkpointIntervalMs) await checkpoint([batch.partition]);
  }

  const running = consumer.run((batch) => exclusive(() => handleBatch(batch)));
  let stopped: Promise<void> | null = null;
  return {
    config,
    inspector,
    done: running,
    stop(): Promise<void> {
      stopped ??= (async () => {
        // the consumer's revoke checkpoints every partition it gives up
        await consumer.close();
        await running.catch(() => undefined);
        await producer.close();
        log.info('Loginspect service stopped.');
      })();
      return stopped;
    },
  };
}
