/**
 * Test tooling, deliberately independent of src/: a generated TCP conversation (Ethernet,
 * IPv4, valid checksums) and writers for every capture variant the reader takes (pcap of
 * either byte order and resolution, pcapng of either byte order with any timestamp
 * resolution, several interfaces, EPB/SPB/OPB), so format features are tested without any
 * capture from outside the repository. Real captures (the suricata-verify corpus beside the
 * checkout) are used on top, by tests that skip when it is absent.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { corpusPath } from '@cordon/testkit';
import { readCapture, type CaptureFrame } from '../src/index.js';

/** The suricata-verify corpus: use only in tests that skip with `skipWithoutCorpus('suricata-verify')`. */
export const SV = (): string => corpusPath('suricata-verify');

export function corpusCaptures(): { test: string; file: string; expectedPackets: number; linktypes: number[] }[] {
  const out: { test: string; file: string; expectedPackets: number; linktypes: number[] }[] = [];
  for (const test of readdirSync(SV()).sort()) {
    let meta: { pcap: string; pcap_info: { packets: number; linktypes: number[] } };
    try {
      meta = JSON.parse(readFileSync(join(SV(), test, 'expected.json'), 'utf8'));
    } catch {
      continue;
    }
    out.push({
      test,
      file: join(SV(), test, meta.pcap),
      expectedPackets: meta.pcap_info.packets,
      linktypes: meta.pcap_info.linktypes,
    });
  }
  return out;
}

export async function collect(file: string, opts?: Parameters<typeof readCapture>[1]): Promise<CaptureFrame[]> {
  const out: CaptureFrame[] = [];
  for await (const f of readCapture(file, opts)) out.push(f);
  return out;
}

/** Collect frames until the reader throws; returns both. */
export async function collectUntilError(file: string): Promise<{ frames: CaptureFrame[]; error: unknown }> {
  const frames: CaptureFrame[] = [];
  try {
    for await (const f of readCapture(file)) frames.push(f);
  } catch (error) {
    return { frames, error };
  }
  return { frames, error: null };
}

export interface Frame {
  ts_us: number;
  orig_len: number;
  frame: Buffer;
  interfaceId?: number;
  /** Nanoseconds past ts_us (0..999), written only by nanosecond pcap. */
  sub_us_ns?: number;
}

// ---- a generated conversation ------------------------------------------------------------

export const TCP = { FIN: 0x01, SYN: 0x02, RST: 0x04, PSH: 0x08, ACK: 0x10 } as const;
/** Documentation addresses (RFC 5737) and locally administered MACs. */
export const CLIENT = { mac: Buffer.from([2, 0, 0, 0, 0, 1]), ip: [192, 0, 2, 10], port: 49152 } as const;
export const SERVER = { mac: Buffer.from([2, 0, 0, 0, 0, 2]), ip: [198, 51, 100, 25], port: 25 } as const;
type End = typeof CLIENT | typeof SERVER;

function sum16(b: Buffer): number {
  let sum = 0;
  for (let i = 0; i + 1 < b.length; i += 2) sum += b.readUInt16BE(i);
  if (b.length % 2) sum += b[b.length - 1]! << 8;
  while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
  return ~sum & 0xffff;
}

