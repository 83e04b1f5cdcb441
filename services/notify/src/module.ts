import { readFileSync } from 'node:fs';
import type { ConsumedRecord, ProduceRecord } from '@cordon/bus';
import { defineStage, type Stage, type StageBatch } from '@cordon/stage';
import {
  codecFor,
  TOPICS,
  type Alert,
  type AgentRecord,
  type AuditEvent,
  type FileEvent,
  type FlowRecord,
  type LogBatch,
} from '@cordon/schemas';
import {
  notifyConfigSchema,
  type NotifyConfig,
  type SyslogTarget,
  type TargetFilter,
  type WebhookTarget,
} from './config.js';
import { ERR_NOTIFY_STOPPING, ERR_NOTIFY_SYSLOG_FAILED, ERR_NOTIFY_WEBHOOK_FAILED } from './errors.js';
import { alertToOcsf, auditToOcsf, fimToOcsf, flowToOcsf, siemRecord, type OcsfEvent } from './ocsf.js';
import { SilenceTracker, silenceAlert, type SourceKind } from './silence.js';
import { rfc5424, SyslogSender, type Facility } from './syslog.js';
import {
  backoffMs,
  DELIVERY_HEADER,
  RateLimiter,
  retryable,
  signWebhook,
  SIGNATURE_HEADER,
  TIMESTAMP_HEADER,
  webhookBody,
  type RetryPolicy,
} from './webhook.js';

/**
 * The notify stage: what leaves Cordon for people and other tools.
 *
 * - **SIEM export**: alerts, flows, file events and audit events as OCSF JSON on
 *   `cordon.siem.v1` (ocsf.ts), for any Kafka-reading SIEM.
 * - **Syslog** targets: alerts as RFC 5424 with CEF or LEEF, over UDP, TCP or TLS.
 * - **Webhooks**: alerts as signed JSON (Cordon's, OCSF, or Slack-compatible).
 * - **Silent sources**: agents, log sources and captures that stop sending raise an alert.
 *
 * Every syslog and webhook target is its own consumer group on the alerts topic, and a batch's
 * offset is committed only once each of its alerts was delivered (or, after the retry budget,
 * dead-lettered): a target down for an hour gets every alert, once and in order (per
 * partition: per VM), when it returns, and a slow target holds back no other. A delivery being
 * retried when the stage stops is abandoned uncommitted and starts again on the next run.
 */
export const notifyStage = defineStage({
  name: 'notify',
  summary:
    'alerts, flows, file and audit events → OCSF on cordon.siem.v1, syslog (CEF/LEEF), signed webhooks; silent-source alerts',
  config: notifyConfigSchema,
  inputs: (c) => [
    ...(c.siem.enabled ? c.siem.topics.map((topic) => ({ group: `${c.groupId}-siem`, topic })) : []),
    ...[...c.webhooks, ...c.syslog].map((t) => ({ group: targetGroup(c, t.name), topic: c.alertsTopic })),
    ...(c.silence.enabled ? silenceTopics(c).map((topic) => ({ group: `${c.groupId}-silence`, topic })) : []),
  ],
  outputs: (c) => [...(c.siem.enabled ? [c.siem.outputTopic] : []), c.alertsTopic, c.dlqTopic],
  reads: () => [],
  start(stage) {
    const { config } = stage;
    if (config.siem.enabled) startSiemExport(stage);
    for (const w of config.webhooks) startWebhook(stage, w);
    for (const s of config.syslog) startSyslog(stage, s);
    const silence = config.silence.enabled ? startSilence(stage) : null;
    return { silence };
  },
});

const targetGroup = (c: NotifyConfig, name: string) => `${c.groupId}-target-${name}`;
const silenceTopics = (c: NotifyConfig) => [TOPICS.agents, TOPICS.logs, ...(c.silence.sensors ? [TOPICS.packets] : [])];

