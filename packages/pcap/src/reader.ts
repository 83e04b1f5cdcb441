import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import {
  ERR_PCAP_BAD_BLOCK,
  ERR_PCAP_BAD_LENGTH,
  ERR_PCAP_BAD_MAGIC,
  ERR_PCAP_IO,
  ERR_PCAP_NOT_A_FILE,
  ERR_PCAP_TRUNCATED,
  ERR_PCAP_UNSUPPORTED,
} from './errors.js';

/** One captured frame, as stored in the file. */
export interface CaptureFrame {
  /** Capture time, microseconds since the epoch (finer resolutions are floored). */
  ts_us: number;
  /** LINKTYPE_* of the interface the frame was captured on. */
  linktype: number;
  /** Length of the frame on the wire (may exceed frame.length when the snap length cut it). */
  orig_len: number;
  /** Captured bytes; a copy the caller may keep. */
  frame: Buffer;
  /** 0-based index of the frame among the file's frames. */
  seq: number;
  /** pcapng interface id (0 for classic pcap). */
  interfaceId: number;
}

export interface ReadCaptureOptions {
  /** Bytes read from the file at a time (default 1 MiB). Small values exercise chunk seams in tests. */
  chunkSize?: number;
  /** Largest captured length accepted per frame; bigger ones mean a corrupt file (default 256 KiB). */
  maxCaplen?: number;
}

/** 262144 is tcpdump's default snap length; nothing legitimate captures more per frame. */
export const DEFAULT_MAX_CAPLEN = 256 * 1024;
const DEFAULT_CHUNK = 1024 * 1024;
/** Non-packet pcapng blocks (name resolution, statistics, custom) get more room, but not unbounded. */
const MAX_BLOCK_LEN = 16 * 1024 * 1024;
/** Header fields and options of a packet block on top of its frame bytes. */
const PACKET_BLOCK_SLACK = 64 * 1024;

const PCAP_MAGIC_US = 0xa1b2c3d4;
const PCAP_MAGIC_NS = 0xa1b23c4d;
/** Alexey Kuznetzov's patched libpcap: 8 more bytes per record header. */
const PCAP_MAGIC_KUZNETZOV = 0xa1b2cd34;
const PCAPNG_SHB = 0x0a0d0d0a;
const PCAPNG_BOM = 0x1a2b3c4d;

const BT_IDB = 0x00000001;
const BT_OPB = 0x00000002;
const BT_SPB = 0x00000003;
const BT_EPB = 0x00000006;

/**
 * A forward-only window over a file, read in chunks so a capture of any size streams in
 * bounded memory. `pos` is the absolute file offset of the next unread byte.
 */
class ChunkedSource {
  private buf = Buffer.alloc(0);
  private start = 0; // index in buf of the next unread byte
  private eof = false;
  pos = 0;

  constructor(
    private readonly fh: FileHandle,
    private readonly file: string,
    private readonly chunkSize: number,
  ) {}

  get available(): number {
    return this.buf.length - this.start;
  }

  /** Make at least n unread bytes available; false when the file ends first. */
  async fill(n: number): Promise<boolean> {
    while (this.available < n && !this.eof) {
      const want = Math.max(this.chunkSize, n - this.available);
      const chunk = Buffer.allocUnsafe(want);
      let got: number;
      try {
        ({ bytesRead: got } = await this.fh.read(chunk, 0, want, null));
      } catch (err) {
        throw ERR_PCAP_IO.withCause(err, this.file, (err as Error).message);
      }
      if (got === 0) {
        this.eof = true;
        break;
      }
      // Keep only the unread tail, so memory stays ~ one chunk + one record.
      this.buf = Buffer.concat([this.buf.subarray(this.start), chunk.subarray(0, got)]);
      this.start = 0;
    }
    return this.available >= n;
  }

  /** A view of the next n bytes (caller has ensured them); valid until the next fill(). */
  peek(n: number): Buffer {
    return this.buf.subarray(this.start, this.start + n);
  }

  skip(n: number): void {
    this.start += n;
    this.pos += n;
  }

  /** True when no byte is left at all (clean end of file). */
  async atEnd(): Promise<boolean> {
    return !(await this.fill(1));
  }
}

interface PcapngInterface {
  linktype: number;
  snaplen: number;
  /** Timestamp units per second as a BigInt divisor/multiplier pair, see toMicros. */
  unitsPerSecond: bigint;
  /** if_tsoffset: seconds added to every timestamp. */
  offsetSeconds: bigint;
}

