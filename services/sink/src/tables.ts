import {
  codecFor,
  TOPICS,
  type Alert,
  type AuditEvent,
  type BlockDecision,
  type BlockStatusReport,
  type DeadLetter,
  type FileEvent,
  type FlowRecord,
  type TopicName,
  type TopicValues,
} from '@cordon/schemas';
import { microsToDateTime64 } from '@cordon/store';

/**
 * Which topic lands in which ClickHouse table, and how a record becomes a row. Adding a table
 * is one entry here plus a migration in schemas/clickhouse.
 */
export interface TableMapping<N extends TopicName = TopicName> {
  topic: N;
  table: string;
  toRow(value: TopicValues[N]): Record<string, unknown>;
  /**
   * Rows with a deterministic id (the same input, replayed as new records, gives the same id):
   * the sink inserts only the rows whose id the table does not hold yet, looked up within the
   * batch's time range (`time`). See module.ts for why. `id` names one column, or several
   * when only together they name a row (a block decision re-addressed to a VM's new enforcer
   * keeps its block_id).
   */
  identity?: { id: string | readonly string[]; time: string };
}

const ip = (s: string) => (s.includes(':') ? s : `::ffff:${s}`);

const flows: TableMapping<typeof TOPICS.flows> = {
  topic: TOPICS.flows,
  table: 'flows',
  identity: { id: 'flow_id', time: 'first_seen' },
  toRow: (f: FlowRecord) => ({
    flow_id: f.flow_id,
    sensor: f.sensor,
    vm: f.vm ?? '',
    vlan: f.vlan,
    proto: f.proto,
    src_ip: ip(f.src_ip),
    src_port: f.src_port,
    dst_ip: ip(f.dst_ip),
    dst_port: f.dst_port,
    first_seen: microsToDateTime64(f.first_seen_us),
    last_seen: microsToDateTime64(f.last_seen_us),
    pkts_toserver: f.pkts_toserver,
    pkts_toclient: f.pkts_toclient,
    bytes_toserver: f.bytes_toserver,
    bytes_toclient: f.bytes_toclient,
    tcp_flags_toserver: f.tcp_flags_toserver,
    tcp_flags_toclient: f.tcp_flags_toclient,
    end_reason: f.end_reason,
    community_id: f.community_id ?? '',
  }),
};

const dlq: TableMapping<typeof TOPICS.dlq> = {
  topic: TOPICS.dlq,
  table: 'dlq',
  toRow: (d: DeadLetter) => ({
    ts: microsToDateTime64(d.ts_us),
    stage: d.stage,
    source_topic: d.source_topic ?? '',
    source_partition: d.source_partition,
    source_offset: d.source_offset,
    error_code: d.error_code,
    error: d.error,
    key_base64: d.key ? d.key.toString('base64') : null,
    value_base64: d.value ? d.value.toString('base64') : null,
  }),
};

const alerts: TableMapping<typeof TOPICS.alerts> = {
  topic: TOPICS.alerts,
  table: 'alerts',
  identity: { id: 'alert_id', time: 'ts' },
  toRow: (a: Alert) => ({
    alert_id: a.alert_id,
    ts: microsToDateTime64(a.ts_us),
    stage: a.stage,
    vm: a.vm ?? '',
    sensor: a.sensor ?? '',
    rule_id: a.rule_id,
    rule_rev: a.rule_rev,
    signature: a.signature,
    severity: a.severity,
    category: a.category ?? '',
    action: a.action,
    src_ip: a.src_ip === null ? null : ip(a.src_ip),
    src_port: a.src_port,
    dst_ip: a.dst_ip === null ? null : ip(a.dst_ip),
    dst_port: a.dst_port,
    proto: a.proto ?? '',
    flow_id: a.flow_id ?? '',
    evidence: a.evidence,
    community_id: a.community_id ?? '',
    metadata: a.metadata ?? '',
    mitre_tactic_ids: a.mitre_tactic_ids ?? [],
    mitre_technique_ids: a.mitre_technique_ids ?? [],
    cves: a.cves ?? [],
    references: a.references ?? [],
    app_proto: a.app_proto ?? '',
    http_hostname: a.http_hostname ?? '',
    http_url: a.http_url ?? '',
    http_method: a.http_method ?? '',
    http_status: a.http_status ?? null,
    http_user_agent: a.http_user_agent ?? '',
    dns_rrname: a.dns_rrname ?? '',
    dns_rrtype: a.dns_rrtype ?? '',
    tls_sni: a.tls_sni ?? '',
    tls_version: a.tls_version ?? '',
    ja3: a.ja3 ?? '',
    payload_printable: a.payload_printable ?? '',
    pcap_cnt: a.pcap_cnt ?? null,
  }),
};