/** Whether an alert passes a target's filter. */
export function matchesFilter(f: TargetFilter, a: Alert, vmGroups: Record<string, string[]>): boolean {
  if (f.maxSeverity !== undefined && a.severity > f.maxSeverity) return false;
  if (f.stages && !f.stages.includes(a.stage)) return false;
  if (f.rules && !f.rules.some((r) => (r.endsWith('*') ? a.rule_id.startsWith(r.slice(0, -1)) : a.rule_id === r)))
    return false;
  if (f.vms || f.vmGroups) {
    const vms = new Set([...(f.vms ?? []), ...(f.vmGroups ?? []).flatMap((g) => vmGroups[g] ?? [])]);
    if (!a.vm || !vms.has(a.vm)) return false;
  }
  return true;
}

// ------------------------------------------------------------------ SIEM export (OCSF)

function startSiemExport(stage: Stage<NotifyConfig>): void {
  const { config, ctx } = stage;
  const siemCodec = codecFor(TOPICS.siem);
  const toOcsf: Record<string, (v: Buffer) => OcsfEvent> = {
    [TOPICS.alerts]: (v) => alertToOcsf(codecFor(TOPICS.alerts).decode(v)),
    [TOPICS.flows]: (v) => flowToOcsf(codecFor(TOPICS.flows).decode(v)),
    [TOPICS.fim]: (v) => fimToOcsf(codecFor(TOPICS.fim).decode(v)),
    [TOPICS.audit]: (v) => auditToOcsf(codecFor(TOPICS.audit).decode(v)),
  };
  stage.consume<OcsfEvent>({
    group: `${config.groupId}-siem`,
    topics: config.siem.topics,
    decode: (v, r) => toOcsf[r.topic]!(v),
    dlqTopic: config.dlqTopic,
    handle(batch) {
      const out: ProduceRecord[] = batch.records.map(({ value, record }) => ({
        key: record.key,
        value: siemCodec.encode(siemRecord(value)),
      }));
      batch.emit(config.siem.outputTopic, out);
      ctx.metrics.inc('siem_events', out.length);
    },
  });
}

// ------------------------------------------------------------------ delivery with retries

type Attempt = { ok: true } | { ok: false; retry: boolean; detail: string; waitMs?: number };

/** Sleep that ends early (with ERR_NOTIFY_STOPPING) when the stage stops. */
async function pause(stage: Stage<NotifyConfig>, ms: number, target: string): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (stage.stopping) throw ERR_NOTIFY_STOPPING(target);
    await new Promise((r) => setTimeout(r, Math.min(100, until - Date.now())));
  }
  if (stage.stopping) throw ERR_NOTIFY_STOPPING(target);
}

/**
 * Deliver the batch's alerts to one target, in order: each retried with backoff until it
 * succeeds or its budget is spent (then dead-lettered with `failed`'s code), rate-limited.
 */
async function deliverBatch(
  stage: Stage<NotifyConfig>,
  batch: StageBatch<Alert>,
  t: { name: string; filter: TargetFilter; retry: RetryPolicy; limiter?: RateLimiter },
  attempt: (a: Alert, n: number) => Promise<Attempt>,
  failed: (attempts: number, detail: string) => Error,
): Promise<void> {
  const { ctx, config } = stage;
  for (const { value: alert, record } of batch.records) {
    if (!matchesFilter(t.filter, alert, config.vmGroups)) continue;
    for (let n = 1; ; n++) {
      if (t.limiter) for (let w = t.limiter.take(); w > 0; w = t.limiter.take()) await pause(stage, w, t.name);
      const r = await attempt(alert, n);
      if (r.ok) {
        ctx.metrics.inc(`delivered.${t.name}`);
        break;
      }
      ctx.metrics.inc(`attempt_failed.${t.name}`);
      if (!r.retry || n >= t.retry.maxAttempts) {
        ctx.log.warn(
          { target: t.name, alert: alert.alert_id, attempts: n, detail: r.detail },
          'An alert could not be delivered; it goes to the DLQ.',
        );
        batch.reject(record, failed(n, r.detail));
        break;
      }
      if (n === 1)
        ctx.log.warn(
          { target: t.name, detail: r.detail },
          'A notification target refused or is unreachable; retrying with backoff.',
        );
      await pause(stage, Math.max(r.waitMs ?? 0, backoffMs(t.retry, n)), t.name);
    }
  }
}

