import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BatchBuilder,
  Engine,
  ERR_NATIVE_BAD_BATCH,
  ERR_NATIVE_BAD_OPTION,
  Rules,
  type FrameBatch,
} from '@cordon/native';

// The engine's flow cap under a flood of new flows, and batches run off the JavaScript thread
// (processBatchAsync, what lets one engine per partition use another core).

const RULE = 'alert tcp any any -> any 80 (msg:"needle"; flow:to_server; content:"needle"; sid:7;)';

/** Ethernet/IPv4/TCP from 10.x.y.z:`sport` to 192.0.2.1:80 (`i` picks the client address); `reply`: the other way. */
function tcpFrame(
  i: number,
  sport: number,
  flags: number,
  payload = Buffer.alloc(0),
  seq = 1,
  ack = 0,
  reply = false,
): Buffer {
  const f = Buffer.alloc(54 + payload.length);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(40 + payload.length, 16);
  f[22] = 64;
  f[23] = 6;
  const client = ((10 << 24) | (i & 0xffffff)) >>> 0;
  f.writeUInt32BE(reply ? 0xc0000201 : client, 26);
  f.writeUInt32BE(reply ? client : 0xc0000201, 30);
  f.writeUInt16BE(reply ? 80 : sport, 34);
  f.writeUInt16BE(reply ? sport : 80, 36);
  f.writeUInt32BE(seq, 38);
  f.writeUInt32BE(ack, 42);
  f[46] = 0x50;
  f[47] = flags;
  f.writeUInt16BE(65535, 48);
  payload.copy(f, 54);
  return f;
}

test('a SYN flood of new flows never takes the flow table past its cap; every eviction is counted', () => {
  const e = new Engine(Rules.compile([{ name: 't', text: RULE }]), { checksum: 'off', maxFlows: 500 });
  let b = new BatchBuilder();
  let most = 0;
  const ts0 = 1_700_000_000_000_000;
  for (let i = 0; i < 30_000; i++) {
    b.add(tcpFrame(i, 1024 + (i % 50_000), 0x02), ts0 + i, 1);
    if (b.size === 1000) {
      e.processBatch(b.take());
      most = Math.max(most, e.stats().active_flows);
    }
  }
  e.processBatch(b.take());
  const s = e.stats();
  assert.ok(most <= 500 && s.active_flows <= 500, `held ${Math.max(most, s.active_flows)} flows, cap 500`);
  assert.equal(s.flows, 30_000);
  assert.equal(s.flows_evicted, s.flows - s.active_flows);
  // the newest flows are the ones held: the last SYN's flow takes its next packet without a new flow
  e.processBatch(batchOf([tcpFrame(29_999, 1024 + 29_999, 0x10)], ts0 + 30_000));
  assert.equal(e.stats().flows, 30_000);
});

test('maxFlows must be a whole number of at least 1 (a coded error)', () => {
  const rules = Rules.compile([]);
  for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 32])
    assert.throws(
      () => new Engine(rules, { maxFlows: bad }),
      (err) => ERR_NATIVE_BAD_OPTION.is(err),
    );
});

test('encryptionHandling is default or full (anything else a coded error)', () => {
  const rules = Rules.compile([]);
  for (const ok of ['default', 'full'] as const) new Engine(rules, { encryptionHandling: ok });
  for (const bad of ['bypass', '', 'FULL'])
    assert.throws(
      () => new Engine(rules, { encryptionHandling: bad as 'full' }),
      (err) => ERR_NATIVE_BAD_OPTION.is(err),
    );
});

function batchOf(frames: Buffer[], ts: number): FrameBatch {
  const b = new BatchBuilder();
  for (const f of frames) b.add(f, ts, 1);
  return b.take();
}

/** Flows 0..n-1, each a handshake then a request; every third carries the needle. */
function requests(n: number): FrameBatch {
  const b = new BatchBuilder();
  for (let i = 0; i < n; i++) {
    const ts = 1_700_000_000_000_000 + i;
    b.add(tcpFrame(i, 2000, 0x02, undefined, 100), ts, 1);
    b.add(tcpFrame(i, 2000, 0x12, undefined, 500, 101, true), ts, 1);
    b.add(tcpFrame(i, 2000, 0x10, undefined, 101, 501), ts, 1);
    const body = Buffer.from(`GET /${i % 3 === 0 ? 'needle' : 'hay'} HTTP/1.1\r\nHost: x\r\n\r\n`);
    b.add(tcpFrame(i, 2000, 0x18, body, 101, 501), ts, 1);
  }
  return b.take();
}