function targetText(t: BlockDecision['target']): string {
  if (t.kind === 'ip') return t.ip ?? '';
  if (t.kind === 'vm_quarantine') return t.vm ?? '';
  return `${t.proto ?? ''}/${t.src_ip ?? '*'}:${t.src_port ?? '*'}->${t.dst_ip ?? '*'}:${t.dst_port ?? '*'}`;
}

const blocks: TableMapping<typeof TOPICS.blocks> = {
  topic: TOPICS.blocks,
  table: 'blocks',
  // A decision record is one row: the same block_id again is the same decision delivered twice
  // (a sink restarted mid-batch reads it again in a batch cut elsewhere, so with another insert
  // token), unless it names another enforcer (re-addressed when the VM's protector changed).
  identity: { id: ['block_id', 'enforcer'], time: 'ts' },
  toRow: (b: BlockDecision) => ({
    ts: microsToDateTime64(b.created_us),
    block_id: b.block_id,
    enforcer: b.enforcer,
    target_kind: b.target.kind,
    target: targetText(b.target),
    scope: b.scope,
    action: b.action,
    ttl_ms: b.ttl_ms,
    created: microsToDateTime64(b.created_us),
    expires: microsToDateTime64(b.expires_us),
    reason_alert: b.reason_alert,
    status: b.status,
  }),
};

/** What the enforcers reported on each decision (a row per report; joined to `blocks` by block_id). */
const blockStatus: TableMapping<typeof TOPICS.blockStatus> = {
  topic: TOPICS.blockStatus,
  table: 'block_status',
  toRow: (s: BlockStatusReport) => ({
    ts: microsToDateTime64(s.ts_us),
    block_id: s.block_id,
    enforcer: s.enforcer,
    target: s.target,
    status: s.status,
    expires: microsToDateTime64(s.expires_us),
    error: s.error ?? '',
  }),
};

const fim: TableMapping<typeof TOPICS.fim> = {
  topic: TOPICS.fim,
  table: 'fim_events',
  identity: { id: 'event_id', time: 'ts' },
  toRow: (e: FileEvent) => ({
    event_id: e.event_id,
    ts: microsToDateTime64(e.ts_us),
    agent: e.agent,
    vm: e.vm,
    path: e.path,
    op: e.op,
    scan: e.scan,
    before: e.before ? JSON.stringify(e.before) : '',
    after: e.after ? JSON.stringify(e.after) : '',
    renamed_from: e.renamed_from ?? '',
    error: e.error ?? '',
  }),
};

/** The audit trail (the manager's, and the CLI's lifted blocks): the sink is the only writer of its table. */
const audit: TableMapping<typeof TOPICS.audit> = {
  topic: TOPICS.audit,
  table: 'audit',
  toRow: (a: AuditEvent) => ({
    audit_id: a.audit_id,
    ts: microsToDateTime64(a.ts_us),
    actor: a.actor,
    role: a.role ?? '',
    auth: a.auth ?? '',
    action: a.action,
    object: a.object,
    before: a.before,
    after: a.after,
    result: a.result,
    source_ip: a.source_ip ?? '',
    detail: a.detail ?? '',
  }),
};

export const TABLE_MAPPINGS: readonly TableMapping[] = [
  flows,
  dlq,
  alerts,
  blocks,
  blockStatus,
  fim,
  audit,
] as unknown as TableMapping[];

export function mappingFor(topic: string): TableMapping | undefined {
  return TABLE_MAPPINGS.find((m) => m.topic === topic);
}

export { codecFor };
