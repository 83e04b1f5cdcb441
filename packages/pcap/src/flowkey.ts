import { createHash } from 'node:crypto';
import type { IpPacket } from './decode.js';

/**
 * The canonical flow key: the same bytes for both directions of a flow.
 *
 * Layout: ip version (1), proto (1), outer VLAN (2), endpoint A address (4|16), A port (2),
 * endpoint B address, B port (2), with A ≤ B comparing address bytes then port. Putting the
 * smaller endpoint first is what makes the key symmetric.
 */
export interface FlowKey {
  key: Buffer;
  /** True when the packet's source is endpoint B (the packet goes B → A). */
  swapped: boolean;
}

export function flowKey(
  p: Pick<IpPacket, 'ipVersion' | 'proto' | 'vlan' | 'src' | 'dst' | 'sport' | 'dport'>,
): FlowKey {
  const alen = p.src.length;
  const key = Buffer.allocUnsafe(4 + 2 * (alen + 2));
  let cmp = Buffer.compare(p.src, p.dst);
  if (cmp === 0) cmp = p.sport - p.dport;
  const swapped = cmp > 0;
  const [a, ap, b, bp] = swapped ? [p.dst, p.dport, p.src, p.sport] : [p.src, p.sport, p.dst, p.dport];
  key[0] = p.ipVersion;
  key[1] = p.proto;
  key.writeUInt16BE(p.vlan & 0xffff, 2);
  a.copy(key, 4);
  key.writeUInt16BE(ap, 4 + alen);
  b.copy(key, 6 + alen);
  key.writeUInt16BE(bp, 6 + 2 * alen);
  return { key, swapped };
}

/**
 * The Kafka record key for a packet: 16 bytes of SHA-256 over the canonical flow key, so both
 * directions land on the same partition. A hash (not the key itself) keeps keys a fixed size
 * and spreads them evenly under murmur2.
 */
export function symmetricFlowHash(p: Parameters<typeof flowKey>[0]): Buffer {
  return hashFlowKey(flowKey(p).key);
}

export function hashFlowKey(key: Buffer): Buffer {
  return createHash('sha256').update(key).digest().subarray(0, 16);
}