/** Ethernet / IPv4 (no options, DF) / TCP, both checksums valid. */
function ethIpv4Tcp(
  from: End,
  to: End,
  o: { id: number; seq: number; ack: number; flags: number; payload: Buffer; options?: Buffer },
): Buffer {
  const opts = o.options ?? Buffer.alloc(0);
  const t = Buffer.alloc(20 + opts.length);
  t.writeUInt16BE(from.port, 0);
  t.writeUInt16BE(to.port, 2);
  t.writeUInt32BE(o.seq >>> 0, 4);
  t.writeUInt32BE(o.ack >>> 0, 8);
  t[12] = (t.length / 4) << 4;
  t[13] = o.flags;
  t.writeUInt16BE(64240, 14);
  opts.copy(t, 20);
  const l4 = Buffer.concat([t, o.payload]);
  const pseudo = Buffer.from([...from.ip, ...to.ip, 0, 6, l4.length >> 8, l4.length & 0xff]);
  l4.writeUInt16BE(sum16(Buffer.concat([pseudo, l4])), 16);
  const ip = Buffer.alloc(20);
  ip[0] = 0x45;
  ip.writeUInt16BE(20 + l4.length, 2);
  ip.writeUInt16BE(o.id, 4);
  ip.writeUInt16BE(0x4000, 6);
  ip[8] = 64;
  ip[9] = 6;
  Buffer.from(from.ip).copy(ip, 12);
  Buffer.from(to.ip).copy(ip, 16);
  ip.writeUInt16BE(sum16(ip), 10);
  return Buffer.concat([to.mac, from.mac, Buffer.from([0x08, 0x00]), ip, l4]);
}

/**
 * A whole SMTP conversation, 192.0.2.10:49152 → 198.51.100.25:25: SYN (with MSS, SACK-permitted
 * options), SYN-ACK, ACK first, then the dialogue, a 1,400-byte message body captured with a
 * snap length of 128 (orig_len > captured length), and both FINs. Timestamps step by irregular
 * microsecond amounts and cross second boundaries.
 */
export function smtpSession(): Frame[] {
  const steps: Array<[End, number, string | number, number]> = [
    // [sender, flags, payload (text, or a length of filler), µs since the previous frame]
    [CLIENT, TCP.SYN, '', 0],
    [SERVER, TCP.SYN | TCP.ACK, '', 41_873],
    [CLIENT, TCP.ACK, '', 212],
    [SERVER, TCP.PSH | TCP.ACK, '220 mx.example.net ESMTP\r\n', 95_004],
    [CLIENT, TCP.ACK, '', 1_020],
    [CLIENT, TCP.PSH | TCP.ACK, 'EHLO client.example.org\r\n', 3],
    [SERVER, TCP.PSH | TCP.ACK, '250-mx.example.net\r\n250-PIPELINING\r\n250 8BITMIME\r\n', 88_471],
    [CLIENT, TCP.PSH | TCP.ACK, 'MAIL FROM:<alice@example.org>\r\n', 1_000_157],
    [SERVER, TCP.PSH | TCP.ACK, '250 2.1.0 Ok\r\n', 733_999],
    [CLIENT, TCP.PSH | TCP.ACK, 'RCPT TO:<bob@example.net>\r\nDATA\r\n', 1],
    [SERVER, TCP.PSH | TCP.ACK, '250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n', 266_000],
    [CLIENT, TCP.ACK, 1_400, 999_999],
    [CLIENT, TCP.PSH | TCP.ACK, '\r\n.\r\nQUIT\r\n', 17],
    [SERVER, TCP.PSH | TCP.ACK, '250 2.0.0 Ok: queued\r\n221 2.0.0 Bye\r\n', 52_318],
    [SERVER, TCP.FIN | TCP.ACK, '', 64],
    [CLIENT, TCP.FIN | TCP.ACK, '', 90_210],
    [SERVER, TCP.ACK, '', 38_012],
  ];
  const next = new Map<End, number>([
    [CLIENT, 0x1f2e3d4c],
    [SERVER, 0xa0b0c0d0],
  ]);
  const ids = new Map<End, number>([
    [CLIENT, 0x3a10],
    [SERVER, 0x0001],
  ]);
  let ts = 1_700_000_000_123_457;
  const out: Frame[] = [];
  for (const [from, flags, body, gap] of steps) {
    const to = from === CLIENT ? SERVER : CLIENT;
    ts += gap;
    const payload = typeof body === 'number' ? Buffer.from('x'.repeat(body - 2) + '\r\n') : Buffer.from(body);
    const syn = (flags & TCP.SYN) !== 0;
    const options = !syn
      ? undefined
      : from === CLIENT
        ? Buffer.from([2, 4, 0x05, 0xb4, 1, 1, 4, 2])
        : Buffer.from([2, 4, 0x05, 0xb4]);
    const seq = next.get(from)!;
    const ack = flags & TCP.ACK ? next.get(to)! : 0;
    const id = ids.get(from)!;
    ids.set(from, id + 1);
    const frame = ethIpv4Tcp(from, to, { id, seq, ack, flags, payload, options });
    next.set(from, seq + payload.length + (syn || flags & TCP.FIN ? 1 : 0));
    const snapped = typeof body === 'number' ? frame.subarray(0, 128) : frame;
    out.push({ ts_us: ts, orig_len: frame.length, frame: snapped });
  }
  return out;
}