// ------------------------------------------------------------------ webhooks

function startWebhook(stage: Stage<NotifyConfig>, w: WebhookTarget): void {
  const { config } = stage;
  const secret = w.secretEnv ? process.env[w.secretEnv] : w.secret;
  if (!secret)
    throw ERR_NOTIFY_WEBHOOK_FAILED(
      w.name,
      0,
      `its secret is not set (environment variable ${w.secretEnv ?? '?'} is empty)`,
    );
  const limiter = new RateLimiter(w.ratePerS, () => Date.now());
  const send = async (a: Alert): Promise<Attempt> => {
    const body = webhookBody(a, w.format);
    const ts = Math.floor(stage.ctx.clock.now() / 1000);
    try {
      const res = await fetch(w.url, {
        method: 'POST',
        headers: {
          ...w.headers,
          'content-type': 'application/json',
          'user-agent': 'cordon-notify/0.1',
          [TIMESTAMP_HEADER]: String(ts),
          [SIGNATURE_HEADER]: signWebhook(secret, ts, body),
          [DELIVERY_HEADER]: a.alert_id,
        },
        body,
        signal: AbortSignal.timeout(w.timeoutMs),
      });
      await res.arrayBuffer().catch(() => undefined);
      if (res.ok) return { ok: true };
      const retryAfter = Number(res.headers.get('retry-after'));
      return {
        ok: false,
        retry: retryable(res.status),
        detail: `HTTP ${res.status}`,
        ...(Number.isFinite(retryAfter) && retryAfter > 0
          ? { waitMs: Math.min(retryAfter * 1000, w.retry.maxMs) }
          : {}),
      };
    } catch (err) {
      return {
        ok: false,
        retry: true,
        detail: (err as Error).cause ? String((err as Error).cause) : (err as Error).message,
      };
    }
  };
  stage.consume<Alert>({
    group: targetGroup(config, w.name),
    topics: [config.alertsTopic],
    dlqTopic: config.dlqTopic,
    fromBeginning: w.fromBeginning,
    maxBatchRecords: 100,
    handle: (batch) =>
      deliverBatch(stage, batch, { name: w.name, filter: w.filter, retry: w.retry, limiter }, send, (n, d) =>
        ERR_NOTIFY_WEBHOOK_FAILED(w.name, n, d),
      ),
  });
}

// ------------------------------------------------------------------ syslog

function startSyslog(stage: Stage<NotifyConfig>, s: SyslogTarget): void {
  const { config } = stage;
  const sender = new SyslogSender({
    transport: s.transport,
    host: s.host,
    port: s.port,
    ...(s.caFile ? { caFile: s.caFile } : {}),
    ...(s.certFile ? { certFile: s.certFile } : {}),
    ...(s.keyFile ? { keyFile: s.keyFile } : {}),
    ...(s.servername ? { servername: s.servername } : {}),
  });
  // fail at start, not at the first alert, when a TLS file is unreadable
  for (const f of [s.caFile, s.certFile, s.keyFile]) if (f) readFileSync(f);
  stage.onStop(() => sender.close());
  const send = async (a: Alert): Promise<Attempt> => {
    try {
      await sender.send(
        rfc5424(a, s.format, { facility: s.facility as Facility, ...(s.hostname ? { hostname: s.hostname } : {}) }),
      );
      return { ok: true };
    } catch (err) {
      return { ok: false, retry: true, detail: (err as Error).message };
    }
  };
  stage.consume<Alert>({
    group: targetGroup(config, s.name),
    topics: [config.alertsTopic],
    dlqTopic: config.dlqTopic,
    fromBeginning: s.fromBeginning,
    maxBatchRecords: 500,
    handle: (batch) =>
      deliverBatch(stage, batch, { name: s.name, filter: s.filter, retry: s.retry }, send, (n, d) =>
        ERR_NOTIFY_SYSLOG_FAILED(s.name, n, d),
      ),
  });
}

