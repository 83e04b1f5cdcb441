/**
 * Writers for capture variants the corpus lacks (big-endian pcap, pcapng of either byte order
 * with any timestamp resolution, SPB/OPB), so the reader is tested on every format with real
 * frames. These are test tooling, deliberately independent of src/reader.ts.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';
import { readCapture, type CaptureFrame } from '../src/index.js';

export const CORPUS = process.env.CORDON_CORPUS ?? join(import.meta.dirname, '..', '..', '..', '..', '..', 'shared', 'corpus', 'suricata-verify');
export const FIXTURES = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'test', 'fixtures');

export function corpusCaptures(): { test: string; file: string; expectedPackets: number; linktypes: number[] }[] {
  const out: { test: string; file: string; expectedPackets: number; linktypes: number[] }[] = [];
  for (const test of readdirSync(CORPUS).sort()) {
    let meta: { pcap: string; pcap_info: { packets: number; linktypes: number[] } };
    try {
      meta = JSON.parse(readFileSync(join(CORPUS, test, 'expected.json'), 'utf8'));
    } catch {
      continue;
    }
    out.push({ test, file: join(CORPUS, test, meta.pcap), expectedPackets: meta.pcap_info.packets, linktypes: meta.pcap_info.linktypes });
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
  w.u32(o.nanos ? 0xa1b23c4d : 0xa1b2c3d4).u16(2).u16(4).u32(0).u32(0).u32(262144).u32(o.linktype);
  for (const f of frames) {
    const sec = Math.floor(f.ts_us / 1e6);
    const us = f.ts_us % 1e6;
    w.u32(sec).u32(o.nanos ? us * 1000 : us).u32(f.frame.length).u32(f.orig_len).bytes(f.frame);
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
      new Writer(le).u32(0x1a2b3c4d).u16(1).u16(0).i64(-1n).u16(4).u16(app.length).bytes(app).pad4().u16(0).u16(0).done(),
    ),
  );
  for (const iface of o.interfaces) {
    const w = new Writer(le).u16(iface.linktype).u16(0).u32(iface.snaplen ?? 262144);
    if (iface.tsresol !== undefined) w.u16(9).u16(1).u8(iface.tsresol).pad4();
    if (iface.tsoffset !== undefined) w.u16(14).u16(8).i64(iface.tsoffset);
    w.u16(0).u16(0);
    parts.push(block(le, 1, w.done()));
  }
  if (o.extraBlocks) {
    // A name resolution block and a custom block: the reader must step over them.
    parts.push(block(le, 4, new Writer(le).u16(1).u16(8).bytes(Buffer.from([10, 0, 0, 1])).bytes(Buffer.from('h\0\0\0')).u16(0).u16(0).done()));
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
      parts.push(block(le, 2, new Writer(le).u16(ifId).u16(0).u32(hi).u32(lo).u32(f.frame.length).u32(f.orig_len).bytes(f.frame).done()));
    } else {
      parts.push(block(le, 3, new Writer(le).u32(f.orig_len).bytes(f.frame).done()));
    }
  }
  return Buffer.concat(parts);
}
