import type { CordonError } from '@cordon/runtime';
import { ERR_DECODE_LINKTYPE, ERR_DECODE_MALFORMED, ERR_DECODE_TRUNCATED } from './errors.js';

/** LINKTYPE_* values this decoder understands (https://www.tcpdump.org/linktypes.html). */
export const LINKTYPE = {
  NULL: 0,
  ETHERNET: 1,
  RAW_DLT12: 12,
  RAW_DLT14: 14,
  RAW: 101,
  LOOP: 108,
  LINUX_SLL: 113,
  IPV4: 228,
  IPV6: 229,
  LINUX_SLL2: 276,
} as const;

export const IPPROTO = { ICMP: 1, TCP: 6, UDP: 17, DCCP: 33, ICMPV6: 58, SCTP: 132, UDPLITE: 136 } as const;

export const TCP_FLAGS = {
  FIN: 0x01,
  SYN: 0x02,
  RST: 0x04,
  PSH: 0x08,
  ACK: 0x10,
  URG: 0x20,
  ECE: 0x40,
  CWR: 0x80,
} as const;

/** An IP packet's flow-relevant fields. */
export interface IpPacket {
  kind: 'ip';
  /** Outer VLAN id (802.1Q / 802.1ad), 0 when untagged. */
  vlan: number;
  /** Every VLAN id from outer to inner (QinQ gives two). */
  vlans: number[];
  ipVersion: 4 | 6;
  /** 4 or 16 bytes; views into the frame. */
  src: Buffer;
  dst: Buffer;
  /** Upper-layer protocol (after IPv6 extension headers). */
  proto: number;
  /**
   * Ports for TCP, UDP, SCTP, DCCP and UDP-Lite; 0 for everything else, including ICMP (so an
   * echo request and its reply are one flow) and non-first fragments (which carry no L4 header).
   */
  sport: number;
  dport: number;
  /** TCP flags byte (FIN … CWR), 0 for non-TCP. */
  tcpFlags: number;
  /** ICMP / ICMPv6 type and code, -1 otherwise. */
  icmpType: number;
  icmpCode: number;
  /** Set when the packet is an IP fragment (IPv4 MF/offset or an IPv6 fragment header). */
  fragment: { id: number; offset: number; more: boolean } | null;
  /** Byte offset of the IP header and of the L4 header in the frame (-1: no L4 header here). */
  l3Offset: number;
  l4Offset: number;
}

/** A well-formed frame that carries no IP (ARP, LLDP, STP, …): not a flow, not an error. */
export interface NonIpFrame {
  kind: 'non-ip';
  /** EtherType (or link-specific protocol number) that was not IP. */
  ethertype: number;
  vlan: number;
}

export interface DecodeFailure {
  kind: 'error';
  error: CordonError;
}

export type DecodeResult = IpPacket | NonIpFrame | DecodeFailure;

const ETH_IPV4 = 0x0800;
const ETH_IPV6 = 0x86dd;
const ETH_VLAN_TAGS = new Set([0x8100, 0x88a8, 0x9100, 0x9200]);
const ETH_PPPOE_SESSION = 0x8864;
const ETH_MPLS_UC = 0x8847;
const ETH_MPLS_MC = 0x8848;
/** More tags than this is a loop in hostile bytes, not a network. */
const MAX_VLAN_TAGS = 8;
const MAX_MPLS_LABELS = 16;
const MAX_IPV6_EXT_HEADERS = 16;

/** BSD AF_INET6 differs per OS: Linux 10, NetBSD/OpenBSD 24, FreeBSD 28, macOS 30. */
const AF_INET = 2;
const AF_INET6 = new Set([10, 24, 28, 30]);

const fail = (error: CordonError): DecodeFailure => ({ kind: 'error', error });
const short = (layer: string, need: number, have: number): DecodeFailure =>
  fail(ERR_DECODE_TRUNCATED(layer, need, have));
const malformed = (layer: string, detail: string): DecodeFailure => fail(ERR_DECODE_MALFORMED(layer, detail));

/**
 * Decode a captured frame down to its flow key. Never throws: hostile or truncated bytes
 * give `{ kind: 'error' }` with a CORDON_ERR_PCAP_DECODE_… error.
 */
export function decodeFrame(linktype: number, frame: Buffer): DecodeResult {
  try {
    return decodeLink(linktype, frame);
  } catch (err) {
    // Every read is bounds-checked above; this guard only keeps a missed check from crashing a stage.
    return malformed('frame', `decoder fault: ${(err as Error).message}`);
  }
}

