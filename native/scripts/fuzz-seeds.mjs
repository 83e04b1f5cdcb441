#!/usr/bin/env node
// Seed the app-layer fuzz targets with real conversations: every TCP/UDP flow of the
// suricata-verify captures whose traffic a target parses (by port or first bytes) is
// written to native/fuzz/corpus/<target>/ in the targets' input format (records of
// [direction byte: 1 from the client, length u16 LE, bytes], see
// applayer_parsers::feed_conversation). Payloads are taken in capture order, per flow.
//   node native/scripts/fuzz-seeds.mjs [--corpus DIR]
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { readCapture, decodeFrame } from '@cordon/pcap';

const here = dirname(fileURLToPath(import.meta.url));
const repo = resolve(here, '../..');
const { values: opt } = parseArgs({ options: { corpus: { type: 'string' } } });
const roots = opt.corpus ? [opt.corpus] : ['suricata-verify', 'suricata-verify-tier2'].map((s) => resolve(repo, '../../shared/corpus', s)).filter(existsSync);
if (!roots.length) {
  console.log('fuzz-seeds: no corpus found; nothing to seed');
  process.exit(0);
}

/** Which target parses a flow, from its server port and first payload bytes. */
function targetOf(port, first) {
  const b = first ?? Buffer.alloc(0);
  if (port === 443 || (b[0] === 0x16 && b[1] === 3)) return 'tls';
  if (port === 22 || b.subarray(0, 4).toString('latin1') === 'SSH-') return 'ssh';
  if (port === 25 || port === 587) return 'smtp';
  if (port === 21) return 'ftp';
  if (port === 445 || port === 139) return 'smb';
  if (port === 88) return 'krb5';
  if (port === 135 || (b[0] === 5 && b[1] === 0)) return 'dcerpc';
  return undefined;
}

const flows = new Map();
let files = 0;
for (const root of roots) {
  for (const test of readdirSync(root)) {
    const dir = join(root, test);
    let pcaps;
    try {
      pcaps = readdirSync(dir).filter((f) => /\.pcap(ng)?$/.test(f));
    } catch {
      continue;
    }
    for (const p of pcaps) {
      try {
        for await (const f of readCapture(join(dir, p))) {
          const d = decodeFrame(f.linktype, f.frame);
          if (d.kind !== 'ip' || d.l4Offset < 0 || d.fragment || (d.proto !== 6 && d.proto !== 17)) continue;
          const fr = f.frame;
          const ipEnd = d.ipVersion === 4 ? Math.min(fr.length, d.l3Offset + fr.readUInt16BE(d.l3Offset + 2)) : fr.length;
          const hlen = d.proto === 6 ? (fr[d.l4Offset + 12] >> 4) * 4 : 8;
          const payload = fr.subarray(d.l4Offset + hlen, ipEnd);
          if (payload.length === 0) continue;
          const l4 = { srcPort: d.sport, dstPort: d.dport, payload };
          const a = `${d.src.toString('hex')}:${l4.srcPort}`;
          const b = `${d.dst.toString('hex')}:${l4.dstPort}`;
          const key = `${test}|${a < b ? a + '|' + b : b + '|' + a}`;
          let fl = flows.get(key);
          if (!fl) {
            // The lower port is taken as the server's.
            const clientIsSrc = l4.srcPort > l4.dstPort;
            fl = { client: clientIsSrc ? a : b, port: Math.min(l4.srcPort, l4.dstPort), recs: [], first: undefined };
            flows.set(key, fl);
          }
          if (!fl.first) fl.first = Buffer.from(l4.payload);
          fl.recs.push([a === fl.client ? 1 : 0, Buffer.from(l4.payload)]);
        }
      } catch {
        // A damaged capture still seeds what it held.
      }
    }
  }
}
for (const fl of flows.values()) {
  const t = targetOf(fl.port, fl.first);
  if (!t) continue;
  const parts = [];
  for (const [dirn, bytes] of fl.recs) {
    for (let o = 0; o < bytes.length; o += 65535) {
      const chunk = bytes.subarray(o, o + 65535);
      const h = Buffer.alloc(3);
      h[0] = dirn;
      h.writeUInt16LE(chunk.length, 1);
      parts.push(h, chunk);
    }
  }
  const data = Buffer.concat(parts);
  if (data.length > 1 << 20) continue;
  const out = resolve(repo, 'native/fuzz/corpus', t);
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, createHash('sha1').update(data).digest('hex')), data);
  files++;
}
console.log(`fuzz-seeds: ${files} conversations written under native/fuzz/corpus/`);
