import { writeFileSync } from 'node:fs';

/**
 * A small, reproducible capture for the `cordon up` demo and the benchmarks: web browsing,
 * DNS lookups, TLS handshakes, a ping and a port scan between a handful of hosts. Frames are
 * built byte by byte (Ethernet/IPv4/TCP|UDP|ICMP with valid checksums) from a seeded PRNG, so
 * the same seed always gives the same file.
 */
export interface DemoCaptureOptions {
  seed?: number;
  /** How many web sessions (each with DNS + TCP + HTTP). */
  sessions?: number;
  startUs?: number;
}

class Rng {
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

function checksum(buf: Uint8Array, initial = 0): number {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  let sum = initial;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

const ip4 = (s: string) => Buffer.from(s.split('.').map(Number));
const mac = (n: number) => Buffer.from([0x52, 0x54, 0x00, 0x00, (n >> 8) & 0xff, n & 0xff]);

interface Host {
  ip: string;
  mac: Buffer;
}

function ipv4(src: Host, dst: Host, proto: number, l4: Buffer, id: number): Buffer {
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

function tcp(sport: number, dport: number, seq: number, ack: number, flags: number, payload: Buffer = Buffer.alloc(0)): Buffer {
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

function udp(sport: number, dport: number, payload: Buffer): Buffer {
  const u = Buffer.alloc(8);
  u.writeUInt16BE(sport, 0);
  u.writeUInt16BE(dport, 2);
  u.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([u, payload]);
}

function dnsQuery(id: number, name: string, answer?: string): Buffer {
  const labels = Buffer.concat([...name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)])), Buffer.from([0])]);
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

function clientHello(sni: string): Buffer {
  const name = Buffer.from(sni);
  const sniExt = Buffer.alloc(9 + name.length);
  sniExt.writeUInt16BE(0, 0);
  sniExt.writeUInt16BE(5 + name.length, 2);
  sniExt.writeUInt16BE(3 + name.length, 4);
  sniExt[6] = 0;
  sniExt.writeUInt16BE(name.length, 7);
  name.copy(sniExt, 9);
  const body = Buffer.concat([
    Buffer.from([0x03, 0x03]), Buffer.alloc(32, 7), Buffer.from([0]),
    Buffer.from([0, 4, 0x13, 0x01, 0x13, 0x02]), Buffer.from([1, 0]),
    Buffer.from([(sniExt.length >> 8) & 0xff, sniExt.length & 0xff]), sniExt,
  ]);
  const hs = Buffer.concat([Buffer.from([1, 0, (body.length >> 8) & 0xff, body.length & 0xff]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, (hs.length >> 8) & 0xff, hs.length & 0xff]), hs]);
}

export function buildDemoCapture(opts: DemoCaptureOptions = {}): Buffer {
  const rng = new Rng(opts.seed ?? 42);
  const sessions = opts.sessions ?? 20;
  let t = opts.startUs ?? Date.UTC(2026, 10, 27, 9, 0, 0) * 1000;
  let ipid = 1;
  const frames: Array<[number, Buffer]> = [];
  const emit = (f: Buffer, gapUs = rng.int(50, 3000)) => {
    t += gapUs;
    frames.push([t, f]);
  };
  const web: Host = { ip: '10.0.0.10', mac: mac(10) };
  const dns: Host = { ip: '10.0.0.53', mac: mac(53) };
  const clients: Host[] = Array.from({ length: 4 }, (_, i) => ({ ip: `10.0.1.${20 + i}`, mac: mac(20 + i) }));
  const scanner: Host = { ip: '192.168.66.6', mac: mac(666) };
  const paths = ['/', '/index.html', '/login', '/api/v1/status', '/images/logo.png', '/search?q=cordon'];

  for (let s = 0; s < sessions; s++) {
    const c = clients[s % clients.length]!;
    const sport = 40000 + rng.int(0, 20000);
    // DNS lookup
    const qid = rng.int(1, 65535);
    const dport = 30000 + rng.int(0, 30000);
    emit(ipv4(c, dns, 17, udp(dport, 53, dnsQuery(qid, 'www.example.internal')), ipid++));
    emit(ipv4(dns, c, 17, udp(53, dport, dnsQuery(qid, 'www.example.internal', web.ip)), ipid++));
    const https = s % 3 === 2;
    const port = https ? 443 : 80;
    let cs = rng.int(1, 1e9);
    let ss = rng.int(1, 1e9);
    emit(ipv4(c, web, 6, tcp(sport, port, cs, 0, 0x02), ipid++));
    emit(ipv4(web, c, 6, tcp(port, sport, ss, cs + 1, 0x12), ipid++));
    cs += 1; ss += 1;
    emit(ipv4(c, web, 6, tcp(sport, port, cs, ss, 0x10), ipid++));
    const req: Buffer = https
      ? clientHello('www.example.internal')
      : Buffer.from(`GET ${paths[rng.int(0, paths.length - 1)]} HTTP/1.1\r\nHost: www.example.internal\r\nUser-Agent: demo/1.0\r\n\r\n`);
    emit(ipv4(c, web, 6, tcp(sport, port, cs, ss, 0x18, req), ipid++));
    cs += req.length;
    const bodyLen = rng.int(200, 1200);
    const resp = Buffer.from(`HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: ${bodyLen}\r\n\r\n${'x'.repeat(bodyLen)}`);
    emit(ipv4(web, c, 6, tcp(port, sport, ss, cs, 0x18, resp), ipid++));
    ss += resp.length;
    emit(ipv4(c, web, 6, tcp(sport, port, cs, ss, 0x11), ipid++));
    emit(ipv4(web, c, 6, tcp(port, sport, ss, cs + 1, 0x11), ipid++));
    emit(ipv4(c, web, 6, tcp(sport, port, cs + 1, ss + 1, 0x10), ipid++));
  }
  // a ping
  for (let i = 0; i < 3; i++) {
    const echo = Buffer.alloc(16);
    echo[0] = 8;
    echo.writeUInt16BE(0x1234, 4);
    echo.writeUInt16BE(i, 6);
    emit(ipv4(clients[0]!, web, 1, echo, ipid++), 1_000_000);
    const reply = Buffer.from(echo);
    reply[0] = 0;
    reply.writeUInt16BE(0, 2);
    emit(ipv4(web, clients[0]!, 1, reply, ipid++));
  }
  // a port scan: SYN to many ports, RST back from closed ones
  for (const port of [21, 22, 23, 25, 110, 139, 445, 3306, 3389, 5432, 6379, 8080]) {
    const sp = 50000 + port;
    const seq = rng.int(1, 1e9);
    emit(ipv4(scanner, web, 6, tcp(sp, port, seq, 0, 0x02), ipid++), 200);
    emit(ipv4(web, scanner, 6, tcp(port, sp, 0, seq + 1, 0x14), ipid++), 100);
  }
  return pcapFile(frames, 1);
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

export function writeDemoCapture(file: string, opts: DemoCaptureOptions = {}): void {
  writeFileSync(file, buildDemoCapture(opts));
}
