import { z } from 'zod';
import { defineError } from '@cordon/runtime';
import { alertId, TOPICS, type Alert, type AlertAction, type PacketBatch } from '@cordon/schemas';

/** The dpi stage's configuration section (the stage itself is in module.ts). */
export const dpiConfigSchema = z
  .object({
    /** Rule files read from disk at start, instead of the rule sets the policy topic names. */
    ruleFiles: z.array(z.string().min(1)).optional(),
    groupId: z.string().min(1).default('cordon-dpi'),
    inputTopic: z.string().min(1).default(TOPICS.packets),
    outputTopic: z.string().min(1).default(TOPICS.alerts),
    dlqTopic: z.string().min(1).default(TOPICS.dlq),
    checksum: z.enum(['auto', 'on', 'off']).default('auto'),
    /** A rule set that takes longer to compile is not applied (the old one stays); compiling never blocks inspection. */
    compileTimeoutS: z.number().positive().max(3600).default(120),
    maxBatchRecords: z.number().int().positive().default(64),
  })
  .strict();

export type DpiConfig = z.infer<typeof dpiConfigSchema>;
export type DpiConfigInput = z.input<typeof dpiConfigSchema>;

export const ERR_DPI_EVE = defineError('CORDON_ERR_DPI_EVE', (detail: string) => `the engine produced an alert line that is not EVE JSON: ${detail}`);

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
    alert_id: alertId('dpi', pb.sensor, pb.batch_id, `${a.gid ?? 1}:${sid}`, eve.timestamp ?? '', `${eve.src_ip ?? ''}:${eve.src_port ?? ''}>${eve.dest_ip ?? ''}:${eve.dest_port ?? ''}`, position),
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
