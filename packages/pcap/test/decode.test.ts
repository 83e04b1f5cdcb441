import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { skipWithoutCorpus } from '@cordon/testkit';
import {
  decodeFrame,
  ERR_DECODE_LINKTYPE,
  ERR_DECODE_MALFORMED,
  ERR_DECODE_TRUNCATED,
  flowKey,
  formatIp,
  symmetricFlowHash,
  TCP_FLAGS,
  type DecodeResult,
  type IpPacket,
} from '../src/index.js';
import { collect, corpusCaptures, relink, smtpSession, SV } from './helpers.js';

function ip(r: DecodeResult): IpPacket {
  if (r.kind !== 'ip')
    assert.fail(
      `expected an IP packet, got ${r.kind === 'error' ? r.error.message : `non-ip 0x${r.ethertype.toString(16)}`}`,
    );
  return r;
}
const noCorpus = skipWithoutCorpus('suricata-verify');
/** The first capture file of a suricata-verify test. */
async function corpusFrames(test: string) {
  const file = readdirSync(join(SV(), test)).find((f) => f.endsWith('.pcap'))!;
  return collect(join(SV(), test, file));
}

/** The generated SMTP conversation: SYN 192.0.2.10:49152 → 198.51.100.25:25 (with TCP options), SYN-ACK, ACK, … */
function smtpFrames(): Buffer[] {
  return smtpSession().map((f) => f.frame);
}

test(
  'every frame of the corpus decodes to IP (all are IPv4/IPv6 over Ethernet, SLL or null)',
  { skip: noCorpus },
  async () => {
    let frames = 0;
    for (const c of corpusCaptures()) {
      for (const f of await collect(c.file)) {
        const r = decodeFrame(f.linktype, f.frame);
        if (r.kind !== 'ip')
          assert.fail(`${c.test} frame ${f.seq}: ${r.kind === 'error' ? r.error.message : 'non-ip'}`);
        frames++;
      }
    }
    assert.ok(frames > 8000);
  },
);

test('Ethernet IPv4 TCP: addresses, ports, flags', () => {
  const [syn, synAck] = smtpFrames();
  const a = ip(decodeFrame(1, syn!));
  assert.equal(a.ipVersion, 4);
  assert.equal(a.proto, 6);
  assert.equal(a.tcpFlags, TCP_FLAGS.SYN);
  assert.equal(formatIp(a.src), '192.0.2.10');
  assert.equal(formatIp(a.dst), '198.51.100.25');
  assert.equal(a.sport, 49152);
  assert.equal(a.dport, 25);
  assert.equal(a.vlan, 0);
  assert.equal(a.fragment, null);
  assert.equal(a.l3Offset, 14);
  assert.equal(a.l4Offset, 34);
  const b = ip(decodeFrame(1, synAck!));
  assert.equal(b.tcpFlags, TCP_FLAGS.SYN | TCP_FLAGS.ACK);
  assert.equal(formatIp(b.src), formatIp(a.dst));
  assert.equal(b.sport, 25);
  assert.equal(b.dport, a.sport);
});

test('802.1Q tag, QinQ / 802.1ad stacks', () => {
  const [syn] = smtpFrames();
  const plain = ip(decodeFrame(1, syn!));
  const tagged = Buffer.concat([syn!.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 6]), syn!.subarray(12)]);
  const t = ip(decodeFrame(1, tagged));
  assert.equal(t.vlan, 6);
  assert.deepEqual(t.vlans, [6]);
  assert.equal(t.l3Offset, 18);
  assert.equal(t.sport, plain.sport);
  // Insert an 802.1ad S-tag (vid 100) and an 802.1Q C-tag (vid 200) after the MACs.
  const qinq = Buffer.concat([
    syn!.subarray(0, 12),
    Buffer.from([0x88, 0xa8, 0x00, 100, 0x81, 0x00, 0x20, 200]),
    syn!.subarray(12),
  ]);
  const q = ip(decodeFrame(1, qinq));
  assert.equal(q.vlan, 100, 'outer tag is the flow VLAN');
  assert.deepEqual(q.vlans, [100, 200]);
  assert.equal(q.sport, plain.sport);
  assert.equal(formatIp(q.dst), formatIp(plain.dst));
  // The old 0x9100 QinQ tag too
  const old = Buffer.concat([syn!.subarray(0, 12), Buffer.from([0x91, 0x00, 0x0f, 0xff]), syn!.subarray(12)]);
  assert.equal(ip(decodeFrame(1, old)).vlan, 4095);
  // a tag cut short
  const cut = decodeFrame(1, qinq.subarray(0, 16));
  assert.ok(cut.kind === 'error' && ERR_DECODE_TRUNCATED.is(cut.error));
});

