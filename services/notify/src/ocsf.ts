import type { Alert, AuditEvent, FileAttrs, FileEvent, FlowRecord, SiemEvent } from '@cordon/schemas';

/**
 * Cordon's records as OCSF 1.x events (https://schema.ocsf.io), for SIEMs that take OCSF as it
 * is: alerts as Detection Finding (2004), authentication detections of log inspection as
 * Authentication (3002), flows as Network Activity (4001), file changes as File System
 * Activity (1001), manager writes (audit) as API Activity (6003). Pure functions: the same record
 * always gives the same event (its `metadata.uid` is the record's own id).
 */

export const OCSF_VERSION = '1.3.0';
const PRODUCT = { name: 'Cordon', vendor_name: 'Cordon', version: '0.1.0' } as const;

export const OCSF_CLASS = {
  fileActivity: 1001,
  authentication: 3002,
  networkActivity: 4001,
  detectionFinding: 2004,
  apiActivity: 6003,
} as const;
const CATEGORY: Record<number, number> = { 1001: 1, 2004: 2, 3002: 3, 4001: 4, 6003: 6 };

export type OcsfEvent = Record<string, unknown> & {
  class_uid: number;
  category_uid: number;
  activity_id: number;
  type_uid: number;
  severity_id: number;
  time: number;
  metadata: { version: string; uid: string; product: typeof PRODUCT; [k: string]: unknown };
};

/** Cordon severity 1 (highest) .. 4 → OCSF severity_id (5 Critical, 4 High, 3 Medium, 2 Low, 1 Informational). */
export function ocsfSeverity(severity: number): { severity_id: number; severity: string } {
  const id = severity <= 1 ? 4 : severity === 2 ? 3 : severity === 3 ? 2 : 1;
  return { severity_id: id, severity: ['Unknown', 'Informational', 'Low', 'Medium', 'High', 'Critical'][id]! };
}

function base(
  classUid: number,
  activityId: number,
  timeUs: number,
  uid: string,
  extra: Record<string, unknown>,
): OcsfEvent {
  return {
    class_uid: classUid,
    category_uid: CATEGORY[classUid]!,
    activity_id: activityId,
    type_uid: classUid * 100 + activityId,
    severity_id: 1,
    time: Math.floor(timeUs / 1000),
    metadata: { version: OCSF_VERSION, uid, product: PRODUCT },
    ...extra,
  };
}

const endpoint = (ip: string | null | undefined, port: number | null | undefined, vm?: string | null) => {
  const e: Record<string, unknown> = {};
  if (ip) e.ip = ip;
  if (port !== null && port !== undefined) e.port = port;
  if (vm) e.name = vm;
  return e;
};

const PROTO_NUM: Record<string, number> = { TCP: 6, UDP: 17, ICMP: 1, 'IPV6-ICMP': 58, SCTP: 132 };

/** Whether a loginspect alert is about authentication (sshd, su, sudo, PAM, login, FTP/mail auth). */
export function isAuthDetection(a: Alert): boolean {
  if (a.stage !== 'loginspect') return false;
  const program = (JSON.parse(a.evidence || '{}') as { program?: string }).program ?? '';
  return /auth|ssh|login|logon|pam|passw|brute|sudo|\bsu\b/i.test(
    `${a.rule_id} ${a.category ?? ''} ${a.signature} ${program}`,
  );
}

function userOf(a: Alert): string {
  const line = (JSON.parse(a.evidence || '{}') as { line?: string }).line ?? '';
  return /(?:for|user)\s+(?:invalid user\s+)?([\w.\-@$]+)/i.exec(line)?.[1] ?? 'unknown';
}

