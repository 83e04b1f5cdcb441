import { partitionForKey, readRange, type Bus } from '@cordon/bus';
import { codecFor, communityId, ipBytes, protoNumber, TOPICS, type Alert } from '@cordon/schemas';
import { decodeFrame, formatIp, partitionKey } from '@cordon/pcap';

/**
 * The packets of an alert's flow, for `cordon evidence --alert ID`: the alert is looked up on
 * the alerts topic, and the frames come from the packets topic — the bounded store of recent
 * packets (its retention, one day by default), read only on the partition the flow's packets
 * are keyed to — those whose Community ID is the alert's, from `beforeS` before the alert to
 * `afterS` after it.
 */
export interface EvidenceFrame {
  tsUs: number;
  linktype: number;
  frame: Buffer;
}

export async function findAlert(bus: Bus, alertId: string): Promise<Alert | null> {
  const codec = codecFor(TOPICS.alerts);
  let found: Alert | null = null;
  await readRange(bus, TOPICS.alerts, (r) => {
    if (found || !r.value) return;
    const a = codec.decode(r.value);
    if (a.alert_id === alertId) found = a;
  });
  return found;
}

export async function evidenceFrames(
  bus: Bus,
  a: Alert,
  window: { beforeS: number; afterS: number },
  onFrame: (f: EvidenceFrame) => void,
): Promise<number> {
  if (!a.community_id || !a.src_ip || !a.dst_ip) return 0;
  const proto = protoNumber(a.proto);
  const src = ipBytes(a.src_ip);
  const dst = ipBytes(a.dst_ip);
  if (proto === null || !src || !dst) return 0;
  const vlan = (JSON.parse(a.evidence || '{}') as { vlan?: number[] }).vlan?.[0] ?? 0;
  const info = (await bus.admin.listTopics()).find((t) => t.name === TOPICS.packets);
  if (!info) return 0;
  const partition = partitionForKey(
    partitionKey({ ipVersion: src.length === 4 ? 4 : 6, proto, vlan, src, dst }),
    info.partitions,
    () => 0,
  );
  const from = a.ts_us - window.beforeS * 1e6;
  const to = a.ts_us + window.afterS * 1e6;
  const codec = codecFor(TOPICS.packets);
  let n = 0;
  await readRange(
    bus,
    TOPICS.packets,
    (r) => {
      if (!r.value) return;
      const pb = codec.decode(r.value);
      for (const p of pb.packets) {
        if (p.ts_us < from || p.ts_us > to) continue;
        const d = decodeFrame(pb.linktype, p.frame);
        if (d.kind !== 'ip' || d.proto !== proto) continue;
        const icmp = d.proto === 1 || d.proto === 58;
        const cid = communityId({
          proto: d.proto,
          srcIp: formatIp(d.src),
          dstIp: formatIp(d.dst),
          srcPort: icmp ? Math.max(0, d.icmpType) : d.sport,
          dstPort: icmp ? Math.max(0, d.icmpCode) : d.dport,
        });
        if (cid !== a.community_id) continue;
        n++;
        onFrame({ tsUs: p.ts_us, linktype: pb.linktype, frame: p.frame });
      }
    },
    { partitions: [partition] },
  );
  return n;
}
