import { createHash } from 'node:crypto';
import { isIPv4, isIPv6 } from 'node:net';

/**
 * Community ID v1 (https://github.com/corelight/community-id-spec): the flow hash Suricata,
 * Zeek and SIEMs use to pivot between tools. SHA-1 over seed (2 bytes), the two addresses,
 * the IP protocol, a zero pad byte and, for TCP, UDP, SCTP, ICMP and ICMPv6, the two ports
 * (ICMP: type and code, or the type of the counterpart message) — endpoints in a canonical
 * order so both directions hash alike — base64, with the version prefix `1:`.
 *
 * Cordon computes it in TypeScript for flows (services/flows) and for alerts whose engine line
 * carries none, so the engine's own value can be checked against this one.
 */

const TCP = 6;
const UDP = 17;
const SCTP = 132;
const ICMP = 1;
const ICMP6 = 58;

/** ICMP message types that have a reply/request counterpart (pycommunityid's icmp.py). */
const ICMP4_COUNTERPART = new Map<number, number>([
  [8, 0],
  [0, 8], // echo
  [13, 14],
  [14, 13], // timestamp
  [15, 16],
  [16, 15], // information
  [10, 9],
  [9, 10], // router solicitation / advertisement
  [17, 18],
  [18, 17], // address mask
]);
const ICMP6_COUNTERPART = new Map<number, number>([
  [128, 129],
  [129, 128], // echo
  [133, 134],
  [134, 133], // router solicitation / advertisement
  [135, 136],
  [136, 135], // neighbor solicitation / advertisement
  [130, 131],
  [131, 130], // multicast listener query / report
  [139, 140],
  [140, 139], // node information query / reply
  [144, 145],
  [145, 144], // home agent address discovery
]);

export interface CommunityIdInput {
  proto: number;
  srcIp: string;
  dstIp: string;
  /** Source port; for ICMP and ICMPv6 the message type. */
  srcPort?: number | null;
  /** Destination port; for ICMP and ICMPv6 the message code. */
  dstPort?: number | null;
  /** The spec's seed (default 0, what Suricata and Zeek use unless configured). */
  seed?: number;
}

/** The address as network-order bytes, or null when it is not an IPv4/IPv6 literal. */
export function ipBytes(ip: string): Buffer | null {
  if (isIPv4(ip)) return Buffer.from(ip.split('.').map(Number));
  if (!isIPv6(ip)) return null;
  let text = ip.split('%')[0]!;
  const out = Buffer.alloc(16);
  // an embedded IPv4 tail (::ffff:1.2.3.4) is two groups
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4) {
    const b = v4[1]!.split('.').map(Number);
    text =
      text.slice(0, -v4[1]!.length) + `${((b[0]! << 8) | b[1]!).toString(16)}:${((b[2]! << 8) | b[3]!).toString(16)}`;
  }
  const [head, tail] = text.includes('::') ? text.split('::') : [text, undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = tail === undefined ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), i * 2));
  return out;
}

/** Community ID v1 of a flow, or null when an address is not an IP literal. */
export function communityId(f: CommunityIdInput): string | null {
  const src = ipBytes(f.srcIp);
  const dst = ipBytes(f.dstIp);
  if (!src || !dst || src.length !== dst.length) return null;
  const proto = f.proto & 0xff;
  let sport = f.srcPort ?? 0;
  let dport = f.dstPort ?? 0;
  const hasPorts = proto === TCP || proto === UDP || proto === SCTP || proto === ICMP || proto === ICMP6;
  let oneWay = false;
  if (proto === ICMP || proto === ICMP6) {
    const counterpart = (proto === ICMP ? ICMP4_COUNTERPART : ICMP6_COUNTERPART).get(sport);
    if (counterpart === undefined)
      oneWay = true; // ports stay type and code
    else dport = counterpart;
  }
  let a = src;
  let b = dst;
  const cmp = Buffer.compare(src, dst);
  if (!oneWay && (cmp > 0 || (cmp === 0 && sport > dport))) {
    [a, b] = [dst, src];
    [sport, dport] = [dport, sport];
  }
  const head = Buffer.alloc(2);
  head.writeUInt16BE((f.seed ?? 0) & 0xffff);
  const h = createHash('sha1')
    .update(head)
    .update(a)
    .update(b)
    .update(Buffer.from([proto, 0]));
  if (hasPorts) {
    const ports = Buffer.alloc(4);
    ports.writeUInt16BE(sport & 0xffff, 0);
    ports.writeUInt16BE(dport & 0xffff, 2);
    h.update(ports);
  }
  return `1:${h.digest('base64')}`;
}

/** IP protocol numbers by the names EVE prints in `proto`. */
const PROTO_NUMBERS: Record<string, number> = { ICMP: 1, TCP: 6, UDP: 17, 'IPV6-ICMP': 58, ICMPV6: 58, SCTP: 132 };

/** The IP protocol number of an EVE `proto` value ("TCP", "IPv6-ICMP", "47"), or null. */
export function protoNumber(proto: string | number | null | undefined): number | null {
  if (typeof proto === 'number') return proto;
  if (!proto) return null;
  const n = PROTO_NUMBERS[proto.toUpperCase()];
  if (n !== undefined) return n;
  return /^\d+$/.test(proto) ? Number(proto) : null;
}