function decodeLink(linktype: number, f: Buffer): DecodeResult {
  switch (linktype) {
    case LINKTYPE.ETHERNET:
      if (f.length < 14) return short('Ethernet', 14, f.length);
      return decodeEthertype(f, f.readUInt16BE(12), 14, []);
    case LINKTYPE.LINUX_SLL:
      if (f.length < 16) return short('Linux cooked (SLL)', 16, f.length);
      return decodeEthertype(f, f.readUInt16BE(14), 16, []);
    case LINKTYPE.LINUX_SLL2:
      if (f.length < 20) return short('Linux cooked v2 (SLL2)', 20, f.length);
      return decodeEthertype(f, f.readUInt16BE(0), 20, []);
    case LINKTYPE.RAW:
    case LINKTYPE.RAW_DLT12:
    case LINKTYPE.RAW_DLT14:
      return decodeRawIp(f, 0, []);
    case LINKTYPE.IPV4:
      return decodeIpv4(f, 0, []);
    case LINKTYPE.IPV6:
      return decodeIpv6(f, 0, []);
    case LINKTYPE.NULL:
    case LINKTYPE.LOOP: {
      if (f.length < 4) return short('BSD loopback', 4, f.length);
      // LOOP is network order; NULL is the capturing host's order, which we infer: a family
      // number is small, so the byte order that gives a small value is the right one.
      let af = linktype === LINKTYPE.LOOP ? f.readUInt32BE(0) : f.readUInt32LE(0);
      if (af > 0xffff) af = f.readUInt32BE(0);
      if (af === AF_INET) return decodeIpv4(f, 4, []);
      if (AF_INET6.has(af)) return decodeIpv6(f, 4, []);
      return { kind: 'non-ip', ethertype: af, vlan: 0 };
    }
    default:
      return fail(ERR_DECODE_LINKTYPE(linktype));
  }
}

function decodeEthertype(f: Buffer, type: number, off: number, vlans: number[]): DecodeResult {
  while (ETH_VLAN_TAGS.has(type)) {
    if (vlans.length >= MAX_VLAN_TAGS) return malformed('VLAN', `more than ${MAX_VLAN_TAGS} stacked tags`);
    if (f.length < off + 4) return short('VLAN tag', off + 4, f.length);
    vlans.push(f.readUInt16BE(off) & 0x0fff);
    type = f.readUInt16BE(off + 2);
    off += 4;
  }
  switch (type) {
    case ETH_IPV4:
      return decodeIpv4(f, off, vlans);
    case ETH_IPV6:
      return decodeIpv6(f, off, vlans);
    case ETH_PPPOE_SESSION: {
      // PPPoE header (6 bytes) then the PPP protocol field.
      if (f.length < off + 8) return short('PPPoE', off + 8, f.length);
      const ppp = f.readUInt16BE(off + 6);
      if (ppp === 0x0021) return decodeIpv4(f, off + 8, vlans);
      if (ppp === 0x0057) return decodeIpv6(f, off + 8, vlans);
      return { kind: 'non-ip', ethertype: type, vlan: vlans[0] ?? 0 };
    }
    case ETH_MPLS_UC:
    case ETH_MPLS_MC: {
      for (let i = 0; ; i++) {
        if (i >= MAX_MPLS_LABELS) return malformed('MPLS', `more than ${MAX_MPLS_LABELS} labels`);
        if (f.length < off + 4) return short('MPLS label', off + 4, f.length);
        const bottom = (f[off + 2]! & 0x01) !== 0;
        off += 4;
        if (bottom) break;
      }
      // No protocol field after the bottom label: the IP version nibble tells.
      const nibble = f.length > off ? f[off]! >> 4 : -1;
      if (nibble === 4 || nibble === 6) return decodeRawIp(f, off, vlans);
      return { kind: 'non-ip', ethertype: type, vlan: vlans[0] ?? 0 };
    }
    default:
      return { kind: 'non-ip', ethertype: type, vlan: vlans[0] ?? 0 };
  }
}

function decodeRawIp(f: Buffer, off: number, vlans: number[]): DecodeResult {
  if (f.length < off + 1) return short('IP', off + 1, f.length);
  const version = f[off]! >> 4;
  if (version === 4) return decodeIpv4(f, off, vlans);
  if (version === 6) return decodeIpv6(f, off, vlans);
  return malformed('IP', `version nibble is ${version}, not 4 or 6`);
}

function decodeIpv4(f: Buffer, off: number, vlans: number[]): DecodeResult {
  if (f.length < off + 20) return short('IPv4', off + 20, f.length);
  const vihl = f[off]!;
  if (vihl >> 4 !== 4) return malformed('IPv4', `version nibble is ${vihl >> 4}`);
  const ihl = (vihl & 0x0f) * 4;
  if (ihl < 20) return malformed('IPv4', `header length ${ihl} is under 20`);
  if (f.length < off + ihl) return short('IPv4 options', off + ihl, f.length);
  const fragField = f.readUInt16BE(off + 6);
  const more = (fragField & 0x2000) !== 0;
  const fragOffset = (fragField & 0x1fff) * 8;
  const proto = f[off + 9]!;
  const fragment = more || fragOffset !== 0 ? { id: f.readUInt16BE(off + 4), offset: fragOffset, more } : null;
  return decodeL4(
    f,
    off + ihl,
    proto,
    vlans,
    4,
    off,
    f.subarray(off + 12, off + 16),
    f.subarray(off + 16, off + 20),
    fragment,
  );
}

