import { createHash } from 'node:crypto';
import { z } from 'zod';
import { childContext, describeConfigIssues, defineError, type Context } from '@cordon/runtime';
import type { Batch, Bus, ProduceRecord, TopicPartition } from '@cordon/bus';
import { codecFor, TOPICS, type Alert, type AlertAction, type PacketBatch, deadLetter } from '@cordon/schemas';
import { BatchBuilder, Engine, Rules, type RuleSource } from '@cordon/native';

/**
 * The dpi stage on the bus: `cordon.packets.v1` → one native engine per input partition (a
 * flow's packets all land on one partition, so its flow, stream and app-layer state live
 * there) → `cordon.alerts.v1`. Several instances share the partitions through the consumer
 * group. One native call per PacketBatch record. The rule set can be replaced while running
 * (`setRules`): every engine switches, flows continue.
 *
 * A partition taken away (rebalance) is finished: its engine flushes and its last alerts are
 * sent; the next owner starts that partition's flows afresh (Suricata's midstream rules
 * apply to them). Alert ids are deterministic (batch id, flow, sid, time, position), so a
 * batch delivered again yields the same alerts and the sink counts them once.
 */
export const dpiServiceConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-dpi'),
    inputTopic: z.string().min(1).default(TOPICS.packets),
    outputTopic: z.string().min(1).default(TOPICS.alerts),
    dlqTopic: z.string().min(1).default(TOPICS.dlq),
    checksum: z.enum(['auto', 'on', 'off']).default('auto'),
    maxBatchRecords: z.number().int().positive().default(64),
  })
  .strict();

export type DpiServiceConfig = z.infer<typeof dpiServiceConfigSchema>;
export type DpiServiceConfigInput = z.input<typeof dpiServiceConfigSchema>;

export const ERR_DPI_CONFIG = defineError('CORDON_ERR_DPI_CONFIG', (detail: string) => `invalid dpi configuration: ${detail}`);
export const ERR_DPI_EVE = defineError('CORDON_ERR_DPI_EVE', (detail: string) => `the engine produced an alert line that is not EVE JSON: ${detail}`);

export interface DpiServiceOptions {
  bus: Bus;
  ctx: Context;
  rules: Rules;
  config?: DpiServiceConfigInput;
}

export interface DpiServiceHandle {
  readonly done: Promise<void>;
  /** Replace the rule set in every engine; flows continue. */
  setRules(rules: Rules): void;
  stop(): Promise<void>;
}

interface Eve {
  timestamp?: string;
  flow_id?: number | string;
  src_ip?: string;
  src_port?: number;
  dest_ip?: string;
  dest_port?: number;
  proto?: string;
  app_proto?: string;
  alert?: { signature_id?: number; rev?: number; gid?: number; action?: string; signature?: string; category?: string; severity?: number };
  [k: string]: unknown;
}

const ACTIONS: Record<string, AlertAction> = { allowed: 'alert', alert: 'alert', blocked: 'drop', drop: 'drop', reject: 'reject', pass: 'pass' };

/** An EVE alert line (and the batch it came from) as a Cordon Alert. */
export function eveToAlert(line: string, pb: PacketBatch, position: number): Alert {
  let eve: Eve;
  try {
    eve = JSON.parse(line) as Eve;
  } catch (err) {
    throw ERR_DPI_EVE.withCause(err, line.slice(0, 200));
  }
  const a = eve.alert ?? {};
  const sid = a.signature_id ?? 0;
  const ts = eve.timestamp ? Date.parse(eve.timestamp) : NaN;
  const tsUs = Number.isFinite(ts) ? ts * 1000 + (Number(/\.\d{3}(\d{3})/.exec(eve.timestamp ?? '')?.[1] ?? 0) || 0) : (pb.packets[0]?.ts_us ?? 0);
  const { alert: _a, timestamp: _t, ...rest } = eve;
  return {
    // not the engine's flow_id: like Suricata's, it is only unique within one engine's life
    alert_id: createHash('sha256')
      .update(`dpi\0${pb.sensor}\0${pb.batch_id}\0${a.gid ?? 1}:${sid}\0${eve.timestamp ?? ''}\0${eve.src_ip ?? ''}:${eve.src_port ?? ''}>${eve.dest_ip ?? ''}:${eve.dest_port ?? ''}\0${position}`)
      .digest('hex')
      .slice(0, 32),
    ts_us: tsUs,
    stage: 'dpi',
    vm: pb.vm,
    sensor: pb.sensor,
    rule_id: `sid:${sid}`,
    rule_rev: a.rev ?? 0,
    signature: a.signature ?? `sid ${sid}`,
    severity: a.severity ?? 3,
    category: a.category ?? null,
    action: ACTIONS[a.action ?? 'alert'] ?? 'alert',
    src_ip: eve.src_ip ?? null,
    src_port: eve.src_port ?? null,
    dst_ip: eve.dest_ip ?? null,
    dst_port: eve.dest_port ?? null,
    proto: eve.proto ?? null,
    flow_id: eve.flow_id === undefined ? null : String(eve.flow_id),
    evidence: JSON.stringify(rest),
  };
}

