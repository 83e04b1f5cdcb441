// DPI on encrypted traffic, with the full ET Open set: what Suricata's default
// `encryption-handling` (Cordon's default too) saves. Once a TLS flow carries application data,
// or both sides of an SSH flow sent NEWKEYS, content rules no longer inspect the flow's payload;
// with `full` they go on scanning ciphertext. The capture: seeded TLS 1.2 flows (a hello each
// way, then application-data records both ways) and SSH flows (banners, NEWKEYS each way, then
// binary packets), their encrypted bytes AES-CTR keystream (as ciphertext looks), the same bytes
// in every run. Prints CPU per pass of both modes and the ratio (target: default at least 1.5×
// the throughput of full; the median of paired passes, as bench/dpi.mjs pairs its passes).
//   node bench/dpi-encrypted.mjs [--flows N]   (N = 2000)
import { createCipheriv } from 'node:crypto';
import v8 from 'node:v8';
import vm from 'node:vm';
import { BatchBuilder, Engine, Rules } from '@cordon/native';
import { tcpFrame } from './lib/dpi-capture.mjs';
import { etOpenSources } from './lib/et-open.mjs';
import { report } from './lib/result.mjs';

const flowsArg = process.argv.indexOf('--flows');
const FLOWS = flowsArg > 0 ? Number(process.argv[flowsArg + 1]) : 2000;
const PASSES = 7;
const sources = etOpenSources('dpi-encrypted');
if (sources === null) process.exit(0);
const rules = Rules.compile(sources);

// ciphertext: a keystream with a fixed key, so every run sees the same bytes
const keystream = createCipheriv('aes-128-ctr', Buffer.alloc(16, 7), Buffer.alloc(16, 1));
const cipher = (n) => keystream.update(Buffer.alloc(n));

const record = (ct, body) => Buffer.concat([Buffer.from([ct, 3, 3, body.length >> 8, body.length & 255]), body]);
function clientHello(sni) {
  const name = Buffer.from(sni);
  const ext = Buffer.concat([Buffer.from([0, 0, 0, name.length + 5, 0, name.length + 3, 0, 0, name.length]), name]);
  const body = Buffer.concat([
    Buffer.from([3, 3]),
    cipher(32),
    Buffer.from([0, 0, 2, 0xc0, 0x2f, 1, 0, 0, ext.length]),
    ext,
  ]);
  return record(22, Buffer.concat([Buffer.from([1, 0, body.length >> 8, body.length & 255]), body]));
}
const serverHello = () =>
  record(22, Buffer.concat([Buffer.from([2, 0, 0, 38, 3, 3]), cipher(32), Buffer.from([0, 0xc0, 0x2f, 0])]));
