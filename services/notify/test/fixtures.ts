import type { Alert, AuditEvent, FileEvent, FlowRecord } from '@cordon/schemas';

export const T0 = 1_700_000_000_000_000;

export function alert(i: number, over: Partial<Alert> = {}): Alert {
  return {
    alert_id: `a${String(i).padStart(4, '0')}`,
    ts_us: T0 + i * 1000,
    stage: 'dpi',
    vm: 'web-1',
    sensor: 'replay:demo.pcap',
    rule_id: 'sid:1900001',
    rule_rev: 2,
    signature: 'DEMO path traversal against web-1',
    severity: 1,
    category: 'Web Application Attack',
    action: 'alert',
    src_ip: '203.0.113.66',
    src_port: 40000 + i,
    dst_ip: '10.0.0.10',
    dst_port: 80,
    proto: 'TCP',
    flow_id: '77',
    evidence: '{"app_proto":"http"}',
    community_id: '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
    metadata: '{"mitre_tactic_id":["TA0001"],"mitre_technique_id":["T1190"]}',
    mitre_tactic_ids: ['TA0001'],
    mitre_technique_ids: ['T1190'],
    cves: ['CVE-2021-41773'],
    references: ['cve,2021-41773'],
    app_proto: 'http',
    http_hostname: 'web-1',
    http_url: '/cgi-bin/../../etc/passwd',
    http_method: 'GET',
    http_status: 200,
    http_user_agent: 'curl/8',
    dns_rrname: null,
    dns_rrtype: null,
    tls_sni: null,
    tls_version: null,
    ja3: null,
    payload_printable: 'GET /cgi-bin/../../etc/passwd HTTP/1.1',
    pcap_cnt: 12,
    ...over,
  };
}

export const authAlert: Alert = alert(1, {
  stage: 'loginspect',
  rule_id: 'cordon:cordon-auth-sshd-failed',
  signature: 'SSH authentication failures from one address',
  severity: 2,
  category: 'attack.credential_access',
  src_ip: '198.51.100.23',
  src_port: null,
  dst_ip: null,
  dst_port: null,
  proto: null,
  community_id: null,
  vm: 'db-1',
  evidence: JSON.stringify({ line: 'Failed password for invalid user admin from 198.51.100.23 port 50022 ssh2', program: 'sshd' }),
  mitre_tactic_ids: [],
  mitre_technique_ids: [],
  cves: [],
});

export const flow: FlowRecord = {
  flow_id: 'f1', sensor: 'replay:demo.pcap', vm: 'web-1', vlan: 0, proto: 6, src_ip: '203.0.113.66', src_port: 40000, dst_ip: '10.0.0.10', dst_port: 80,
  first_seen_us: T0, last_seen_us: T0 + 5000, pkts_toserver: 5, pkts_toclient: 4, bytes_toserver: 600, bytes_toclient: 3000,
  tcp_flags_toserver: 0x1b, tcp_flags_toclient: 0x1b, end_reason: 'fin', community_id: '1:LQU9qZlK+B5F3KDmev6m5PMibrg=',
};

const attrs = { type: 'file', size: 5, mode: 0o100644, uid: 0, gid: 0, owner: 'root', group: 'root', inode: 12, mtime_us: T0, ctime_us: T0, sha256: 'ab'.repeat(32), link_target: null };
export const fileEvent: FileEvent = {
  event_id: 'e1', agent: 'agt-1', vm: 'web-1', ts_us: T0, path: '/etc/passwd', op: 'changed', scan: 'realtime', before: attrs, after: { ...attrs, size: 6 }, renamed_from: null, error: null,
};

export const auditEvent: AuditEvent = {
  audit_id: 'au1', ts_us: T0, actor: 'cli:alice', action: 'block.lift', object: 'watchdog:hv1|203.0.113.66', before: '{}', after: '{"lifted":true}', result: 'ok', source_ip: null, role: null, auth: 'cli', detail: null,
};
