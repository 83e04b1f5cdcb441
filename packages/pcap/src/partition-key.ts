import type { IpPacket } from './decode.js';
import { hashFlowKey } from './flowkey.js';

/**
 * The bus key of a packet: a symmetric hash over (IP version, protocol, outer VLAN, the two
 * addresses) — deliberately without ports. IP fragments after the first carry no ports, and
 * a fragment, its first fragment and the rest of its flow must land on the same partition so
 * the stage that owns the partition (flows, dpi) holds the flow's whole state. Spread comes
 * from the many address pairs of a data center; the price is that all flows between one pair
 * of hosts share a partition.
 */
export function partitionKey(p: Pick<IpPacket, 'ipVersion' | 'proto' | 'vlan' | 'src' | 'dst'>): Buffer {
  const alen = p.src.length;
  const key = Buffer.allocUnsafe(4 + 2 * alen);
  const swapped = Buffer.compare(p.src, p.dst) > 0;
  key[0] = p.ipVersion;
  key[1] = p.proto;
  key.writeUInt16BE(p.vlan & 0xffff, 2);
  (swapped ? p.dst : p.src).copy(key, 4);
  (swapped ? p.src : p.dst).copy(key, 4 + alen);
  return hashFlowKey(key);
}