test('Linux SLL, SLL2, raw IP, BSD null (both orders) and loop give the same packet', () => {
  const [syn] = smtpFrames();
  const viaEth = ip(decodeFrame(1, syn!));
  const viaSll = ip(decodeFrame(113, relink(syn!, 113)));
  assert.deepEqual(
    [formatIp(viaSll.src), viaSll.sport, formatIp(viaSll.dst), viaSll.dport],
    [formatIp(viaEth.src), viaEth.sport, formatIp(viaEth.dst), viaEth.dport],
  );
  const ipBytes = relink(syn!, 101);
  const same = (p: IpPacket) => {
    assert.equal(formatIp(p.src), formatIp(viaSll.src));
    assert.equal(formatIp(p.dst), formatIp(viaSll.dst));
    assert.equal(p.sport, viaSll.sport);
    assert.equal(p.dport, viaSll.dport);
    assert.equal(p.tcpFlags, viaSll.tcpFlags);
  };
  // SLL2: protocol, reserved, ifindex, hatype, pkttype, halen, 8-byte address.
  const sll2 = Buffer.concat([Buffer.from([0x08, 0x00, 0, 0, 0, 0, 0, 1, 0, 1, 0, 6]), Buffer.alloc(8), ipBytes]);
  same(ip(decodeFrame(276, sll2)));
  for (const lt of [101, 12, 14, 228]) same(ip(decodeFrame(lt, ipBytes)));
  const le = Buffer.concat([Buffer.from([2, 0, 0, 0]), ipBytes]);
  const be = Buffer.concat([Buffer.from([0, 0, 0, 2]), ipBytes]);
  same(ip(decodeFrame(0, le)));
  same(ip(decodeFrame(0, be)));
  same(ip(decodeFrame(108, be)));
  // Raw link type with a non-IP version nibble
  const bad = decodeFrame(101, Buffer.from([0x50, 0, 0, 0]));
  assert.ok(bad.kind === 'error' && ERR_DECODE_MALFORMED.is(bad.error));
});

test(
  'real captures: an 802.1Q tag, Linux SLL, BSD null (macOS), IPv6 destination options',
  { skip: noCorpus },
  async () => {
    const [tagged] = await corpusFrames('detect-flowbits');
    const p = ip(decodeFrame(1, tagged!.frame));
    assert.equal(p.vlan, 6);
    assert.equal(formatIp(p.src), '5.6.7.8');
    assert.equal(p.sport, 6666);

    const sll = (await collect(join(SV(), 'tcp-fastopen-04', 'tfo.pcap')))[0]!;
    assert.equal(sll.linktype, 113);
    const viaSll = ip(decodeFrame(113, sll.frame));
    const viaRaw = ip(decodeFrame(101, sll.frame.subarray(16)));
    assert.deepEqual(
      [formatIp(viaSll.src), viaSll.sport, formatIp(viaSll.dst), viaSll.dport],
      [formatIp(viaRaw.src), viaRaw.sport, formatIp(viaRaw.dst), viaRaw.dport],
    );

    // null link type, AF_INET in host order
    const nul = (await collect(join(SV(), 'http-async', 'input.pcap')))[0]!;
    assert.equal(nul.linktype, 0);
    assert.equal(ip(decodeFrame(0, nul.frame)).proto, 6);

    // detect-ttl-ipv6: echo requests carry a destination-options header before ICMPv6.
    const decoded = (await corpusFrames('detect-ttl-ipv6')).map((f) => ip(decodeFrame(f.linktype, f.frame)));
    const req = decoded.find((x) => x.icmpType === 128)!;
    assert.equal(req.proto, 58);
    assert.equal(formatIp(req.src), '2001:db8:2:0:8e16:45ff:fee5:5ba2');
    assert.equal(req.sport, 0, 'ICMP has no ports, so request and reply are one flow');
  },
);

