import { randomUUID } from 'node:crypto';
import type { ProduceRecord } from '@cordon/bus';
import { codecFor, TOPICS, type AuditEvent } from '@cordon/schemas';
import { redact } from './documents.js';

/** What a write route says about itself for its audit event. */
export interface AuditNote {
  /** The resource acted on: `<kind>:<id>` (user:alice, block:watchdog:hv1|203.0.113.66, …). */
  object?: string;
  before?: unknown;
  after?: unknown;
  detail?: string;
}

export interface AuditFacts {
  actor: string;
  role: string | null;
  auth: string | null;
  action: string;
  sourceIp: string | null;
  result: AuditEvent['result'];
  nowUs: number;
}

const codec = codecFor(TOPICS.audit);
const json = (v: unknown) => (v === undefined ? null : JSON.stringify(redact(v)));

/** One AuditEvent on `cordon.audit.v1`, keyed by actor, secrets redacted from before/after. */
export function auditRecord(f: AuditFacts, note: AuditNote): { record: ProduceRecord; event: AuditEvent } {
  const event: AuditEvent = {
    audit_id: randomUUID(),
    ts_us: f.nowUs,
    actor: f.actor,
    action: f.action,
    object: note.object ?? '',
    before: json(note.before),
    after: json(note.after),
    result: f.result,
    source_ip: f.sourceIp,
    role: f.role,
    auth: f.auth,
    detail: note.detail ?? null,
  };
  return { record: { key: Buffer.from(f.actor), value: codec.encode(event) }, event };
}