/** The IP packet of an Ethernet frame under another link type (113 Linux SLL, 0 BSD null as written on little-endian hosts, 101 raw). */
export function relink(ethernet: Buffer, linktype: 0 | 1 | 101 | 113): Buffer {
  const ip = ethernet.subarray(14);
  if (linktype === 1) return ethernet;
  if (linktype === 101) return ip;
  if (linktype === 0) return Buffer.concat([Buffer.from([2, 0, 0, 0]), ip]);
  // SLL: packet type (4: sent by us), ARPHRD_ETHER, address length, address padded to 8, protocol
  const sll = Buffer.alloc(16);
  sll.writeUInt16BE(4, 0);
  sll.writeUInt16BE(1, 2);
  sll.writeUInt16BE(6, 4);
  ethernet.copy(sll, 6, 6, 12);
  sll.writeUInt16BE(0x0800, 14);
  return Buffer.concat([sll, ip]);
}

class Writer {
  private parts: Buffer[] = [];
  constructor(private readonly le: boolean) {}
  u8(v: number): this {
    this.parts.push(Buffer.from([v]));
    return this;
  }
  u16(v: number): this {
    const b = Buffer.alloc(2);
    if (this.le) b.writeUInt16LE(v);
    else b.writeUInt16BE(v);
    this.parts.push(b);
    return this;
  }
  u32(v: number): this {
    const b = Buffer.alloc(4);
    if (this.le) b.writeUInt32LE(v >>> 0);
    else b.writeUInt32BE(v >>> 0);
    this.parts.push(b);
    return this;
  }
  i64(v: bigint): this {
    const b = Buffer.alloc(8);
    if (this.le) b.writeBigInt64LE(v);
    else b.writeBigInt64BE(v);
    this.parts.push(b);
    return this;
  }
  bytes(b: Buffer): this {
    this.parts.push(b);
    return this;
  }
  pad4(): this {
    const len = this.length();
    if (len % 4) this.parts.push(Buffer.alloc(4 - (len % 4)));
    return this;
  }
  length(): number {
    return this.parts.reduce((n, p) => n + p.length, 0);
  }
  done(): Buffer {
    return Buffer.concat(this.parts);
  }
}

export function writePcap(frames: Frame[], o: { le: boolean; nanos: boolean; linktype: number }): Buffer {
  const w = new Writer(o.le);
  w.u32(o.nanos ? 0xa1b23c4d : 0xa1b2c3d4)
    .u16(2)
    .u16(4)
    .u32(0)
    .u32(0)
    .u32(262144)
    .u32(o.linktype);
  for (const f of frames) {
    const sec = Math.floor(f.ts_us / 1e6);
    const us = f.ts_us % 1e6;
    w.u32(sec)
      .u32(o.nanos ? us * 1000 + (f.sub_us_ns ?? 0) : us)
      .u32(f.frame.length)
      .u32(f.orig_len)
      .bytes(f.frame);
  }
  return w.done();
}