function decodeIpv6(f: Buffer, off: number, vlans: number[]): DecodeResult {
  if (f.length < off + 40) return short('IPv6', off + 40, f.length);
  if (f[off]! >> 4 !== 6) return malformed('IPv6', `version nibble is ${f[off]! >> 4}`);
  let next = f[off + 6]!;
  let p = off + 40;
  let fragment: IpPacket['fragment'] = null;
  for (let n = 0; ; n++) {
    if (n > MAX_IPV6_EXT_HEADERS) return malformed('IPv6', `more than ${MAX_IPV6_EXT_HEADERS} extension headers`);
    if (next === 0 || next === 43 || next === 60) {
      // Hop-by-hop, routing, destination options: length in 8-byte units, excluding the first 8.
      if (f.length < p + 2) return short('IPv6 extension header', p + 2, f.length);
      const len = (f[p + 1]! + 1) * 8;
      if (f.length < p + len) return short('IPv6 extension header', p + len, f.length);
      next = f[p]!;
      p += len;
    } else if (next === 51) {
      // AH: length in 4-byte units, minus 2.
      if (f.length < p + 2) return short('IPv6 AH', p + 2, f.length);
      const len = (f[p + 1]! + 2) * 4;
      if (f.length < p + len) return short('IPv6 AH', p + len, f.length);
      next = f[p]!;
      p += len;
    } else if (next === 44) {
      if (f.length < p + 8) return short('IPv6 fragment header', p + 8, f.length);
      const field = f.readUInt16BE(p + 2);
      fragment = { id: f.readUInt32BE(p + 4), offset: field & 0xfff8, more: (field & 1) !== 0 };
      next = f[p]!;
      p += 8;
      // A non-first fragment's payload continues the upper layer mid-stream: stop here.
      if (fragment.offset !== 0) break;
    } else {
      break;
    }
  }
  return decodeL4(f, p, next, vlans, 6, off, f.subarray(off + 8, off + 24), f.subarray(off + 24, off + 40), fragment);
}

function decodeL4(
  f: Buffer,
  off: number,
  proto: number,
  vlans: number[],
  ipVersion: 4 | 6,
  l3Offset: number,
  src: Buffer,
  dst: Buffer,
  fragment: IpPacket['fragment'],
): DecodeResult {
  const pkt: IpPacket = {
    kind: 'ip',
    vlan: vlans[0] ?? 0,
    vlans,
    ipVersion,
    src,
    dst,
    proto,
    sport: 0,
    dport: 0,
    tcpFlags: 0,
    icmpType: -1,
    icmpCode: -1,
    fragment,
    l3Offset,
    l4Offset: -1,
  };
  // Non-first fragments carry no L4 header: ports stay 0 (see services/flows/README.md).
  if (fragment && fragment.offset !== 0) return pkt;
  pkt.l4Offset = off;
  switch (proto) {
    case IPPROTO.TCP:
      if (f.length < off + 14) return short('TCP', off + 14, f.length);
      pkt.sport = f.readUInt16BE(off);
      pkt.dport = f.readUInt16BE(off + 2);
      pkt.tcpFlags = f[off + 13]!;
      return pkt;
    case IPPROTO.UDP:
    case IPPROTO.SCTP:
    case IPPROTO.DCCP:
    case IPPROTO.UDPLITE:
      if (f.length < off + 4) return short(proto === IPPROTO.UDP ? 'UDP' : `IP protocol ${proto}`, off + 4, f.length);
      pkt.sport = f.readUInt16BE(off);
      pkt.dport = f.readUInt16BE(off + 2);
      return pkt;
    case IPPROTO.ICMP:
    case IPPROTO.ICMPV6:
      if (f.length < off + 2) return short(proto === IPPROTO.ICMP ? 'ICMP' : 'ICMPv6', off + 2, f.length);
      pkt.icmpType = f[off]!;
      pkt.icmpCode = f[off + 1]!;
      return pkt;
    default:
      return pkt;
  }
}

/** Text form of a 4- or 16-byte address (IPv6 per RFC 5952: lower case, longest zero run as ::). */
export function formatIp(addr: Buffer): string {
  if (addr.length === 4) return `${addr[0]}.${addr[1]}.${addr[2]}.${addr[3]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(addr.readUInt16BE(i));
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  return `${hex.slice(0, bestStart).join(':')}::${hex.slice(bestStart + bestLen).join(':')}`;
}
