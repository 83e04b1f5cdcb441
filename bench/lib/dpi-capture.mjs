// The DPI benches' capture: a seeded, reproducible mix of HTTP keep-alive (60%), TLS
// (25%) and DNS (15%) flows, the same bytes in every run. Each frame is [frame, ts_us, flow
// index]; payloads are the TCP/UDP payloads in capture order (the raw-scan baseline's input).
//   generateCapture(flows) → { frames, payloads }
// Deterministic PRNG (mulberry32) so every run generates the same capture.
let seed = 0x5eed1234;
const rnd = () => {
  seed |= 0;
  seed = (seed + 0x6d2b79f5) | 0;
  let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const pick = (a) => a[Math.floor(rnd() * a.length)];
const words = [
  'index',
  'api',
  'v1',
  'login',
  'static',
  'img',
  'update',
  'news',
  'search',
  'cart',
  'user',
  'data',
  'js',
  'css',
];
const hosts = ['example.com', 'cdn.example.net', 'shop.example.org', 'mail.example.com', 'news.example.info'];

function csum(buf, start, end, init = 0) {
  let s = init;
  for (let i = start; i + 1 < end; i += 2) s += buf.readUInt16BE(i);
  if ((end - start) & 1) s += buf[end - 1] << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >>> 16);
  return ~s & 0xffff;
}
function frame(src, dst, proto, l4) {
  const eth = Buffer.alloc(14);
  eth.writeUInt16BE(0x0800, 12);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + l4.length, 2);
  ip[8] = 64;
  ip[9] = proto;
  ip.writeUInt32BE(src, 12);
  ip.writeUInt32BE(dst, 16);
  ip.writeUInt16BE(csum(ip, 0, 20), 10);
  return Buffer.concat([eth, ip, l4]);
}
function tcp(sp, dp, seq, ack, flags, payload = Buffer.alloc(0)) {
  const h = Buffer.alloc(20);
  h.writeUInt16BE(sp, 0);
  h.writeUInt16BE(dp, 2);
  h.writeUInt32BE(seq >>> 0, 4);
  h.writeUInt32BE(ack >>> 0, 8);
  h[12] = 5 << 4;
  h[13] = flags;
  h.writeUInt16BE(65535, 14);
  return Buffer.concat([h, payload]);
}
/** An Ethernet/IPv4/TCP frame (IP checksum set, TCP checksum left 0), for the DPI benches. */
export function tcpFrame(src, dst, sp, dp, seq, ack, flags, payload = Buffer.alloc(0)) {
  return frame(src, dst, 6, tcp(sp, dp, seq, ack, flags, payload));
}
function udp(sp, dp, payload) {
  const h = Buffer.alloc(8);
  h.writeUInt16BE(sp, 0);
  h.writeUInt16BE(dp, 2);
  h.writeUInt16BE(8 + payload.length, 4);
  return Buffer.concat([h, payload]);
}
function body(n) {
  const parts = [];
  let len = 0;
  while (len < n) {
    const w = pick(words) + ' lorem ipsum dolor sit amet <div class="x">' + Math.floor(rnd() * 1e6) + '</div>\n';
    parts.push(w);
    len += w.length;
  }
  return Buffer.from(parts.join('').slice(0, n));
}
function tcpFlow(frames, payloads, cli, srv, sport, dport, reqs, resps, ts) {
  let cs = Math.floor(rnd() * 2 ** 31),
    ss = Math.floor(rnd() * 2 ** 31);
  const push = (f) => {
    frames.push([f, ts.t, ts.flow]);
    ts.t += 20;
  };
  push(frame(cli, srv, 6, tcp(sport, dport, cs, 0, 0x02)));
  cs++;
  push(frame(srv, cli, 6, tcp(dport, sport, ss, cs, 0x12)));
  ss++;
  push(frame(cli, srv, 6, tcp(sport, dport, cs, ss, 0x10)));
  for (let i = 0; i < reqs.length; i++) {
    for (const [data, fromCli] of [
      [reqs[i], true],
      [resps[i], false],
    ]) {
      if (!data) continue;
      for (let o = 0; o < data.length; o += 1448) {
        const seg = data.subarray(o, o + 1448);
        payloads.push(seg);
        if (fromCli) {
          push(frame(cli, srv, 6, tcp(sport, dport, cs, ss, 0x18, seg)));
          cs += seg.length;
        } else {
          push(frame(srv, cli, 6, tcp(dport, sport, ss, cs, 0x18, seg)));
          ss += seg.length;
        }
      }
    }
  }
  push(frame(cli, srv, 6, tcp(sport, dport, cs, ss, 0x11)));
  cs++;
  push(frame(srv, cli, 6, tcp(dport, sport, ss, cs, 0x11)));
  ss++;
  push(frame(cli, srv, 6, tcp(sport, dport, cs, ss, 0x10)));
}
function clientHello(sni) {
  const name = Buffer.from(sni);
  const sniExt = Buffer.alloc(9 + name.length);
  sniExt.writeUInt16BE(0, 0);
  sniExt.writeUInt16BE(5 + name.length, 2);
  sniExt.writeUInt16BE(3 + name.length, 4);
  sniExt[6] = 0;
  sniExt.writeUInt16BE(name.length, 7);
  name.copy(sniExt, 9);
  const hello = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([0, 0, 2, 0x13, 0x01, 1, 0]),
    Buffer.from([0, sniExt.length >> 8, sniExt.length & 255]).subarray(1),
    sniExt,
  ]);
  const ext = Buffer.alloc(2);
  ext.writeUInt16BE(sniExt.length);
  const h = Buffer.concat([
    Buffer.from([3, 3]),
    Buffer.alloc(32, 7),
    Buffer.from([0, 0, 2, 0x13, 0x01, 1, 0]),
    ext,
    sniExt,
  ]);
  void hello;
  const hs = Buffer.concat([Buffer.from([1, 0, h.length >> 8, h.length & 255]), h]);
  return Buffer.concat([Buffer.from([0x16, 3, 1, hs.length >> 8, hs.length & 255]), hs, Buffer.alloc(1200, 0x17)]);
}
function dnsQuery(id, name) {
  const labels = name.split('.').map((l) => Buffer.concat([Buffer.from([l.length]), Buffer.from(l)]));
  const h = Buffer.alloc(12);
  h.writeUInt16BE(id, 0);
  h.writeUInt16BE(0x0100, 2);
  h.writeUInt16BE(1, 4);
  return Buffer.concat([h, ...labels, Buffer.from([0, 0, 1, 0, 1])]);
}