test('processBatchAsync finds what processBatch finds, off the JavaScript thread', async () => {
  const rules = Rules.compile([{ name: 't', text: RULE }]);
  const sync = new Engine(rules, { checksum: 'off' }).processBatch(requests(300));
  const asyncEngine = new Engine(rules, { checksum: 'off' });
  const got = await asyncEngine.processBatchAsync(requests(300));
  assert.equal(sync.length, 100);
  assert.deepEqual(got, sync);
  assert.equal(asyncEngine.stats().packets, 1200);
  // two engines at once (two partitions), each its own flows
  const [a, b] = await Promise.all([
    new Engine(rules, { checksum: 'off' }).processBatchAsync(requests(300)),
    new Engine(rules, { checksum: 'off' }).processBatchAsync(requests(300)),
  ]);
  assert.deepEqual(a, sync);
  assert.deepEqual(b, sync);
});

test('an engine with a batch in flight refuses other calls instead of racing it; bad batches reject with a code', async () => {
  const e = new Engine(Rules.compile([{ name: 't', text: RULE }]), { checksum: 'off' });
  const inFlight = e.processBatchAsync(requests(3000));
  const busy = (err: unknown) =>
    ERR_NATIVE_BAD_BATCH.is(err) && /busy with a batch in flight/.test((err as Error).message);
  assert.throws(() => e.processBatch(requests(1)), busy);
  await assert.rejects(e.processBatchAsync(requests(1)), busy);
  assert.equal((await inFlight).length, 1000);
  assert.equal(e.stats().packets, 12_000);
  // hostile shape: offsets past the data, checked before the batch leaves the thread
  await assert.rejects(
    e.processBatchAsync({
      data: Buffer.alloc(4),
      offsets: Uint32Array.from([0, 99]),
      tsUs: Float64Array.from([0]),
      linktypes: Uint32Array.from([1]),
    }),
    (err) => ERR_NATIVE_BAD_BATCH.is(err) && /out of range/.test((err as Error).message),
  );
  assert.equal(e.stats().packets, 12_000);
});

/** Flows 0..n-1: a request, then a response whose body runs until the server closes (it never does here). */
function openResponses(n: number): FrameBatch {
  const b = new BatchBuilder();
  for (let i = 0; i < n; i++) {
    const ts = 1_700_000_000_000_000 + i;
    const req = Buffer.from('GET /file HTTP/1.0\r\nHost: x\r\n\r\n');
    const res = Buffer.from(`HTTP/1.0 200 OK\r\nServer: s\r\n\r\n${i % 2 ? 'secret' : 'public'} data`);
    b.add(tcpFrame(i, 3000, 0x02, undefined, 100), ts, 1);
    b.add(tcpFrame(i, 3000, 0x12, undefined, 500, 101, true), ts, 1);
    b.add(tcpFrame(i, 3000, 0x10, undefined, 101, 501), ts, 1);
    b.add(tcpFrame(i, 3000, 0x18, req, 101, 501), ts, 1);
    b.add(tcpFrame(i, 3000, 0x18, res, 501, 101 + req.length, true), ts, 1);
  }
  return b.take();
}

test('finishAsync ends every flow as finish does, off the JavaScript thread, and the engine waits for it', async () => {
  // bodies delimited by the server closing are only complete (and inspected) at the end
  const rules = Rules.compile([
    {
      name: 't',
      text: 'alert http any any -> any any (msg:"body"; flow:to_client; file_data; content:"secret"; sid:8;)',
    },
  ]);
  const sync = new Engine(rules, { checksum: 'off' });
  assert.deepEqual(sync.processBatch(openResponses(400)), []);
  const atEnd = sync.finish();
  assert.equal(atEnd.length, 200);
  const e = new Engine(rules, { checksum: 'off' });
  assert.deepEqual(await e.processBatchAsync(openResponses(400)), []);
  const finishing = e.finishAsync();
  const busy = (err: unknown) => ERR_NATIVE_BAD_BATCH.is(err) && /busy/.test((err as Error).message);
  assert.throws(() => e.processBatch(openResponses(1)), busy);
  assert.throws(() => e.finish(), busy);
  // flows end in table order and flow ids are salted per engine: compare what alerted where
  const seen = (lines: string[]) =>
    lines
      .map((l) => JSON.parse(l) as { dest_ip: string; alert: { signature_id: number } })
      .map((a) => `${a.dest_ip} ${a.alert.signature_id}`)
      .sort();
  assert.deepEqual(seen(await finishing), seen(atEnd));
  assert.equal(e.stats().active_flows, 0);
  assert.equal(e.stats().packets, 2000);
});