/** An alert: Detection Finding 2004, or Authentication 3002 for an authentication detection of log inspection. */
export function alertToOcsf(a: Alert): OcsfEvent {
  const sev = ocsfSeverity(a.severity);
  const evidence = safeJson(a.evidence);
  if (isAuthDetection(a)) {
    return base(OCSF_CLASS.authentication, 1, a.ts_us, a.alert_id, {
      ...sev,
      activity_name: 'Logon',
      status_id: 2,
      status: 'Failure',
      message: a.signature,
      user: { name: userOf(a) },
      src_endpoint: endpoint(a.src_ip, a.src_port),
      dst_endpoint: endpoint(a.dst_ip, a.dst_port, a.vm),
      device: { name: a.vm ?? '', type_id: 6, type: 'Virtual' },
      unmapped: { cordon_rule_id: a.rule_id, cordon_alert_id: a.alert_id, evidence },
    });
  }
  const attacks = [
    ...(a.mitre_technique_ids ?? []).map((t) => ({
      technique: { uid: t },
      tactics: (a.mitre_tactic_ids ?? []).map((uid) => ({ uid })),
      version: '14',
    })),
    ...((a.mitre_technique_ids ?? []).length === 0
      ? (a.mitre_tactic_ids ?? []).map((uid) => ({ tactic: { uid }, version: '14' }))
      : []),
  ];
  const finding: Record<string, unknown> = {
    uid: a.alert_id,
    title: a.signature,
    analytic: { uid: a.rule_id, name: a.signature, type_id: 1, type: 'Rule', version: String(a.rule_rev) },
    types: a.category ? [a.category] : [],
    product_uid: a.stage,
  };
  if (attacks.length) finding.attacks = attacks;
  const ev = base(OCSF_CLASS.detectionFinding, 1, a.ts_us, a.alert_id, {
    ...sev,
    activity_name: 'Create',
    status_id: 1,
    status: 'New',
    is_alert: true,
    message: a.signature,
    finding_info: finding,
    action_id: a.action === 'drop' || a.action === 'reject' ? 2 : 1,
    action: a.action === 'drop' || a.action === 'reject' ? 'Denied' : 'Allowed',
    disposition_id: a.action === 'drop' || a.action === 'reject' ? 2 : 1,
    resources: a.vm ? [{ name: a.vm, type: 'Virtual Machine' }] : [],
    evidences: [
      {
        src_endpoint: endpoint(a.src_ip, a.src_port),
        dst_endpoint: endpoint(a.dst_ip, a.dst_port, a.vm),
        ...(a.community_id || a.proto
          ? {
              connection_info: {
                ...(a.community_id ? { community_uid: a.community_id } : {}),
                ...(a.proto && PROTO_NUM[a.proto.toUpperCase()]
                  ? { protocol_num: PROTO_NUM[a.proto.toUpperCase()], protocol_name: a.proto.toLowerCase() }
                  : {}),
              },
            }
          : {}),
        ...(a.http_url || a.http_hostname
          ? {
              http_request: {
                http_method: a.http_method ?? undefined,
                user_agent: a.http_user_agent ?? undefined,
                url: { hostname: a.http_hostname ?? undefined, path: a.http_url ?? undefined },
              },
            }
          : {}),
        ...(a.dns_rrname ? { query: { hostname: a.dns_rrname, type: a.dns_rrtype ?? undefined } } : {}),
        ...(a.tls_sni
          ? {
              tls: {
                sni: a.tls_sni,
                version: a.tls_version ?? undefined,
                ...(a.ja3 ? { ja3_hash: { algorithm_id: 1, value: a.ja3 } } : {}),
              },
            }
          : {}),
      },
    ],
    vulnerabilities: (a.cves ?? []).map((uid) => ({ cve: { uid } })),
    unmapped: {
      cordon_stage: a.stage,
      cordon_sensor: a.sensor,
      metadata: a.metadata ? safeJson(a.metadata) : null,
      evidence,
      payload_printable: a.payload_printable ?? null,
      pcap_cnt: a.pcap_cnt ?? null,
    },
  });
  if (!(a.cves ?? []).length) delete ev.vulnerabilities;
  return ev;
}

/** A flow: Network Activity 4001, activity Close (the record is written when the flow ends). */
export function flowToOcsf(f: FlowRecord): OcsfEvent {
  return base(OCSF_CLASS.networkActivity, 2, f.last_seen_us, f.flow_id, {
    activity_name: 'Close',
    severity: 'Informational',
    start_time: Math.floor(f.first_seen_us / 1000),
    end_time: Math.floor(f.last_seen_us / 1000),
    src_endpoint: endpoint(f.src_ip, f.src_port),
    dst_endpoint: endpoint(f.dst_ip, f.dst_port, f.vm),
    connection_info: {
      protocol_num: f.proto,
      direction_id: 0,
      ...(f.community_id ? { community_uid: f.community_id } : {}),
      ...(f.proto === 6 ? { tcp_flags: f.tcp_flags_toserver | f.tcp_flags_toclient } : {}),
    },
    traffic: {
      packets_out: f.pkts_toserver,
      packets_in: f.pkts_toclient,
      bytes_out: f.bytes_toserver,
      bytes_in: f.bytes_toclient,
      packets: f.pkts_toserver + f.pkts_toclient,
      bytes: f.bytes_toserver + f.bytes_toclient,
    },
    device: { name: f.sensor, type_id: 0, type: 'Unknown' },
    unmapped: { end_reason: f.end_reason, vlan: f.vlan, vm: f.vm },
  });
}

