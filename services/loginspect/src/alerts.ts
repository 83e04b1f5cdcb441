import { createHash } from 'node:crypto';
import { agentEnforcer, alertId, blockKey, type AlertInput, type BlockDecision, type LogBatch } from '@cordon/schemas';
import type { BlockRequest, Detection } from './inspector.js';

/** The pure part of the loginspect stage's output: detections as alerts, block requests as decisions. */

export const STAGE = 'loginspect';

const MAX_EVIDENCE_LINE = 2048;

export function alertIdFor(vm: string, source: string, offset: number | bigint, ruleId: string): string {
  return alertId(STAGE, vm, source, offset, ruleId);
}

export function ruleRef(d: Detection): string {
  return `${d.rule.origin}:${d.rule.id}`;
}

/** Detection → Alert record (pure: the same detection always gives the same record). */
export function toAlert(batch: LogBatch, offset: number, d: Detection): AlertInput {
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
      threshold: d.crossing
        ? {
            count: d.crossing.count,
            window_s: d.crossing.windowMs / 1000,
            group: d.crossing.group,
            first_ts_us: d.crossing.firstMs * 1000,
          }
        : null,
    }),
  };
}

/** Block request → BlockDecision addressed to the agent that shipped the lines. */
export function toBlock(
  batch: LogBatch,
  b: BlockRequest,
  reasonAlert: string,
  action: 'drop' | 'reject',
): { key: Buffer; value: BlockDecision } {
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