/**
 * Stream every frame of a pcap or pcapng file.
 *
 * Errors are thrown as CordonErrors (CORDON_ERR_PCAP_…) naming the file and byte offset. A
 * truncated or corrupt record ends the iteration with an error *after* every good frame
 * before it was yielded, so a consumer keeps what the file did hold.
 */
export async function* readCapture(file: string, opts: ReadCaptureOptions = {}): AsyncGenerator<CaptureFrame> {
  let fh: FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever
    fh = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    throw ERR_PCAP_IO.withCause(err, file, (err as Error).message);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile())
      throw ERR_PCAP_NOT_A_FILE(
        file,
        st.isFIFO()
          ? 'a FIFO'
          : st.isDirectory()
            ? 'a directory'
            : st.isCharacterDevice() || st.isBlockDevice()
              ? 'a device'
              : 'not a regular file',
      );
    const src = new ChunkedSource(fh, file, opts.chunkSize ?? DEFAULT_CHUNK);
    const maxCaplen = opts.maxCaplen ?? DEFAULT_MAX_CAPLEN;
    if (!(await src.fill(4))) {
      throw ERR_PCAP_TRUNCATED(
        file,
        0,
        `the file header (${src.available} bytes, a capture starts with a 4-byte magic)`,
      );
    }
    const head = src.peek(4);
    const le = head.readUInt32LE(0);
    const be = head.readUInt32BE(0);
    if (be === PCAPNG_SHB) {
      yield* readPcapng(src, file, maxCaplen);
    } else if (
      [PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_KUZNETZOV].includes(le) ||
      [PCAP_MAGIC_US, PCAP_MAGIC_NS, PCAP_MAGIC_KUZNETZOV].includes(be)
    ) {
      yield* readPcap(src, file, maxCaplen);
    } else {
      throw ERR_PCAP_BAD_MAGIC(file, 0, head.toString('hex'));
    }
  } finally {
    await fh.close();
  }
}

async function* readPcap(src: ChunkedSource, file: string, maxCaplen: number): AsyncGenerator<CaptureFrame> {
  if (!(await src.fill(24))) {
    throw ERR_PCAP_TRUNCATED(file, 0, `the 24-byte pcap file header (only ${src.available} bytes)`);
  }
  const hdr = src.peek(24);
  const magicLE = hdr.readUInt32LE(0);
  const littleEndian = magicLE === PCAP_MAGIC_US || magicLE === PCAP_MAGIC_NS || magicLE === PCAP_MAGIC_KUZNETZOV;
  const magic = littleEndian ? magicLE : hdr.readUInt32BE(0);
  const u32 = (b: Buffer, o: number) => (littleEndian ? b.readUInt32LE(o) : b.readUInt32BE(o));
  const nanos = magic === PCAP_MAGIC_NS;
  const recHeaderLen = magic === PCAP_MAGIC_KUZNETZOV ? 24 : 16;
  // The upper 16 bits of the link-type field carry FCS information (pcap-linktype(7)).
  const linktype = u32(hdr, 20) & 0xffff;
  src.skip(24);

  let seq = 0;
  for (;;) {
    const recOffset = src.pos;
    if (await src.atEnd()) return;
    if (!(await src.fill(recHeaderLen))) {
      throw ERR_PCAP_TRUNCATED(
        file,
        recOffset,
        `the header of frame ${seq} (${src.available} of ${recHeaderLen} bytes)`,
      );
    }
    const rh = src.peek(recHeaderLen);
    const sec = u32(rh, 0);
    const frac = u32(rh, 4);
    const caplen = u32(rh, 8);
    const origLen = u32(rh, 12);
    if (caplen > maxCaplen) {
      throw ERR_PCAP_BAD_LENGTH(
        file,
        recOffset,
        `frame ${seq} claims ${caplen} captured bytes, over the ${maxCaplen}-byte cap`,
      );
    }
    if (frac >= (nanos ? 1_000_000_000 : 1_000_000)) {
      throw ERR_PCAP_BAD_LENGTH(file, recOffset, `frame ${seq} has a sub-second timestamp of ${frac}, out of range`);
    }
    if (!(await src.fill(recHeaderLen + caplen))) {
      throw ERR_PCAP_TRUNCATED(
        file,
        recOffset,
        `frame ${seq} (header says ${caplen} captured bytes, ${src.available - recHeaderLen} left)`,
      );
    }
    const frame = Buffer.from(src.peek(recHeaderLen + caplen).subarray(recHeaderLen));
    src.skip(recHeaderLen + caplen);
    yield {
      ts_us: sec * 1_000_000 + (nanos ? Math.floor(frac / 1000) : frac),
      linktype,
      orig_len: Math.max(origLen, caplen),
      frame,
      seq: seq++,
      interfaceId: 0,
    };
  }
}

