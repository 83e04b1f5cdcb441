import { z } from 'zod';
import { defineError, type Context } from '@cordon/runtime';
import {
  alertId,
  boundedText,
  communityId,
  protoNumber,
  ruleMetadataFields,
  TOPICS,
  type Alert,
  type AlertAction,
  type PacketBatch,
} from '@cordon/schemas';
import { Rules, type RuleSource } from '@cordon/native';

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
    /**
     * Consume loops in the group, each a member owning some partitions (one engine per
     * partition). Their batches run on libuv's pool threads, so partitions of different loops
     * are inspected at once: one per core (libuv runs 4 pool threads unless UV_THREADPOOL_SIZE says).
     */
    workers: z.number().int().min(1).max(64).default(1),
    /** Each engine's flow table cap; beyond it the least recently seen flows are evicted (counted). */
    maxFlows: z.number().int().min(1).max(10_000_000).default(200_000),
    /**
     * Suricata's `encryption-handling` (TLS, and SSH's after both NEWKEYS): `default` stops
     * content inspection of a flow's encrypted data (TLS/SSH keywords go on); `full` keeps
     * content rules on it.
     */
    encryptionHandling: z.enum(['default', 'full']).default('default'),
  })
  .strict();

export type DpiConfig = z.infer<typeof dpiConfigSchema>;
export type DpiConfigInput = z.input<typeof dpiConfigSchema>;

export const ERR_DPI_EVE = defineError(
  'CORDON_ERR_DPI_EVE',
  (detail: string) => `the engine produced an alert line that is not EVE JSON: ${detail}`,
);

interface Eve {
  timestamp?: string;
  flow_id?: number | string;
  pcap_cnt?: number;
  vlan?: number[];
  src_ip?: string;
  src_port?: number;
  dest_ip?: string;
  dest_port?: number;
  proto?: string;
  icmp_type?: number;
  icmp_code?: number;
  community_id?: string;
  app_proto?: string;
  payload_printable?: string;
  alert?: {
    signature_id?: number;
    rev?: number;
    gid?: number;
    action?: string;
    signature?: string;
    category?: string;
    severity?: number;
    metadata?: Record<string, unknown>;
    references?: string[];
  };
  http?: { hostname?: string; url?: string; http_method?: string; status?: number | string; http_user_agent?: string };
  dns?: { rrname?: string; rrtype?: string; query?: Array<{ rrname?: string; rrtype?: string }> };
  tls?: { sni?: string; version?: string; ja3?: { hash?: string } };
  [k: string]: unknown;
}

const str = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);

/**
 * Alerts with the same rule, packet time and flow within one PacketBatch (two matches on
 * packets with one timestamp), numbered in the order the engine printed them: the one part of
 * an alert's id that is not what was detected. Keyed by the batch object, which the stage maps
 * line by line.
 */
const occurrences = new WeakMap<PacketBatch, Map<string, number>>();

const ACTIONS: Record<string, AlertAction> = {
  allowed: 'alert',
  alert: 'alert',
  blocked: 'drop',
  drop: 'drop',
  reject: 'reject',
  pass: 'pass',
};

/** An EVE alert line (and the batch it came from) as a Cordon Alert. */
export function eveToAlert(line: string, pb: PacketBatch, _position: number): Alert {
  let eve: Eve;
  try {
    eve = JSON.parse(line) as Eve;
  } catch (err) {
    throw ERR_DPI_EVE.withCause(err, line.slice(0, 200));
  }
  const a = eve.alert ?? {};
  const sid = a.signature_id ?? 0;
  const ts = eve.timestamp ? Date.parse(eve.timestamp) : NaN;
  const tsUs = Number.isFinite(ts)
    ? ts * 1000 + (Number(/\.\d{3}(\d{3})/.exec(eve.timestamp ?? '')?.[1] ?? 0) || 0)
    : (pb.packets[0]?.ts_us ?? 0);
  const { alert: _a, timestamp: _t, ...rest } = eve;
  const proto = protoNumber(eve.proto);
  const icmp = proto === 1 || proto === 58;
  const community =
    str(eve.community_id) ??
    (proto !== null && eve.src_ip && eve.dest_ip
      ? communityId({
          proto,
          srcIp: eve.src_ip,
          dstIp: eve.dest_ip,
          srcPort: icmp ? (eve.icmp_type ?? 0) : (eve.src_port ?? 0),
          dstPort: icmp ? (eve.icmp_code ?? 0) : (eve.dest_port ?? 0),
        })
      : null);
  // what was detected, never who saw it (sensor) or how it was batched: a replay of the same
  // capture, under any sensor name, gives the same ids and the store counts each alert once
  const what = `${a.gid ?? 1}:${sid}|${tsUs}|${eve.vlan?.join('.') ?? ''}|${eve.proto ?? ''}|${eve.src_ip ?? ''}:${eve.src_port ?? ''}>${eve.dest_ip ?? ''}:${eve.dest_port ?? ''}`;
  let seen = occurrences.get(pb);
  if (!seen) occurrences.set(pb, (seen = new Map()));
  const n = seen.get(what) ?? 0;
  seen.set(what, n + 1);
  const dnsQuery = eve.dns?.query?.[0];
  const status = eve.http?.status === undefined ? null : Number(eve.http.status);
  return {
    alert_id: alertId('dpi', what, n),
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
    // the engine's: like Suricata's, only unique within one engine's life (join by community_id)
    flow_id: eve.flow_id === undefined ? null : String(eve.flow_id),
    evidence: JSON.stringify(rest),
    community_id: community,
    ...ruleMetadataFields(a.metadata, Array.isArray(a.references) ? a.references.map(String) : []),
    app_proto: str(eve.app_proto),
    http_hostname: str(eve.http?.hostname),
    http_url: str(eve.http?.url),
    http_method: str(eve.http?.http_method),
    http_status: status !== null && Number.isInteger(status) ? status : null,
    http_user_agent: str(eve.http?.http_user_agent),
    dns_rrname: str(eve.dns?.rrname) ?? str(dnsQuery?.rrname),
    dns_rrtype: str(eve.dns?.rrtype) ?? str(dnsQuery?.rrtype),
    tls_sni: str(eve.tls?.sni),
    tls_version: str(eve.tls?.version),
    ja3: str(eve.tls?.ja3?.hash),
    payload_printable: boundedText(str(eve.payload_printable)),
    pcap_cnt: typeof eve.pcap_cnt === 'number' ? eve.pcap_cnt : null,
  };
}