// an SSH binary packet: length, padding length, then the (here encrypted) rest
const sshPacket = (n) => Buffer.concat([Buffer.from([0, 0, n >> 8, n & 255]), cipher(n)]);
const NEWKEYS = Buffer.from([0, 0, 0, 12, 10, 21, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);

const frames = [];
let payloadBytes = 0;
for (let i = 0; i < FLOWS; i++) {
  const c = (10 << 24) | (2 + i);
  const s = (93 << 24) | (184 << 16) | (i & 0xffff);
  const sp = 20_000 + (i % 40_000);
  const ssh = i % 5 === 4;
  const dp = ssh ? 22 : 443;
  let cs = 1000;
  let ss = 5000;
  const send = (fromClient, data) => {
    for (let o = 0; o < data.length; o += 1448) {
      const seg = data.subarray(o, o + 1448);
      frames.push(fromClient ? tcpFrame(c, s, sp, dp, cs, ss, 0x18, seg) : tcpFrame(s, c, dp, sp, ss, cs, 0x18, seg));
      if (fromClient) cs += seg.length;
      else ss += seg.length;
      payloadBytes += seg.length;
    }
    // the other side's acknowledgement
    frames.push(
      fromClient
        ? tcpFrame(s, c, dp, sp, ss, cs, 0x10, Buffer.alloc(0))
        : tcpFrame(c, s, sp, dp, cs, ss, 0x10, Buffer.alloc(0)),
    );
  };
  frames.push(tcpFrame(c, s, sp, dp, cs++, 0, 0x02, Buffer.alloc(0)));
  frames.push(tcpFrame(s, c, dp, sp, ss++, cs, 0x12, Buffer.alloc(0)));
  frames.push(tcpFrame(c, s, sp, dp, cs, ss, 0x10, Buffer.alloc(0)));
  if (ssh) {
    send(false, Buffer.from('SSH-2.0-OpenSSH_9.2p1 Debian-2\r\n'));
    send(true, Buffer.from('SSH-2.0-OpenSSH_9.6\r\n'));
    send(true, NEWKEYS);
    send(false, NEWKEYS);
    for (let k = 0; k < 8; k++) {
      send(true, sshPacket(60));
      send(false, sshPacket(8_000));
    }
  } else {
    send(true, clientHello(`h${i}.example.com`));
    send(false, Buffer.concat([serverHello(), record(20, Buffer.from([1])), record(22, cipher(40))]));
    send(true, Buffer.concat([record(20, Buffer.from([1])), record(22, cipher(40)), record(23, cipher(400))]));
    for (let k = 0; k < 4; k++) {
      send(true, record(23, cipher(400)));
      send(false, record(23, cipher(16_000)));
    }
  }
  frames.push(tcpFrame(c, s, sp, dp, cs, ss, 0x11, Buffer.alloc(0)));
  frames.push(tcpFrame(s, c, dp, sp, ss, cs + 1, 0x11, Buffer.alloc(0)));
}
const batches = [];
const b = new BatchBuilder();
for (const f of frames) {
  b.add(f, 1_700_000_000_000_000, 1);
  if (b.size >= 4096) batches.push(b.take());
}
if (b.size) batches.push(b.take());
const mib = (payloadBytes / 1048576).toFixed(0);
console.log(
  `dpi-encrypted: ${FLOWS} flows (80% TLS, 20% SSH), ${frames.length} packets, ${mib} MiB of payload, nearly all of it encrypted`,
);

// each timed pass starts after a full collection (the capture's own garbage otherwise lands
// in some passes; see bench/dpi.mjs)
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const cpuSecs = (c) => (c.user + c.system) / 1e6;
function pass(encryptionHandling) {
  gc();
  const engine = new Engine(rules, { checksum: 'off', encryptionHandling });
  const c0 = process.cpuUsage();
  let alerts = 0;
  for (const x of batches) alerts += engine.processBatch(x).length;
  alerts += engine.finish().length;
  return { secs: cpuSecs(process.cpuUsage(c0)), alerts };
}
pass('default');
pass('full');
const pairs = [];
let alerts = {};
for (let i = 0; i < PASSES; i++) {
  const d = pass('default');
  const f = pass('full');
  pairs.push({ d: d.secs, f: f.secs, ratio: f.secs / d.secs });
  alerts = { default: d.alerts, full: f.alerts };
}
const median = (xs) => [...xs].sort((a, c) => a - c)[xs.length >> 1];
const gbps = (secs) => (payloadBytes * 8) / secs / 1e9;
const mid = pairs.find((p) => p.ratio === median(pairs.map((x) => x.ratio)));
console.log(
  `dpi-encrypted: default ${gbps(mid.d).toFixed(2)} Gbit/s (${mid.d.toFixed(3)} s CPU, ${alerts.default} alerts); full ${gbps(mid.f).toFixed(2)} Gbit/s (${mid.f.toFixed(3)} s CPU, ${alerts.full} alerts); pair ratios ${pairs.map((p) => p.ratio.toFixed(2)).join(' ')}`,
);
report({
  bench: 'dpi-encrypted',
  metric: 'Gbit/s of encrypted traffic per core, default vs full encryption handling',
  value: gbps(mid.d),
  baseline: gbps(mid.f),
  target: 1.5,
  unit: 'Gbit/s',
});