async function* readPcapng(src: ChunkedSource, file: string, maxCaplen: number): AsyncGenerator<CaptureFrame> {
  let littleEndian = true;
  let interfaces: PcapngInterface[] = [];
  let seq = 0;
  let lastTsUs = 0;
  let sawSection = false;

  for (;;) {
    const blockOffset = src.pos;
    if (await src.atEnd()) return;
    if (!(await src.fill(12))) {
      throw ERR_PCAP_TRUNCATED(file, blockOffset, `a pcapng block header (${src.available} of 12 bytes)`);
    }
    let head = src.peek(12);
    let type: number;
    if (head.readUInt32BE(0) === PCAPNG_SHB) {
      // A new section may switch byte order: the byte-order magic decides, not the previous section.
      const bom = head.readUInt32LE(8);
      if (bom === PCAPNG_BOM) littleEndian = true;
      else if (head.readUInt32BE(8) === PCAPNG_BOM) littleEndian = false;
      else
        throw ERR_PCAP_BAD_BLOCK(
          file,
          blockOffset,
          `section header byte-order magic is 0x${head.subarray(8, 12).toString('hex')}`,
        );
      type = PCAPNG_SHB;
      interfaces = [];
      sawSection = true;
    } else {
      if (!sawSection) throw ERR_PCAP_BAD_BLOCK(file, blockOffset, 'file does not start with a section header block');
      type = littleEndian ? head.readUInt32LE(0) : head.readUInt32BE(0);
    }
    const u32 = (b: Buffer, o: number) => (littleEndian ? b.readUInt32LE(o) : b.readUInt32BE(o));
    const u16 = (b: Buffer, o: number) => (littleEndian ? b.readUInt16LE(o) : b.readUInt16BE(o));
    const totalLen = u32(head, 4);
    if (totalLen < 12 || totalLen % 4 !== 0) {
      throw ERR_PCAP_BAD_BLOCK(
        file,
        blockOffset,
        `block type 0x${type.toString(16)} has length ${totalLen} (must be ≥ 12 and a multiple of 4)`,
      );
    }
    // Packet blocks are held to the snap-length cap (plus room for options) before any read,
    // so a corrupt length cannot make us buffer megabytes.
    const cap = type === BT_EPB || type === BT_OPB || type === BT_SPB ? maxCaplen + PACKET_BLOCK_SLACK : MAX_BLOCK_LEN;
    if (totalLen > cap) {
      throw ERR_PCAP_BAD_LENGTH(
        file,
        blockOffset,
        `pcapng block type 0x${type.toString(16)} claims ${totalLen} bytes, over the ${cap}-byte cap`,
      );
    }
    if (!(await src.fill(totalLen))) {
      throw ERR_PCAP_TRUNCATED(
        file,
        blockOffset,
        `pcapng block type 0x${type.toString(16)} (says ${totalLen} bytes, ${src.available} left)`,
      );
    }
    const block = src.peek(totalLen);
    head = block;
    if (u32(block, totalLen - 4) !== totalLen) {
      throw ERR_PCAP_BAD_BLOCK(
        file,
        blockOffset,
        `trailing length ${u32(block, totalLen - 4)} differs from leading length ${totalLen}`,
      );
    }
    const body = block.subarray(8, totalLen - 4);
    const bad = (detail: string) => ERR_PCAP_BAD_BLOCK(file, blockOffset, detail);

    let out: CaptureFrame | null = null;
    switch (type) {
      case PCAPNG_SHB: {
        if (body.length < 16) throw bad(`section header body is ${body.length} bytes, needs 16`);
        const major = u16(body, 4);
        if (major !== 1)
          throw ERR_PCAP_UNSUPPORTED(file, blockOffset, `pcapng major version ${major} is not supported (only 1)`);
        break;
      }
      case BT_IDB: {
        if (body.length < 8) throw bad(`interface description body is ${body.length} bytes, needs 8`);
        const iface: PcapngInterface = {
          linktype: u16(body, 0),
          snaplen: u32(body, 4),
          unitsPerSecond: 1_000_000n,
          offsetSeconds: 0n,
        };
        for (const [code, value] of options(body.subarray(8), u16, bad)) {
          if (code === 9 && value.length >= 1) {
            const r = value[0]!;
            const exp = BigInt(r & 0x7f);
            // MSB set: negative power of two, else negative power of ten (pcapng spec, if_tsresol).
            if ((r & 0x80 ? exp : exp * 4n) > 64n) throw bad(`if_tsresol ${r} is out of range`);
            iface.unitsPerSecond = r & 0x80 ? 1n << exp : 10n ** exp;
          } else if (code === 14 && value.length >= 8) {
            iface.offsetSeconds = littleEndian ? value.readBigInt64LE(0) : value.readBigInt64BE(0);
          }
        }
        interfaces.push(iface);
        break;
      }
      case BT_EPB:
      case BT_OPB: {
        const opb = type === BT_OPB;
        if (body.length < 20) throw bad(`packet block body is ${body.length} bytes, needs 20`);
        const ifId = opb ? u16(body, 0) : u32(body, 0);
        const iface = interfaces[ifId];
        if (!iface) throw bad(`packet refers to interface ${ifId}, but the section describes ${interfaces.length}`);
        const ts = (BigInt(u32(body, 4)) << 32n) | BigInt(u32(body, 8));
        const caplen = u32(body, 12);
        const origLen = u32(body, 16);
        if (caplen > maxCaplen)
          throw ERR_PCAP_BAD_LENGTH(
            file,
            blockOffset,
            `frame ${seq} claims ${caplen} captured bytes, over the ${maxCaplen}-byte cap`,
          );
        if (20 + caplen > body.length)
          throw bad(`frame ${seq} claims ${caplen} captured bytes but its block holds ${body.length - 20}`);
        lastTsUs = toMicros(ts, iface);
        out = {
          ts_us: lastTsUs,
          linktype: iface.linktype,
          orig_len: Math.max(origLen, caplen),
          frame: Buffer.from(body.subarray(20, 20 + caplen)),
          seq,
          interfaceId: ifId,
        };
        break;
      }
      case BT_SPB: {
        const iface = interfaces[0];
        if (!iface) throw bad('simple packet block before any interface description');
        if (body.length < 4) throw bad(`simple packet body is ${body.length} bytes, needs 4`);
        const origLen = u32(body, 0);
        // The SPB has no captured-length field: it is the smaller of the wire length, the
        // snap length and what the block holds.
        let caplen = Math.min(origLen, body.length - 4);
        if (iface.snaplen > 0) caplen = Math.min(caplen, iface.snaplen);
        if (caplen > maxCaplen)
          throw ERR_PCAP_BAD_LENGTH(
            file,
            blockOffset,
            `frame ${seq} holds ${caplen} captured bytes, over the ${maxCaplen}-byte cap`,
          );
        out = {
          // No timestamp in an SPB: reuse the last one so idle timeouts do not jump back to 1970.
          ts_us: lastTsUs,
          linktype: iface.linktype,
          orig_len: Math.max(origLen, caplen),
          frame: Buffer.from(body.subarray(4, 4 + caplen)),
          seq,
          interfaceId: 0,
        };
        break;
      }
      default:
        // Name resolution, interface statistics, decryption secrets, custom blocks: not frames.
        break;
    }
    src.skip(totalLen);
    if (out) {
      seq++;
      yield out;
    }
  }
}

function toMicros(ts: bigint, iface: PcapngInterface): number {
  const units = ts + iface.offsetSeconds * iface.unitsPerSecond;
  // Floor to microseconds, like classic nanosecond pcap (ns → µs truncation).
  return Number((units * 1_000_000n) / iface.unitsPerSecond);
}

function* options(
  buf: Buffer,
  u16: (b: Buffer, o: number) => number,
  bad: (detail: string) => Error,
): Generator<[number, Buffer]> {
  let off = 0;
  while (off + 4 <= buf.length) {
    const code = u16(buf, off);
    const len = u16(buf, off + 2);
    if (code === 0) return; // opt_endofopt
    if (off + 4 + len > buf.length) throw bad(`option ${code} of length ${len} runs past its block`);
    yield [code, buf.subarray(off + 4, off + 4 + len)];
    off += 4 + ((len + 3) & ~3);
  }
}
