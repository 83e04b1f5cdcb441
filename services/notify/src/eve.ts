import type { Alert, FlowRecord } from '@cordon/schemas';

/**
 * Cordon's alerts and flows as Suricata's EVE JSON (`eve.json`), so what reads Suricata's output
 * (EveBox, Filebeat's Suricata module, Logstash pipelines, jq scripts) reads Cordon's: the same
 * event types, field names and timestamp format. Alerts from other stages than dpi carry
 * signature_id 0 and their rule in alert.metadata.cordon_rule.
 */

/** Suricata's timestamp: `2024-03-01T10:00:00.123456+0000`. */
export function eveTimestamp(us: number): string {
  const d = new Date(Math.floor(us / 1000));
  return `${d.toISOString().slice(0, 19)}.${String(Math.floor(us % 1_000_000)).padStart(6, '0')}+0000`;
}

/** EVE's flow_id is an integer: the engine's as it was, Cordon's hex flow id as its first 52 bits. */
function eveFlowId(id: string | null): number | undefined {
  if (!id) return undefined;
  if (/^\d+$/.test(id)) return Number(id);
  if (/^[0-9a-f]{13,}$/i.test(id)) return parseInt(id.slice(0, 13), 16);
  return undefined;
}

const PROTO_NAMES: Record<number, string> = { 1: 'ICMP', 6: 'TCP', 17: 'UDP', 58: 'IPv6-ICMP', 132: 'SCTP' };

const defined = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== null && v !== undefined && v !== ''));

export function alertToEve(a: Alert): Record<string, unknown> {
  const sid = /^sid:(\d+)$/.exec(a.rule_id)?.[1];
  let metadata: Record<string, string[]> = {};
  try {
    metadata = a.metadata ? (JSON.parse(a.metadata) as Record<string, string[]>) : {};
  } catch {
    metadata = {};
  }
  if (!sid) metadata = { ...metadata, cordon_rule: [a.rule_id], cordon_stage: [a.stage] };
  const http = defined({
    hostname: a.http_hostname,
    url: a.http_url,
    http_user_agent: a.http_user_agent,
    http_method: a.http_method,
    status: a.http_status,
  });
  const tls = defined({ sni: a.tls_sni, version: a.tls_version, ...(a.ja3 ? { ja3: { hash: a.ja3 } } : {}) });
  return defined({
    timestamp: eveTimestamp(a.ts_us),
    flow_id: eveFlowId(a.flow_id),
    pcap_cnt: a.pcap_cnt,
    event_type: 'alert',
    src_ip: a.src_ip,
    src_port: a.src_port,
    dest_ip: a.dst_ip,
    dest_port: a.dst_port,
    proto: a.proto,
    community_id: a.community_id,
    app_proto: a.app_proto,
    host: a.sensor,
    alert: defined({
      action: a.action === 'drop' || a.action === 'reject' ? 'blocked' : 'allowed',
      gid: 1,
      signature_id: sid ? Number(sid) : 0,
      rev: a.rule_rev,
      signature: a.signature,
      category: a.category ?? '',
      severity: a.severity,
      ...(Object.keys(metadata).length ? { metadata } : {}),
    }),
    ...(Object.keys(http).length ? { http } : {}),
    ...(a.dns_rrname ? { dns: { query: [defined({ rrname: a.dns_rrname, rrtype: a.dns_rrtype })] } } : {}),
    ...(Object.keys(tls).length ? { tls } : {}),
    payload_printable: a.payload_printable,
    cordon: defined({
      alert_id: a.alert_id,
      vm: a.vm,
      stage: a.stage,
      mitre_tactic_ids: a.mitre_tactic_ids?.length ? a.mitre_tactic_ids : undefined,
      mitre_technique_ids: a.mitre_technique_ids?.length ? a.mitre_technique_ids : undefined,
      cves: a.cves?.length ? a.cves : undefined,
    }),
  });
}

const REASON: Record<FlowRecord['end_reason'], string> = {
  fin: 'timeout',
  rst: 'timeout',
  timeout: 'timeout',
  end: 'shutdown',
};

export function flowToEve(f: FlowRecord): Record<string, unknown> {
  const tcp = f.proto === 6;
  const flags = (n: number) => n.toString(16).padStart(2, '0');
  const all = f.tcp_flags_toserver | f.tcp_flags_toclient;
  return defined({
    timestamp: eveTimestamp(f.last_seen_us),
    flow_id: eveFlowId(f.flow_id),
    event_type: 'flow',
    src_ip: f.src_ip,
    src_port: f.src_port,
    dest_ip: f.dst_ip,
    dest_port: f.dst_port,
    proto: PROTO_NAMES[f.proto] ?? String(f.proto),
    community_id: f.community_id,
    host: f.sensor,
    vlan: f.vlan ? [f.vlan] : undefined,
    flow: {
      pkts_toserver: f.pkts_toserver,
      pkts_toclient: f.pkts_toclient,
      bytes_toserver: f.bytes_toserver,
      bytes_toclient: f.bytes_toclient,
      start: eveTimestamp(f.first_seen_us),
      end: eveTimestamp(f.last_seen_us),
      age: Math.round((f.last_seen_us - f.first_seen_us) / 1e6),
      state: tcp ? (f.end_reason === 'fin' || f.end_reason === 'rst' ? 'closed' : 'established') : 'new',
      reason: REASON[f.end_reason],
      alerted: false,
    },
    ...(tcp
      ? {
          tcp: {
            tcp_flags: flags(all),
            tcp_flags_ts: flags(f.tcp_flags_toserver),
            tcp_flags_tc: flags(f.tcp_flags_toclient),
            ...(all & 0x02 ? { syn: true } : {}),
            ...(all & 0x01 ? { fin: true } : {}),
            ...(all & 0x04 ? { rst: true } : {}),
            ...(all & 0x08 ? { psh: true } : {}),
            ...(all & 0x10 ? { ack: true } : {}),
          },
        }
      : {}),
    cordon: defined({ flow_id: f.flow_id, vm: f.vm, end_reason: f.end_reason }),
  });
}
