/**
 * Frames built byte by byte for the demo captures (Ethernet/IPv4/TCP|UDP|ICMP with valid
 * checksums, DNS and TLS ClientHello payloads) and the pcap file around them. A seeded PRNG
 * makes every capture reproducible.
 */

export class Rng {
  constructor(private s: number) {}
  next(): number {
    // mulberry32
    let t = (this.s = (this.s + 0x6d2b79f5) | 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  }
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.next() * (hi - lo + 1));
  }
}

export function checksum(buf: Uint8Array, initial = 0): number {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let sum = initial;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

export const ip4 = (s: string) => Buffer.from(s.split('.').map(Number));
export const mac = (n: number) => Buffer.from([0x52, 0x54, 0x00, 0x00, (n >> 8) & 0xff, n & 0xff]);

export interface Host {
  ip: string;
  mac: Buffer;
}

export function ipv4(src: Host, dst: Host, proto: number, l4: Buffer, id: number): Buffer {
  const h = Buffer.alloc(20);
  h[0] = 0x45;
  h.writeUInt16BE(20 + l4.length, 2);
  h.writeUInt16BE(id & 0xffff, 4);
  h.writeUInt16BE(0x4000, 6); // DF
  h[8] = 64;
  h[9] = proto;
  ip4(src.ip).copy(h, 12);
  ip4(dst.ip).copy(h, 16);
  h.writeUInt16BE(checksum(h), 10);
  // L4 checksum over the pseudo header
  const pseudo = Buffer.alloc(12);
  ip4(src.ip).copy(pseudo, 0);
  ip4(dst.ip).copy(pseudo, 4);
  pseudo[9] = proto;
  pseudo.writeUInt16BE(l4.length, 10);
  if (proto === 6) l4.writeUInt16BE(checksum(Buffer.concat([pseudo, l4])), 16);
  if (proto === 17) l4.writeUInt16BE(checksum(Buffer.concat([pseudo, l4])) || 0xffff, 6);
  if (proto === 1) l4.writeUInt16BE(checksum(l4), 2);
  const eth = Buffer.alloc(14);
  dst.mac.copy(eth, 0);
  src.mac.copy(eth, 6);
  eth.writeUInt16BE(0x0800, 12);
  return Buffer.concat([eth, h, l4]);
}

export function tcp(
  sport: number,
  dport: number,
  seq: number,
  ack: number,
  flags: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const t = Buffer.alloc(20);
  t.writeUInt16BE(sport, 0);
  t.writeUInt16BE(dport, 2);
  t.writeUInt32BE(seq >>> 0, 4);
  t.writeUInt32BE(ack >>> 0, 8);
  t[12] = 5 << 4;
  t[13] = flags;
  t.writeUInt16BE(64240, 14);
  return Buffer.concat([t, payload]);
}

export function udp(sport: number, dport: number, payload: Buffer): Buffer {
  const u = Buffer.alloc(8);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([u, payload]);
}

export function dnsQuery(id: number, name: string, answer?: string): Buffer {
  const labels = Buffer.concat([
    ...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])),
    Buffer.from([0]),
  ]);
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(answer ? 0x8180 : 0x0100, 2);
  h.writeUInt16BE(1, 4);
  h.writeUInt16BE(answer ? 1 : 0, 6);
  const q = Buffer.concat([labels, Buffer.from([0, 1, 0, 1])]);
  if (!answer) return Buffer.concat([h, q]);
  const a = Buffer.concat([Buffer.from([0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0x0e, 0x10, 0, 4]), ip4(answer)]);
  return Buffer.concat([h, q, a]);
}

export function clientHello(sni: string): Buffer {
  const name = Buffer.from(sni);
  const sniExt = Buffer.alloc(9 + name.length);
  sniExt.writeUInt16BE(0, 0);
  sniExt.writeUInt16BE(5 + name.length, 2);
  sniExt.writeUInt16BE(3 + name.length, 4);
  sniExt[6] = 0;
  sniExt.writeUInt16BE(name.length, 7);
  name.copy(sniExt, 9);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]),
    Buffer.alloc(32, 7),
    Buffer.from([0]),
    Buffer.from([0, 4, 0x13, 0x01, 0x13, 0x02]),
    Buffer.from([1, 0]),
    Buffer.from([(sniExt.length >> 8) & 0xff, sniExt.length & 0xff]),
    sniExt,
  ]);
  const hs = Buffer.concat([Buffer.from([1, 0, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, (hs.length >> 8) & 0xff, hs.length & 0xff]), hs]);
}

/** A classic little-endian microsecond pcap file. */
export function pcapFile(frames: Array<[number, Buffer]>, linktype: number): Buffer {
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(0xa1b2c3d4, 0);
  gh.writeUInt16LE(2, 4);
  gh.writeUInt16LE(4, 6);
  gh.writeUInt32LE(262144, 16);
  gh.writeUInt32LE(linktype, 20);
  const parts: Buffer[] = [gh];
  for (const [ts, f] of frames) {
    const rh = Buffer.alloc(16);
    rh.writeUInt32LE(Math.floor(ts / 1e6), 0);
    rh.writeUInt32LE(ts % 1e6, 4);
    rh.writeUInt32LE(f.length, 8);
    rh.writeUInt32LE(f.length, 12);
    parts.push(rh, f);
  }
  return Buffer.concat(parts);
}
