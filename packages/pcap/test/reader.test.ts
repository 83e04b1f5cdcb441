import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { closeSync, constants, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { skipWithoutCorpus, tempDir } from '@cordon/testkit';
import {
  decodeFrame,
  ERR_PCAP_BAD_BLOCK,
  ERR_PCAP_BAD_LENGTH,
  ERR_PCAP_BAD_MAGIC,
  ERR_PCAP_IO,
  ERR_PCAP_TRUNCATED,
  formatIp,
  type CaptureFrame,
} from '../src/index.js';
import {
  collect,
  collectUntilError,
  corpusCaptures,
  pcapngSection,
  relink,
  smtpSession,
  SV,
  writePcap,
  type Frame,
} from './helpers.js';

const tmp = tempDir({ after }, 'pcap');
let n = 0;
function tmpFile(bytes: Buffer, ext = 'pcap'): string {
  const p = join(tmp, `f${n++}.${ext}`);
  writeFileSync(p, bytes);
  return p;
}

/** The generated conversation as a classic pcap (little-endian, µs): the source of the format tests. */
const session = smtpSession();
const smtp = tmpFile(writePcap(session, { le: true, nanos: false, linktype: 1 }));
const strip = (fs: CaptureFrame[]) =>
  fs.map((f) => ({ ts_us: f.ts_us, orig_len: f.orig_len, frame: f.frame.toString('hex'), seq: f.seq }));

const noCorpus = skipWithoutCorpus('suricata-verify');
/** Wireshark's own writers and dissector, as an oracle independent of ours. */
function skipWithoutTools(...tools: string[]): string | false {
  const missing = tools.filter((t) => spawnSync(t, ['--version'], { stdio: 'ignore' }).status !== 0);
  return missing.length
    ? `skipped: ${missing.join(', ')} not installed (CORDON_SETUP_TEST=1 bash scripts/setup.sh installs them)`
    : false;
}
const svSmtp = () => join(SV(), 'bug-1045', 'smtpsuricataflowbitsFN.pcap');

test('every corpus capture streams completely, with 0-based seq', { skip: noCorpus }, async () => {
  const caps = corpusCaptures();
  assert.ok(caps.length > 300, `corpus found at ${SV()}`);
  for (const c of caps) {
    const frames = await collect(c.file);
    assert.equal(frames.length, c.expectedPackets, c.test);
    frames.forEach((f, i) => assert.equal(f.seq, i));
    assert.deepEqual([...new Set(frames.map((f) => f.linktype))], c.linktypes, c.test);
  }
});

test('a pcap reads back as written: times, lengths (a snapped frame too), bytes, link type', async () => {
  const got = await collect(smtp);
  assert.deepEqual(strip(got), strip(session.map((f, seq) => ({ ...f, seq, linktype: 1, interfaceId: 0 }))));
  assert.ok(got.every((f) => f.linktype === 1));
  assert.ok(
    got.some((f) => f.orig_len > f.frame.length),
    'the session has a frame cut by the snap length',
  );
});

test('chunk seams do not change what is read', async () => {
  const whole = await collect(smtp);
  for (const chunkSize of [1, 7, 16, 100]) {
    assert.deepEqual(strip(await collect(smtp, { chunkSize })), strip(whole), `chunk ${chunkSize}`);
  }
});

test('nanosecond pcap: the digits finer than a microsecond are floored away', async () => {
  const src = await collect(smtp);
  const ns = session.map((f, i) => ({ ...f, sub_us_ns: (i * 137) % 1000 }));
  for (const le of [true, false]) {
    assert.deepEqual(
      strip(await collect(tmpFile(writePcap(ns, { le, nanos: true, linktype: 1 })))),
      strip(src),
      `le=${le}`,
    );
  }
});

test(
  'nanosecond pcap written by editcap reads as the microsecond original',
  { skip: noCorpus || skipWithoutTools('editcap') },
  async () => {
    const file = join(tmp, 'nsec.pcap');
    const r = spawnSync('editcap', ['-F', 'nsecpcap', svSmtp(), file], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(readFileSync(file).readUInt32LE(0), 0xa1b23c4d, 'editcap wrote the nanosecond magic');
    assert.deepEqual(strip(await collect(file)), strip(await collect(svSmtp())));
  },
);

test('big-endian pcap (µs and ns) reads like little-endian', async () => {
  const src = await collect(smtp);
  for (const nanos of [false, true]) {
    for (const le of [true, false]) {
      const file = tmpFile(writePcap(src, { le, nanos, linktype: 1 }));
      const got = await collect(file);
      assert.deepEqual(strip(got), strip(src), `le=${le} nanos=${nanos}`);
      assert.ok(got.every((f) => f.linktype === 1));
    }
  }
});

test('pcapng with three interfaces of three link types (Linux SLL, BSD null, Ethernet), interleaved', async () => {
  const linktypes = [113, 0, 1] as const;
  const hdr = { 113: 16, 0: 4, 1: 14 };
  const frames: Frame[] = session.map((f, i) => {
    const lt = linktypes[i % 3]!;
    return { ts_us: f.ts_us, orig_len: f.orig_len - 14 + hdr[lt], frame: relink(f.frame, lt), interfaceId: i % 3 };
  });
  const file = tmpFile(
    pcapngSection(frames, { le: true, interfaces: linktypes.map((linktype) => ({ linktype })), packetBlock: 'epb' }),
    'pcapng',
  );
  const got = await collect(file);
  assert.equal(got.length, frames.length);
  got.forEach((g, i) => {
    const want = frames[i]!;
    assert.equal(g.seq, i);
    assert.equal(g.interfaceId, want.interfaceId, `frame ${i} interface`);
    assert.equal(g.linktype, linktypes[i % 3], `frame ${i} link type`);
    assert.equal(g.ts_us, want.ts_us, `frame ${i} time`);
    assert.equal(g.orig_len, want.orig_len, `frame ${i} orig_len`);
    assert.equal(g.frame.toString('hex'), want.frame.toString('hex'), `frame ${i} bytes`);
    // under every link type, the same packet
    const d = decodeFrame(g.linktype, g.frame);
    const e = decodeFrame(1, session[i]!.frame);
    assert.ok(d.kind === 'ip' && e.kind === 'ip', `frame ${i} decodes`);
    assert.deepEqual(
      [formatIp(d.src), d.sport, formatIp(d.dst), d.dport, d.tcpFlags],
      [formatIp(e.src), e.sport, formatIp(e.dst), e.dport, e.tcpFlags],
    );
  });
});

test(
  'pcapng written by mergecap from three real captures reads as tshark lists it',
  { skip: noCorpus || skipWithoutTools('mergecap', 'tshark') },
  async () => {
    const sources = [join(SV(), 'tcp-fastopen-04', 'tfo.pcap'), join(SV(), 'http-async', 'input.pcap'), svSmtp()];
    const file = join(tmp, 'multi-if.pcapng');
    const m = spawnSync('mergecap', ['-w', file, ...sources], { encoding: 'utf8' });
    assert.equal(m.status, 0, m.stderr);
    // mergecap gives each input file its own interface, in order, with that file's link type
    const linkOf = (f: string) => {
      const b = readFileSync(f);
      return b.readUInt32LE(0) === 0xa1b2c3d4 ? b.readUInt32LE(20) : b.readUInt32BE(20);
    };
    const linktypes = sources.map(linkOf);
    assert.deepEqual(linktypes, [113, 0, 1]);
    const t = spawnSync(
      'tshark',
      [
        '-r',
        file,
        '-T',
        'fields',
        '-e',
        'frame.interface_id',
        '-e',
        'frame.time_epoch',
        '-e',
        'frame.len',
        '-e',
        'frame.cap_len',
      ],
      { encoding: 'utf8' },
    );
    assert.equal(t.status, 0, t.stderr);
    const expected = t.stdout
      .trim()
      .split('\n')
      .map((line) => {
        const [iface, time, len, caplen] = line.split('\t') as [string, string, string, string];
        const [sec, frac = ''] = time.split('.') as [string, string?];
        return {
          interfaceId: Number(iface),
          ts_us: Number(sec) * 1e6 + Number(frac.padEnd(6, '0').slice(0, 6)),
          orig_len: Number(len),
          caplen: Number(caplen),
        };
      });
    const got = await collect(file);
    assert.equal(got.length, expected.length);
    assert.ok(new Set(got.map((f) => f.interfaceId)).size === 3);
    got.forEach((f, i) => {
      const e = expected[i]!;
      assert.equal(f.seq, i);
      assert.equal(f.interfaceId, e.interfaceId, `frame ${i} interface`);
      assert.equal(f.linktype, linktypes[e.interfaceId], `frame ${i} linktype`);
      assert.equal(f.ts_us, e.ts_us, `frame ${i} time`);
      assert.equal(f.orig_len, e.orig_len);
      assert.equal(f.frame.length, e.caplen);
    });
    // And the frames themselves are those of the source files.
    const eth = got.filter((f) => f.linktype === 1);
    assert.deepEqual(
      eth.map((f) => f.frame.toString('hex')),
      (await collect(svSmtp())).map((f) => f.frame.toString('hex')),
    );
  },
);

test('pcapng of both byte orders and several timestamp resolutions', async () => {
  const src = await collect(smtp);
  const frames: Frame[] = src.map((f) => ({ ts_us: f.ts_us, orig_len: f.orig_len, frame: f.frame }));
  // 0x09: ns, 0x06: µs (explicit), 0x94: 2^-20 s — µs values are exact in all three only for
  // 10^-n; for 2^-20 the reader floors, so compare with the floor of the round trip.
  for (const le of [true, false]) {
    for (const tsresol of [6, 9, 0x94]) {
      for (const packetBlock of ['epb', 'opb'] as const) {
        const file = tmpFile(
          pcapngSection(frames, { le, interfaces: [{ linktype: 1, tsresol }], packetBlock, extraBlocks: true }),
          'pcapng',
        );
        const got = await collect(file);
        const what = `le=${le} tsresol=${tsresol} ${packetBlock}`;
        assert.equal(got.length, src.length, what);
        got.forEach((g, i) => {
          const s = src[i]!;
          assert.equal(g.frame.toString('hex'), s.frame.toString('hex'), what);
          assert.equal(g.orig_len, s.orig_len, what);
          assert.ok(Math.abs(g.ts_us - s.ts_us) <= (tsresol === 0x94 ? 1 : 0), `${what} ts ${g.ts_us} vs ${s.ts_us}`);
          assert.equal(g.seq, i);
        });
      }
    }
  }
});

test('pcapng if_tsoffset is added to every timestamp', async () => {
  const src = (await collect(smtp)).slice(0, 3);
  const offset = 1_000_000_000n;
  const file = tmpFile(
    pcapngSection(src, { le: true, interfaces: [{ linktype: 1, tsoffset: offset }], packetBlock: 'epb' }),
    'pcapng',
  );
  assert.deepEqual(
    (await collect(file)).map((f) => f.ts_us),
    src.map((f) => f.ts_us),
  );
});

test('pcapng: simple packet blocks take the last timestamp; sections may switch byte order', async () => {
  const src = await collect(smtp);
  const a = src.slice(0, 5).map((f) => ({ ...f, interfaceId: 0 }));
  const b = src.slice(5).map((f) => ({ ...f, interfaceId: 0 }));
  const file = tmpFile(
    Buffer.concat([
      pcapngSection(a, { le: true, interfaces: [{ linktype: 1 }], packetBlock: 'epb' }),
      pcapngSection(b.slice(0, 1), { le: false, interfaces: [{ linktype: 113 }], packetBlock: 'epb' }),
      pcapngSection(b.slice(1), { le: false, interfaces: [{ linktype: 1 }], packetBlock: 'spb' }),
    ]),
    'pcapng',
  );
  const got = await collect(file);
  assert.equal(got.length, src.length);
  assert.deepEqual(
    got.map((f) => f.frame.toString('hex')),
    src.map((f) => f.frame.toString('hex')),
  );
  assert.deepEqual(
    got.map((f) => f.seq),
    src.map((_, i) => i),
  );
  assert.equal(got[5]!.linktype, 113, 'second section has its own interfaces');
  // SPBs carry no time: each one repeats the last EPB's timestamp.
  for (const f of got.slice(6)) assert.equal(f.ts_us, src[5]!.ts_us);
});

test('several interfaces in one pcapng section keep their own link type and resolution', async () => {
  const src = await collect(smtp);
  const frames = src.map((f, i) => ({ ...f, interfaceId: i % 2 }));
  const file = tmpFile(
    pcapngSection(frames, {
      le: false,
      interfaces: [
        { linktype: 1, tsresol: 9 },
        { linktype: 1, tsresol: 3 },
      ],
      packetBlock: 'epb',
    }),
    'pcapng',
  );
  const got = await collect(file);
  got.forEach((g, i) => {
    assert.equal(g.interfaceId, i % 2);
    // 10^-3 resolution keeps milliseconds only.
    const want = i % 2 ? Math.floor(src[i]!.ts_us / 1000) * 1000 : src[i]!.ts_us;
    assert.equal(g.ts_us, want);
  });
});

// ---- malformed input -------------------------------------------------------------------

async function expectError(
  file: string,
  is: { is(e: unknown): boolean; code: string },
  frames: number,
  offset: number | null,
) {
  const r = await collectUntilError(file);
  assert.ok(r.error, `expected ${is.code}, file read without error`);
  assert.ok(is.is(r.error), `expected ${is.code}, got ${(r.error as Error).message}`);
  assert.equal(r.frames.length, frames, 'frames delivered before the error');
  const msg = (r.error as Error).message;
  assert.ok(msg.includes(file), `message names the file: ${msg}`);
  if (offset !== null) assert.ok(msg.includes(`at byte ${offset}:`), `message names byte ${offset}: ${msg}`);
  return r;
}

test('bad magic, empty and short files are typed errors at byte 0', async () => {
  await expectError(tmpFile(Buffer.from('GET / HTTP/1.1\r\n\r\nhello world, not a capture')), ERR_PCAP_BAD_MAGIC, 0, 0);
  await expectError(tmpFile(Buffer.alloc(0)), ERR_PCAP_TRUNCATED, 0, 0);
  await expectError(tmpFile(readFileSync(smtp).subarray(0, 10)), ERR_PCAP_TRUNCATED, 0, 0);
  await expectError(join(tmp, 'does-not-exist.pcap'), ERR_PCAP_IO, 0, null);
});

test('a truncated last record is reported after every earlier frame was delivered', async () => {
  const bytes = readFileSync(smtp);
  const src = await collect(smtp);
  const lastRecordAt = bytes.length - (16 + src.at(-1)!.frame.length);
  // cut inside the last frame's data, and inside its record header
  for (const cut of [bytes.length - 3, lastRecordAt + 5]) {
    const r = await expectError(tmpFile(bytes.subarray(0, cut)), ERR_PCAP_TRUNCATED, src.length - 1, lastRecordAt);
    assert.deepEqual(strip(r.frames), strip(src.slice(0, -1)));
  }
});

test('an absurd captured length is a typed error, not a 4 GiB allocation', async () => {
  const bytes = Buffer.from(readFileSync(smtp));
  const src = await collect(smtp);
  // third record's incl_len → 0x7fffffff
  const third = 24 + 16 * 2 + src[0]!.frame.length + src[1]!.frame.length;
  bytes.writeUInt32LE(0x7fffffff, third + 8);
  await expectError(tmpFile(bytes), ERR_PCAP_BAD_LENGTH, 2, third);
});

test('pcapng garbage: junk block, length mismatch, huge length, unknown interface, cut block, bad byte-order magic', async () => {
  const src = (await collect(smtp)).slice(0, 4);
  const good = pcapngSection(src, { le: true, interfaces: [{ linktype: 1 }], packetBlock: 'epb' });
  const shbLen = good.readUInt32LE(4);
  const idbLen = good.readUInt32LE(shbLen + 4);
  const first = shbLen + idbLen;
  const secondAt = first + good.readUInt32LE(first + 4);
  const third = secondAt + good.readUInt32LE(secondAt + 4);

  // garbage bytes replacing the third packet block
  const garbage = Buffer.from(good);
  garbage.fill(0x41, third, third + 40);
  await expectError(tmpFile(garbage, 'pcapng'), ERR_PCAP_BAD_BLOCK, 2, third);

  // trailing length disagrees with leading length
  const mismatch = Buffer.from(good);
  mismatch.writeUInt32LE(mismatch.readUInt32LE(secondAt + 4) + 4, secondAt + 4);
  await expectError(tmpFile(mismatch, 'pcapng'), ERR_PCAP_BAD_BLOCK, 1, secondAt);

  // a block claiming 1 GiB
  const huge = Buffer.from(good);
  huge.writeUInt32LE(1 << 30, secondAt + 4);
  await expectError(tmpFile(huge, 'pcapng'), ERR_PCAP_BAD_LENGTH, 1, secondAt);

  // packet on interface 7 of a section with one interface
  const badIf = Buffer.from(good);
  badIf.writeUInt32LE(7, secondAt + 8);
  await expectError(tmpFile(badIf, 'pcapng'), ERR_PCAP_BAD_BLOCK, 1, secondAt);

  // file cut in the middle of the last block
  await expectError(
    tmpFile(good.subarray(0, good.length - 6), 'pcapng'),
    ERR_PCAP_TRUNCATED,
    3,
    good.length - good.readUInt32LE(good.length - 4),
  );

  // bad byte-order magic
  const bom = Buffer.from(good);
  bom.writeUInt32LE(0xdeadbeef, 8);
  await expectError(tmpFile(bom, 'pcapng'), ERR_PCAP_BAD_BLOCK, 0, 0);
});

test('error codes are stable', () => {
  assert.equal(ERR_PCAP_BAD_MAGIC.code, 'CORDON_ERR_PCAP_BAD_MAGIC');
  assert.equal(ERR_PCAP_TRUNCATED.code, 'CORDON_ERR_PCAP_TRUNCATED');
  assert.equal(ERR_PCAP_BAD_LENGTH.code, 'CORDON_ERR_PCAP_BAD_LENGTH');
  assert.equal(ERR_PCAP_BAD_BLOCK.code, 'CORDON_ERR_PCAP_BAD_BLOCK');
  assert.equal(ERR_PCAP_IO.code, 'CORDON_ERR_PCAP_IO');
});

test(
  'a FIFO, a directory or a device given as a capture is refused at once with a coded error, never waited on',
  { timeout: 30_000 },
  async (t) => {
    const dir = tempDir(t, 'pcap-fifo');
    const fifo = join(dir, 'capture.pcap');
    spawnSync('mkfifo', [fifo]);
    const within = <T>(p: Promise<T>, ms: number) =>
      Promise.race([
        p.then(
          () => 'ok' as const,
          (e: { code?: string }) => e.code ?? 'error',
        ),
        new Promise<'hung'>((r) => setTimeout(() => r('hung'), ms)),
      ]);
    try {
      for (const path of [fifo, dir, '/dev/zero']) {
        const outcome = await within(collect(path), 3000);
        assert.equal(outcome, 'CORDON_ERR_PCAP_NOT_A_FILE', path);
      }
    } finally {
      // a reader that did block on the FIFO waits for a writer: give it one so the test ends
      try {
        closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
      } catch {
        // ENXIO: nobody is waiting on it
      }
    }
  },
);