// ------------------------------------------------------------------ silent sources

type Sign = { kind: SourceKind; name: string; vm: string | null; stopping?: boolean };

/**
 * The sensor of a PacketBatch and whether it ends its source, without decoding its frames:
 * batch_id, sensor, vm, linktype and end_of_source come before them in the Avro body.
 */
export function packetBatchHead(v: Buffer): { sensor: string; endOfSource: boolean } {
  let off = 5; // Confluent header
  const readLong = (): number => {
    let n = 0;
    let shift = 0;
    for (;;) {
      const b = v[off++];
      if (b === undefined) throw new Error('the packet batch is truncated');
      n += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) break;
      shift += 7;
    }
    return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
  };
  const string = (): string => {
    const len = readLong();
    if (len < 0 || off + len > v.length) throw new Error('the packet batch is truncated');
    off += len;
    return v.toString('utf8', off - len, off);
  };
  string(); // batch_id
  const sensor = string();
  if (readLong() === 1) string(); // vm
  readLong(); // linktype
  const eos = v[off];
  if (eos === undefined) throw new Error('the packet batch is truncated');
  return { sensor, endOfSource: eos === 1 };
}

function startSilence(stage: Stage<NotifyConfig>): SilenceTracker {
  const { config, ctx } = stage;
  const c = config.silence;
  const defaults: Record<SourceKind, number> = { agent: c.agentS, log: c.logS, sensor: c.sensorS };
  const tracker = new SilenceTracker((kind, name) => {
    const s = c.expect[`${kind}:${name}`] ?? defaults[kind];
    return s === 0 ? null : s * 1000;
  });
  const alertsCodec = codecFor(TOPICS.alerts);
  const decoders: Record<string, (v: Buffer) => Sign> = {
    [TOPICS.agents]: (v) => {
      const a: AgentRecord = codecFor(TOPICS.agents).decode(v);
      return { kind: 'agent', name: a.agent, vm: a.vm, stopping: a.status === 'stopping' };
    },
    [TOPICS.logs]: (v) => {
      const b: LogBatch = codecFor(TOPICS.logs).decode(v);
      return { kind: 'log', name: `${b.vm}|${b.source}`, vm: b.vm };
    },
    [TOPICS.packets]: (v) => {
      const h = packetBatchHead(v);
      // a replayed capture that ended is not a silent sensor
      return { kind: 'sensor', name: h.sensor, vm: null, stopping: h.endOfSource };
    },
  };
  stage.consume<Sign>({
    group: `${config.groupId}-silence`,
    topics: silenceTopics(config),
    // from now on: a source is tracked from its first sign of life after the stage started
    fromBeginning: false,
    decode: (v, r: ConsumedRecord) => decoders[r.topic]!(v),
    dlqTopic: config.dlqTopic,
    handle(batch) {
      for (const { value: s, record } of batch.records) {
        if (s.stopping) tracker.forget(s.kind, s.name);
        else tracker.observe(s.kind, s.name, s.vm, record.timestamp);
      }
    },
  });
  stage.every(c.checkEveryS * 1000, 'silent-source check', async () => {
    const now = ctx.clock.now();
    const silent = tracker.check(now);
    if (!silent.length) return;
    await stage.send(
      config.alertsTopic,
      silent.map((s) => {
        const a = silenceAlert(s, now);
        return { key: Buffer.from(a.vm ?? a.sensor ?? s.name), value: alertsCodec.encode(a) };
      }),
    );
    ctx.metrics.inc('silent_sources', silent.length);
    for (const s of silent)
      ctx.log.warn(
        { kind: s.kind, source: s.name, lastSeen: new Date(s.lastSeenMs).toISOString() },
        'A source went silent.',
      );
  });
  return tracker;
}

export type { FileEvent, FlowRecord, AuditEvent };