test('IPv4 options shift the L4 header; fragments: only the first carries ports', () => {
  const [syn] = smtpFrames();
  const plain = ip(decodeFrame(1, syn!));
  // Add 8 bytes of options (NOP×4 + EOL×4): IHL 5 → 7.
  const hdr = Buffer.from(syn!.subarray(14, 34));
  hdr[0] = 0x47;
  const withOpts = Buffer.concat([syn!.subarray(0, 14), hdr, Buffer.from([1, 1, 1, 1, 0, 0, 0, 0]), syn!.subarray(34)]);
  const o = ip(decodeFrame(1, withOpts));
  assert.equal(o.sport, plain.sport);
  assert.equal(o.l4Offset, 42);
  // First fragment (MF set, offset 0): ports present.
  const first = Buffer.from(syn!);
  first.writeUInt16BE(0x2000, 14 + 6);
  const f1 = ip(decodeFrame(1, first));
  assert.deepEqual(f1.fragment, { id: first.readUInt16BE(18), offset: 0, more: true });
  assert.equal(f1.sport, plain.sport);
  // Later fragment (offset 1480): no L4 header, ports 0.
  const later = Buffer.from(syn!);
  later.writeUInt16BE(185, 14 + 6);
  const f2 = ip(decodeFrame(1, later));
  assert.deepEqual(f2.fragment, { id: later.readUInt16BE(18), offset: 1480, more: false });
  assert.equal(f2.sport, 0);
  assert.equal(f2.dport, 0);
  assert.equal(f2.tcpFlags, 0);
  assert.equal(f2.l4Offset, -1);
  // IHL under 5 is malformed
  const badIhl = Buffer.from(syn!);
  badIhl[14] = 0x43;
  const r = decodeFrame(1, badIhl);
  assert.ok(r.kind === 'error' && ERR_DECODE_MALFORMED.is(r.error));
});

test('IPv6 extension headers in a built chain (hop-by-hop, routing, dest opts, AH, fragment)', () => {
  // Build: Ethernet / IPv6 / HBH(8) / routing(24) / dest(16) / AH(24) / fragment(8, offset 0) / UDP
  const udp = Buffer.from([0x30, 0x39, 0x00, 0x35, 0x00, 0x08, 0x00, 0x00]);
  const hbh = Buffer.concat([Buffer.from([43, 0]), Buffer.alloc(6)]);
  const rt = Buffer.concat([Buffer.from([60, 2]), Buffer.alloc(22)]);
  const dst = Buffer.concat([Buffer.from([51, 1]), Buffer.alloc(14)]);
  const ah = Buffer.concat([Buffer.from([44, 4]), Buffer.alloc(22)]); // (4+2)*4 = 24
  const frag = Buffer.from([17, 0, 0x00, 0x01, 0xde, 0xad, 0xbe, 0xef]); // offset 0, M=1
  const payload = Buffer.concat([hbh, rt, dst, ah, frag, udp]);
  const v6 = Buffer.alloc(40);
  v6[0] = 0x60;
  v6.writeUInt16BE(payload.length, 4);
  v6[6] = 0; // next: hop-by-hop
  v6[7] = 64;
  v6[8] = 0x20;
  v6[9] = 0x01;
  v6[23] = 1;
  v6[24] = 0x20;
  v6[25] = 0x01;
  v6[39] = 2;
  const eth = Buffer.concat([Buffer.alloc(12), Buffer.from([0x86, 0xdd])]);
  const p = ip(decodeFrame(1, Buffer.concat([eth, v6, payload])));
  assert.equal(p.proto, 17);
  assert.equal(p.sport, 12345);
  assert.equal(p.dport, 53);
  assert.deepEqual(p.fragment, { id: 0xdeadbeef, offset: 0, more: true });
  assert.equal(formatIp(p.src), '2001::1');
  assert.equal(formatIp(p.dst), '2001::2');
  // Same chain as a later fragment: no ports.
  const later = Buffer.from(Buffer.concat([eth, v6, payload]));
  later.writeUInt16BE(0x05a8, 14 + 40 + 8 + 24 + 16 + 24 + 2);
  const q = ip(decodeFrame(1, later));
  assert.equal(q.proto, 17);
  assert.equal(q.sport, 0);
  assert.equal(q.fragment!.offset, 0x05a8);
  // An extension header running past the frame
  const r = decodeFrame(1, Buffer.concat([eth, v6, hbh, rt.subarray(0, 10)]));
  assert.ok(r.kind === 'error' && ERR_DECODE_TRUNCATED.is(r.error));
});

test('non-IP frames are reported as such, unknown link types as typed errors', () => {
  const arp = Buffer.concat([Buffer.alloc(12, 0xff), Buffer.from([0x08, 0x06]), Buffer.alloc(28)]);
  const r = decodeFrame(1, arp);
  assert.equal(r.kind, 'non-ip');
  assert.equal(r.kind === 'non-ip' && r.ethertype, 0x0806);
  const u = decodeFrame(105, arp);
  assert.ok(u.kind === 'error' && ERR_DECODE_LINKTYPE.is(u.error));
  assert.equal(u.kind === 'error' && u.error.code, 'CORDON_ERR_PCAP_DECODE_LINKTYPE');
});