const FILE_ACTIVITY: Record<FileEvent['op'], [number, string]> = {
  added: [1, 'Create'],
  changed: [3, 'Update'],
  removed: [4, 'Delete'],
  renamed: [5, 'Rename'],
  baseline: [99, 'Baseline'],
  scan: [99, 'Scan'],
};
const FILE_TYPE: Record<string, [number, string]> = {
  file: [1, 'Regular File'],
  dir: [2, 'Folder'],
  symlink: [7, 'Symbolic Link'],
};

function ocsfFile(path: string, attrs: FileAttrs | null): Record<string, unknown> {
  const [typeId, type] = FILE_TYPE[attrs?.type ?? 'file'] ?? [99, 'Other'];
  const file: Record<string, unknown> = { name: path.split('/').pop() || path, path, type_id: typeId, type };
  if (attrs) {
    file.size = attrs.size;
    file.modified_time = Math.floor(attrs.mtime_us / 1000);
    if (attrs.owner) file.owner = { name: attrs.owner, uid: String(attrs.uid) };
    if (attrs.sha256) file.hashes = [{ algorithm_id: 3, algorithm: 'SHA-256', value: attrs.sha256 }];
  }
  return file;
}

/** A file change: File System Activity 1001. */
export function fimToOcsf(e: FileEvent): OcsfEvent {
  const [activityId, activityName] = FILE_ACTIVITY[e.op];
  return base(OCSF_CLASS.fileActivity, activityId, e.ts_us, e.event_id, {
    activity_name: activityName,
    severity: 'Informational',
    actor: { app_name: 'cordon-agent', app_uid: e.agent },
    device: { name: e.vm, type_id: 6, type: 'Virtual' },
    file: ocsfFile(e.path, e.after ?? e.before),
    ...(e.op === 'changed' && e.before ? { file_diff: JSON.stringify({ before: e.before, after: e.after }) } : {}),
    ...(e.renamed_from ? { file_result: ocsfFile(e.path, e.after), file: ocsfFile(e.renamed_from, e.before) } : {}),
    unmapped: { scan: e.scan, error: e.error },
  });
}

/** A manager write: API Activity 6003. */
export function auditToOcsf(e: AuditEvent): OcsfEvent {
  const verb = e.action.split('.').pop() ?? '';
  const [activityId, activityName] = /create|add|apply/.test(verb)
    ? [1, 'Create']
    : /delete|lift|remove/.test(verb)
      ? [4, 'Delete']
      : /update|set/.test(verb)
        ? [3, 'Update']
        : [99, 'Other'];
  return base(OCSF_CLASS.apiActivity, activityId, e.ts_us, e.audit_id, {
    activity_name: activityName,
    severity: 'Informational',
    status_id: e.result === 'ok' ? 1 : 2,
    status: e.result === 'ok' ? 'Success' : 'Failure',
    actor: { user: { name: e.actor } },
    api: { operation: e.action, service: { name: 'cordon' } },
    resources: [{ name: e.object, type: e.action.split('.')[0] ?? 'object' }],
    src_endpoint: e.source_ip ? { ip: e.source_ip } : {},
    unmapped: { before: e.before, after: e.after, result: e.result },
  });
}

/** An OCSF event as the `cordon.siem.v1` record. */
export function siemRecord(ev: OcsfEvent): SiemEvent {
  return { event_id: ev.metadata.uid, ts_us: ev.time * 1000, ocsf_class_uid: ev.class_uid, json: JSON.stringify(ev) };
}

function safeJson(s: string | null | undefined): unknown {
  if (!s) return null;
  try {
    return JSON.parse(s);
  } catch {
    return s;
  }
}