export interface NgInterface {
  linktype: number;
  /** if_tsresol byte; omitted → default µs. */
  tsresol?: number;
  tsoffset?: bigint;
  snaplen?: number;
}

function block(le: boolean, type: number, body: Buffer): Buffer {
  const padded = Buffer.concat([body, Buffer.alloc((4 - (body.length % 4)) % 4)]);
  const total = padded.length + 12;
  return new Writer(le).u32(type).u32(total).bytes(padded).u32(total).done();
}

/** Timestamp in units of the interface's resolution. */
function units(tsUs: number, iface: NgInterface): bigint {
  const r = iface.tsresol ?? 6;
  const exp = BigInt(r & 0x7f);
  const perSec = r & 0x80 ? 1n << exp : 10n ** exp;
  const us = BigInt(tsUs) - (iface.tsoffset ?? 0n) * 1_000_000n;
  // Exact for resolutions ≥ µs; coarser ones are tested with µs values they can represent.
  return (us * perSec) / 1_000_000n;
}

export function pcapngSection(
  frames: Frame[],
  o: { le: boolean; interfaces: NgInterface[]; packetBlock: 'epb' | 'spb' | 'opb'; extraBlocks?: boolean },
): Buffer {
  const le = o.le;
  const parts: Buffer[] = [];
  // SHB: byte-order magic, version 1.0, section length -1 (unknown), an shb_userappl option.
  const app = Buffer.from('cordon-test');
  parts.push(
    block(
      le,
      0x0a0d0d0a,
      new Writer(le)
        .u32(0x1a2b3c4d)
        .u16(1)
        .u16(0)
        .i64(-1n)
        .u16(4)
        .u16(app.length)
        .bytes(app)
        .pad4()
        .u16(0)
        .u16(0)
        .done(),
    ),
  );
  for (const iface of o.interfaces) {
    const w = new Writer(le)
      .u16(iface.linktype)
      .u16(0)
      .u32(iface.snaplen ?? 262144);
    if (iface.tsresol !== undefined) w.u16(9).u16(1).u8(iface.tsresol).pad4();
    if (iface.tsoffset !== undefined) w.u16(14).u16(8).i64(iface.tsoffset);
    w.u16(0).u16(0);
    parts.push(block(le, 1, w.done()));
  }
  if (o.extraBlocks) {
    // A name resolution block and a custom block: the reader must step over them.
    parts.push(
      block(
        le,
        4,
        new Writer(le)
          .u16(1)
          .u16(8)
          .bytes(Buffer.from([10, 0, 0, 1]))
          .bytes(Buffer.from('h\0\0\0'))
          .u16(0)
          .u16(0)
          .done(),
      ),
    );
    parts.push(block(le, 0x00000bad, new Writer(le).u32(32473).bytes(Buffer.from('opaque')).pad4().done()));
  }
  for (const f of frames) {
    const ifId = f.interfaceId ?? 0;
    const iface = o.interfaces[ifId]!;
    const ts = units(f.ts_us, iface);
    const hi = Number(ts >> 32n);
    const lo = Number(ts & 0xffffffffn);
    if (o.packetBlock === 'epb') {
      const w = new Writer(le).u32(ifId).u32(hi).u32(lo).u32(f.frame.length).u32(f.orig_len).bytes(f.frame).pad4();
      // an opt_comment, so options after the frame are exercised
      w.u16(1).u16(3).bytes(Buffer.from('hi!')).pad4().u16(0).u16(0);
      parts.push(block(le, 6, w.done()));
    } else if (o.packetBlock === 'opb') {
      parts.push(
        block(
          le,
          2,
          new Writer(le).u16(ifId).u16(0).u32(hi).u32(lo).u32(f.frame.length).u32(f.orig_len).bytes(f.frame).done(),
        ),
      );
    } else {
      parts.push(block(le, 3, new Writer(le).u32(f.orig_len).bytes(f.frame).done()));
    }
  }
  return Buffer.concat(parts);
}