export function generateCapture(FLOWS) {
  seed = 0x5eed1234;
  const frames = [];
  const payloads = [];
  const ts = { t: 1_700_000_000_000_000 };
  for (let i = 0; i < FLOWS; i++) {
    ts.flow = i;
    const cli = (10 << 24) | (Math.floor(rnd() * 65536) << 8) | 2;
    const srv = (93 << 24) | (184 << 16) | Math.floor(rnd() * 65536);
    const sport = 1024 + Math.floor(rnd() * 60000);
    const kind = rnd();
    if (kind < 0.6) {
      const n = 1 + Math.floor(rnd() * 3);
      const reqs = [],
        resps = [];
      for (let k = 0; k < n; k++) {
        const host = pick(hosts);
        reqs.push(
          Buffer.from(
            `GET /${pick(words)}/${pick(words)}.php?id=${Math.floor(rnd() * 1e6)}&q=${pick(words)} HTTP/1.1\r\nHost: ${host}\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0\r\nAccept: text/html,*/*\r\nAccept-Language: en-US,en\r\nConnection: keep-alive\r\n\r\n`,
          ),
        );
        const b = body(2000 + Math.floor(rnd() * 30000));
        resps.push(
          Buffer.concat([
            Buffer.from(
              `HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: ${b.length}\r\n\r\n`,
            ),
            b,
          ]),
        );
      }
      tcpFlow(frames, payloads, cli, srv, sport, 80, reqs, resps, ts);
    } else if (kind < 0.85) {
      tcpFlow(
        frames,
        payloads,
        cli,
        srv,
        sport,
        443,
        [clientHello(`${pick(words)}.${pick(hosts)}`)],
        [Buffer.alloc(4000 + Math.floor(rnd() * 8000), 0x5a)],
        ts,
      );
    } else {
      const q = dnsQuery(i & 0xffff, `${pick(words)}.${pick(hosts)}`);
      payloads.push(q);
      frames.push([frame(cli, (8 << 24) | 0x080808, 17, udp(sport, 53, q)), ts.t, i]);
      ts.t += 20;
    }
  }
  return { frames, payloads };
}