/** Compile rule files' text (from the policy topic or disk) into a rule set, reporting what failed. */
export function compileRules(sources: RuleSource[], ctx: Context): Rules {
  const rules = Rules.compile(sources);
  const r = rules.report();
  ctx.log.info({ rules: r.rules, loaded: r.loaded, failed: r.failed }, 'Rule set compiled.');
  for (const f of r.failures.slice(0, 20)) ctx.log.warn({ sid: f.sid, file: f.file, line: f.line, reason: f.reason }, 'A rule could not be loaded.');
  return rules;
}

export function startDpiService(opts: DpiServiceOptions): DpiServiceHandle {
  const parsed = dpiServiceConfigSchema.safeParse(opts.config ?? {});
  if (!parsed.success) throw ERR_DPI_CONFIG.withCause(parsed.error, describeConfigIssues(parsed.error.issues));
  const config = parsed.data;
  const ctx = childContext(opts.ctx, 'dpi');
  const { bus } = opts;
  const { log, metrics, clock } = ctx;
  const packets = codecFor(TOPICS.packets);
  const alertsCodec = codecFor(TOPICS.alerts);
  const producer = bus.producer();
  const engines = new Map<number, Engine>();
  let rules = opts.rules;
  let stopping = false;

  const engineFor = (partition: number): Engine => {
    let e = engines.get(partition);
    if (!e) engines.set(partition, (e = new Engine(rules, { checksum: config.checksum })));
    return e;
  };

  const dlq = (source: { topic: string; partition: number; offset: bigint }, key: Buffer | null, value: Buffer | null, err: unknown): ProduceRecord =>
    deadLetter('dpi', source, { key, value }, err, clock.now() * 1000);

  /** Alerts of one PacketBatch, numbered within it (positions must not depend on how the bus batched records). */
  const toRecords = (lines: string[], pb: PacketBatch, out: ProduceRecord[], base = 0) => {
    lines.forEach((line, i) => {
      const alert = eveToAlert(line, pb, base + i);
      out.push({ key: Buffer.from(alert.vm ?? alert.sensor ?? ''), value: alertsCodec.encode(alert) });
    });
  };

  // the flushing alerts of a finished partition belong to no batch: this stands in for one
  const flushBatch = (partition: number): PacketBatch => ({
    batch_id: `flush:${config.inputTopic}:${partition}:${clock.now()}`, sensor: 'dpi', vm: null, linktype: 1, end_of_source: true, packets: [],
  });

  const finishPartitions = async (tps: TopicPartition[]) => {
    const out: ProduceRecord[] = [];
    for (const tp of tps) {
      const e = engines.get(tp.partition);
      if (!e) continue;
      toRecords(e.finish(), flushBatch(tp.partition), out);
      engines.delete(tp.partition);
    }
    if (out.length) await producer.send(config.outputTopic, out);
  };

  const consumer = bus.consumer({
    groupId: config.groupId,
    topics: [config.inputTopic],
    fromBeginning: true,
    maxBatchRecords: config.maxBatchRecords,
    onRevoke: (tps) => finishPartitions(tps),
  });

  const handle = async (batch: Batch) => {
    if (stopping) return;
    const out: ProduceRecord[] = [];
    const letters: ProduceRecord[] = [];
    const engine = engineFor(batch.partition);
    for (const rec of batch.records) {
      metrics.inc('received');
      let pb: PacketBatch;
      try {
        if (rec.value === null) throw new Error('record has no value (null)');
        pb = packets.decode(rec.value);
      } catch (err) {
        metrics.inc('errors');
        letters.push(dlq(rec, rec.key, rec.value, err));
        continue;
      }
      try {
        let lines: string[] = [];
        if (pb.packets.length) {
          const b = new BatchBuilder();
          for (const p of pb.packets) b.add(p.frame, p.ts_us, pb.linktype);
          lines = engine.processBatch(b.take());
          metrics.inc('packets', pb.packets.length);
        }
        // a source that ended (a replayed capture) flushes, as Suricata does at the end of a pcap
        if (pb.end_of_source) lines = lines.concat(engine.finish());
        toRecords(lines, pb, out);
      } catch (err) {
        metrics.inc('errors');
        letters.push(dlq(rec, rec.key, rec.value, err));
      }
    }
    if (out.length) await producer.send(config.outputTopic, out);
    if (letters.length) await producer.send(config.dlqTopic, letters);
    metrics.inc('sent', out.length);
  };

  const done = consumer.run(handle);
  let stopped: Promise<void> | null = null;
  return {
    done,
    setRules(next: Rules) {
      rules = next;
      for (const e of engines.values()) e.setRules(next);
      log.info({ engines: engines.size }, 'Rule set replaced; flows continue.');
    },
    stop: () =>
      (stopped ??= (async () => {
        stopping = true;
        await consumer.close();
        await done.catch(() => undefined);
        await producer.close();
      })()),
  };
}
