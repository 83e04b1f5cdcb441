import { writeFileSync } from 'node:fs';
import { clientHello, dnsQuery, ipv4, mac, pcapFile, Rng, tcp, udp, type Host } from './demo/frames.js';

export { pcapFile } from './demo/frames.js';

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

export function buildDemoCapture(opts: DemoCaptureOptions = {}): Buffer {
  return pcapFile(demoTrafficFrames(opts), 1);
}

/** The frames of `buildDemoCapture`, [ts_us, Ethernet frame] in time order, for captures built on top of it. */
export function demoTrafficFrames(opts: DemoCaptureOptions = {}): Array<[number, Buffer]> {
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
    cs += 1;
    ss += 1;
    emit(ipv4(c, web, 6, tcp(sport, port, cs, ss, 0x10), ipid++));
    const req: Buffer = https
      ? clientHello('www.example.internal')
      : Buffer.from(
          `GET ${paths[rng.int(0, paths.length - 1)]} HTTP/1.1\r\nHost: www.example.internal\r\nUser-Agent: demo/1.0\r\n\r\n`,
        );
    emit(ipv4(c, web, 6, tcp(sport, port, cs, ss, 0x18, req), ipid++));
    cs += req.length;
    const bodyLen = rng.int(200, 1200);
    const resp = Buffer.from(
      `HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: ${bodyLen}\r\n\r\n${'x'.repeat(bodyLen)}`,
    );
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
  return frames;
}

export function writeDemoCapture(file: string, opts: DemoCaptureOptions = {}): void {
  writeFileSync(file, buildDemoCapture(opts));
}

/**
 * `count` HTTP sessions to the demo's web server, each a path traversal (sid 1900001 of
 * rules/demo/demo.rules, prevent mode in the demo policy) from an outside address of its own,
 * numbered from `first` (1..65535): the attacker is 198.18.<n >> 8>.<n & 255> (RFC 2544's
 * benchmarking range) and the URI `/f/<n>/../../../../etc/passwd`, so every alert and block
 * the sessions cause can be counted back to its session — the fault tests' packet load.
 */
export function traversalFrames(opts: { first: number; count: number; startUs: number }): Array<[number, Buffer]> {
  const frames: Array<[number, Buffer]> = [];
  const web: Host = { ip: '10.0.0.10', mac: mac(10) };
  let t = opts.startUs;
  let ipid = 1;
  const emit = (f: Buffer) => frames.push([(t += 100), f]);
  for (let n = opts.first; n < opts.first + opts.count; n++) {
    if (n < 1 || n > 65535) throw new RangeError(`session number ${n} is not in 1..65535`);
    const attacker: Host = { ip: `198.18.${n >> 8}.${n & 255}`, mac: mac(1) };
    const sport = 40_000 + (n % 20_000);
    let cs = 1_000 * n;
    let ss = 7_000 * n;
    emit(ipv4(attacker, web, 6, tcp(sport, 80, cs, 0, 0x02), ipid++));
    emit(ipv4(web, attacker, 6, tcp(80, sport, ss, cs + 1, 0x12), ipid++));
    cs += 1;
    ss += 1;
    emit(ipv4(attacker, web, 6, tcp(sport, 80, cs, ss, 0x10), ipid++));
    const req = Buffer.from(`GET /f/${n}/../../../../etc/passwd HTTP/1.1\r\nHost: www.example.internal\r\n\r\n`);
    emit(ipv4(attacker, web, 6, tcp(sport, 80, cs, ss, 0x18, req), ipid++));
    cs += req.length;
    const res = Buffer.from('HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n');
    emit(ipv4(web, attacker, 6, tcp(80, sport, ss, cs, 0x18, res), ipid++));
    ss += res.length;
    emit(ipv4(attacker, web, 6, tcp(sport, 80, cs, ss, 0x11), ipid++));
    emit(ipv4(web, attacker, 6, tcp(80, sport, ss, cs + 1, 0x11), ipid++));
    emit(ipv4(attacker, web, 6, tcp(sport, 80, cs + 1, ss + 1, 0x10), ipid++));
  }
  return frames;
}