test('hostile bytes: every prefix of every frame, and random garbage, never throw', () => {
  const linktypes = [0, 1, 12, 14, 101, 108, 113, 228, 229, 276, 9999];
  const frames = smtpFrames().slice(0, 6);
  for (const f of frames) {
    for (let len = 0; len <= f.length; len++) {
      const r = decodeFrame(1, f.subarray(0, len));
      assert.ok(r.kind === 'ip' || r.kind === 'error', `prefix ${len}`);
      if (len < 48) assert.equal(r.kind, 'error', `prefix ${len} is too short for Ethernet+IPv4+TCP flags`);
    }
  }
  // A deterministic PRNG so a failure reproduces.
  let s = 0x12345678;
  const rnd = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) >>> 16) & 0xff;
  const kinds = { ip: 0, 'non-ip': 0, error: 0 };
  for (let i = 0; i < 20000; i++) {
    const len = rnd() % 120;
    const b = Buffer.alloc(len);
    for (let j = 0; j < len; j++) b[j] = rnd();
    // bias towards plausible headers so deep paths get hit
    if (len > 14 && i % 2) b.writeUInt16BE([0x0800, 0x86dd, 0x8100, 0x88a8, 0x8847, 0x8864][i % 6]!, 12);
    if (len > 20 && i % 3 === 0) b[14] = i % 2 ? 0x45 : 0x60;
    const r = decodeFrame(linktypes[i % linktypes.length]!, b);
    kinds[r.kind]++;
    if (r.kind === 'error') assert.match(r.error.code, /^CORDON_ERR_PCAP_DECODE_/);
  }
  assert.ok(kinds.ip > 0 && kinds.error > 0 && kinds['non-ip'] > 0, JSON.stringify(kinds));
});

test('flowKey is the same bytes both ways; the hash is 16 bytes and symmetric', () => {
  const [syn, synAck, ack] = smtpFrames().map((f) => ip(decodeFrame(1, f)));
  const k1 = flowKey(syn!);
  const k2 = flowKey(synAck!);
  assert.deepEqual(k1.key, k2.key);
  assert.notEqual(k1.swapped, k2.swapped);
  assert.deepEqual(flowKey(ack!).key, k1.key);
  assert.equal(symmetricFlowHash(syn!).length, 16);
  assert.deepEqual(symmetricFlowHash(syn!), symmetricFlowHash(synAck!));
  // VLAN and proto and ports are part of the key
  assert.notDeepEqual(flowKey({ ...syn!, vlan: 7 }).key, k1.key);
  assert.notDeepEqual(flowKey({ ...syn!, proto: 17 }).key, k1.key);
  assert.notDeepEqual(flowKey({ ...syn!, sport: syn!.sport + 1 }).key, k1.key);
  // same address both sides: ports decide the order
  const a = Buffer.from([10, 0, 0, 1]);
  const x = flowKey({ ipVersion: 4, proto: 17, vlan: 0, src: a, dst: a, sport: 9, dport: 5 });
  const y = flowKey({ ipVersion: 4, proto: 17, vlan: 0, src: a, dst: a, sport: 5, dport: 9 });
  assert.deepEqual(x.key, y.key);
  assert.equal(x.swapped, true);
  assert.equal(y.swapped, false);
});

test('formatIp follows RFC 5952', () => {
  const v6 = (s: string) => Buffer.from(s.replace(/:/g, ''), 'hex');
  assert.equal(formatIp(Buffer.from([192, 168, 0, 1])), '192.168.0.1');
  assert.equal(formatIp(v6('2001:0db8:0000:0000:0000:0000:0000:0001')), '2001:db8::1');
  assert.equal(formatIp(v6('0000:0000:0000:0000:0000:0000:0000:0000')), '::');
  assert.equal(formatIp(v6('0000:0000:0000:0000:0000:0000:0000:0001')), '::1');
  assert.equal(formatIp(v6('2001:0db8:0000:0001:0000:0000:0000:0001')), '2001:db8:0:1::1', 'longest run wins');
  assert.equal(
    formatIp(v6('2001:0db8:0000:0001:0001:0001:0001:0001')),
    '2001:db8:0:1:1:1:1:1',
    'a single 0 group is not ::',
  );
  assert.equal(formatIp(v6('2001:0000:0000:0001:0000:0000:0001:0001')), '2001::1:0:0:1:1', 'first of equal runs');
  assert.equal(formatIp(v6('fe80:0000:0000:0000:0000:0000:0000:0000')), 'fe80::');
});
