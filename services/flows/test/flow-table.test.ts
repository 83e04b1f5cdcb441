import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { readCapture } from '@cordon/pcap';
import type { FlowRecord, PacketBatch } from '@cordon/schemas';
import { codecFor, communityId, TOPICS } from '@cordon/schemas';
import { corpusPath, skipWithoutCorpus } from '@cordon/testkit';
import {
  ERR_FLOWS_BAD_FRAME,
  ERR_FLOWS_CONFIG,
  ERR_FLOWS_SNAPSHOT,
  FlowTable,
  parseFlowsConfig,
  parseFlowTableConfig,
  type BatchResult,
} from '../src/index.js';
import { batch, F, pkt, tcp, udp, udpFragment } from './frames.js';

const cfg = parseFlowTableConfig({});
const S = 1_000_000;
const T0 = 1_700_000_000 * S;
const cli = { ip: '10.0.0.1', port: 40000 };
const srv = { ip: '10.0.0.2', port: 80 };

function records(r: BatchResult): FlowRecord[] {
  return r.flows.map((f) => f.record);
}

test('a full TCP connection: initiator, counts each way, ORed flags, closes at the last ACK with fin', () => {
  const t = new FlowTable(cfg);
  const r1 = t.processBatch(
    batch([
      pkt(T0, tcp(cli, srv, F.SYN)),
      pkt(T0 + 1000, tcp(srv, cli, F.SYN | F.ACK)),
      pkt(T0 + 2000, tcp(cli, srv, F.ACK)),
      pkt(T0 + 3000, tcp(cli, srv, F.PSH | F.ACK, 100)),
      pkt(T0 + 4000, tcp(srv, cli, F.PSH | F.ACK, 1000), 1500),
      pkt(T0 + 5000, tcp(cli, srv, F.FIN | F.ACK)),
      pkt(T0 + 6000, tcp(srv, cli, F.FIN | F.ACK)),
    ]),
  );
  assert.deepEqual(r1.flows, [], 'not closed until the last ACK');
  assert.equal(t.size, 1);
  const r2 = t.processBatch(batch([pkt(T0 + 7000, tcp(cli, srv, F.ACK))]));
  const [f] = records(r2);
  assert.ok(f);
  assert.equal(t.size, 0);
  assert.deepEqual(
    { ...f, flow_id: undefined, community_id: undefined },
    {
      flow_id: undefined,
      community_id: undefined,
      sensor: 's1',
      vm: null,
      vlan: 0,
      proto: 6,
      src_ip: '10.0.0.1',
      src_port: 40000,
      dst_ip: '10.0.0.2',
      dst_port: 80,
      first_seen_us: T0,
      last_seen_us: T0 + 7000,
      pkts_toserver: 5,
      pkts_toclient: 3,
      bytes_toserver: 54 * 4 + 154,
      bytes_toclient: 54 + 1500 + 54,
      tcp_flags_toserver: F.SYN | F.ACK | F.PSH | F.FIN,
      tcp_flags_toclient: F.SYN | F.ACK | F.PSH | F.FIN,
      end_reason: 'fin',
    },
  );
  assert.match(f.flow_id, /^[0-9a-f]{32}$/);
  // The record fits its schema and the key is the 16-byte symmetric hash.
  assert.ok(codecFor(TOPICS.flows).encode(f).length > 0);
  assert.equal(r2.flows[0]!.key.length, 16);
});

test('RST closes at once; a SYN for the same 5-tuple after a close starts a new flow with a new id', () => {
  const t = new FlowTable(cfg);
  const a = records(t.processBatch(batch([pkt(T0, tcp(cli, srv, F.SYN)), pkt(T0 + 10, tcp(srv, cli, F.RST | F.ACK))])));
  assert.equal(a.length, 1);
  assert.equal(a[0]!.end_reason, 'rst');
  assert.equal(a[0]!.pkts_toclient, 1);
  const b = records(
    t.processBatch(
      batch([
        pkt(T0 + 100, tcp(cli, srv, F.SYN)),
        pkt(T0 + 110, tcp(srv, cli, F.SYN | F.ACK)),
        pkt(T0 + 120, tcp(cli, srv, F.FIN | F.ACK)),
        pkt(T0 + 130, tcp(srv, cli, F.FIN | F.ACK)),
        pkt(T0 + 140, tcp(cli, srv, F.ACK)),
        pkt(T0 + 200, tcp(cli, srv, F.SYN)),
      ]),
    ),
  );
  assert.equal(b.length, 1);
  assert.equal(b[0]!.end_reason, 'fin');
  assert.equal(b[0]!.first_seen_us, T0 + 100);
  assert.notEqual(b[0]!.flow_id, a[0]!.flow_id);
  assert.equal(t.size, 1, 'the second SYN opened a third flow');
});

test('a SYN on a flow whose close was never finished ends that flow and starts anew; SYN retransmits do not', () => {
  const t = new FlowTable(cfg);
  const r = records(
    t.processBatch(
      batch([
        pkt(T0, tcp(cli, srv, F.SYN)),
        pkt(T0 + 1 * S, tcp(cli, srv, F.SYN)), // retransmit: same flow
        pkt(T0 + 2 * S, tcp(srv, cli, F.SYN | F.ACK)),
        pkt(T0 + 3 * S, tcp(cli, srv, F.FIN | F.ACK)), // half close, never completed
        pkt(T0 + 4 * S, tcp(cli, srv, F.SYN)),
      ]),
    ),
  );
  assert.equal(r.length, 1);
  assert.equal(r[0]!.pkts_toserver, 3);
  assert.equal(r[0]!.end_reason, 'fin');
  assert.equal(t.size, 1);
});

test('mid-stream flows: the sender of the first packet seen is the initiator', () => {
  const t = new FlowTable(cfg);
  t.processBatch(batch([pkt(T0, tcp(srv, cli, F.ACK | F.PSH, 500)), pkt(T0 + 1, tcp(cli, srv, F.ACK))]));
  const [f] = records(t.processBatch(batch([], { end: true })));
  assert.equal(f!.src_ip, srv.ip);
  assert.equal(f!.src_port, srv.port);
  assert.equal(f!.pkts_toserver, 1);
  assert.equal(f!.bytes_toserver, 554);
  assert.equal(f!.end_reason, 'end');
});

test('idle timeouts run on packet time: per protocol, on arrival and by sweep', () => {
  const t = new FlowTable(parseFlowTableConfig({ udpTimeoutS: 60, tcpEstablishedTimeoutS: 300, sweepIntervalS: 5 }));
  const dns = { ip: '10.0.0.53', port: 53 };
  // UDP: the second packet, 61 s later, belongs to a new flow.
  let r = records(t.processBatch(batch([pkt(T0, udp(cli, dns)), pkt(T0 + 61 * S, udp(dns, cli))])));
  assert.equal(r.length, 1);
  assert.equal(r[0]!.end_reason, 'timeout');
  assert.equal(r[0]!.last_seen_us, T0, 'last_seen is the last packet, not the expiry time');
  // The new flow was started by the reply: its initiator is the DNS server.
  r = records(t.processBatch(batch([], { end: true })));
  assert.equal(r[0]!.src_ip, dns.ip);

  // TCP established: still open at 299 s of idle, expired by a sweep driven by another flow's packets.
  const t2 = new FlowTable(parseFlowTableConfig({ sweepIntervalS: 5 }));
  t2.processBatch(batch([pkt(T0, tcp(cli, srv, F.SYN)), pkt(T0 + 1, tcp(srv, cli, F.SYN | F.ACK))]));
  const other = { ip: '10.9.9.9', port: 1 };
  assert.deepEqual(records(t2.processBatch(batch([pkt(T0 + 299 * S, udp(other, dns))]))), []);
  // The next sweep is due 5 s (packet time) after the previous one.
  assert.deepEqual(records(t2.processBatch(batch([pkt(T0 + 302 * S, udp(other, dns))]))), []);
  r = records(t2.processBatch(batch([pkt(T0 + 305 * S, udp(other, dns))])));
  assert.equal(r.length, 1);
  assert.equal(r[0]!.proto, 6);
  assert.equal(r[0]!.end_reason, 'timeout');
  // Another sensor's clock does not expire s1's flows.
  const t3 = new FlowTable(cfg);
  t3.processBatch(batch([pkt(T0, udp(cli, dns))]));
  assert.deepEqual(records(t3.processBatch(batch([pkt(T0 + 3600 * S, udp(other, dns))], { sensor: 's2' }))), []);
  assert.equal(t3.size, 2);
});

test('end_of_source flushes only that sensor, with end (or fin when both FINs were seen)', () => {
  const t = new FlowTable(cfg);
  t.processBatch(batch([pkt(T0, udp(cli, srv))], { sensor: 'a' }));
  t.processBatch(
    batch([pkt(T0, tcp(cli, srv, F.FIN | F.ACK)), pkt(T0 + 1, tcp(srv, cli, F.FIN | F.ACK))], { sensor: 'b' }),
  );
  t.processBatch(batch([pkt(T0, udp(cli, srv))], { sensor: 'c' }));
  const r = records(t.processBatch(batch([pkt(T0 + 5, udp(srv, cli))], { sensor: 'a', end: true })));
  assert.deepEqual(
    r.map((f) => [f.sensor, f.end_reason, f.pkts_toserver + f.pkts_toclient]),
    [['a', 'end', 2]],
  );
  assert.deepEqual(
    records(t.processBatch(batch([], { sensor: 'b', end: true }))).map((f) => f.end_reason),
    ['fin'],
  );
  assert.equal(t.size, 1);
});

test('bytes are wire lengths (orig_len), VLAN and vm are carried, flow ids are deterministic', () => {
  const run = () => {
    const t = new FlowTable(cfg);
    t.processBatch(batch([pkt(T0, udp(cli, srv, 10), 9000)], { vm: 'vm-1' }));
    return records(t.processBatch(batch([], { end: true })))[0]!;
  };
  const a = run();
  const b = run();
  assert.equal(a.bytes_toserver, 9000);
  assert.equal(a.vm, 'vm-1');
  assert.equal(a.flow_id, b.flow_id);
  // VLAN: a tagged copy is a different flow.
  const tagged = udp(cli, srv, 10);
  const vlanFrame = Buffer.concat([tagged.subarray(0, 12), Buffer.from([0x81, 0x00, 0x00, 0x2a]), tagged.subarray(12)]);
  const t = new FlowTable(cfg);
  t.processBatch(batch([pkt(T0, tagged), pkt(T0, vlanFrame)]));
  const r = records(t.processBatch(batch([], { end: true })));
  assert.deepEqual(r.map((f) => f.vlan).sort(), [0, 42]);
  assert.notEqual(r[0]!.flow_id, r[1]!.flow_id);
});

test('undecodable frames come back as errors, the rest of the batch still counts; non-IP is counted', () => {
  const t = new FlowTable(cfg);
  const good = udp(cli, srv);
  const arp = Buffer.concat([Buffer.alloc(12, 0xff), Buffer.from([0x08, 0x06]), Buffer.alloc(28)]);
  const bad = pkt(T0 + 1, good.subarray(0, 20));
  const r = t.processBatch(batch([pkt(T0, good), bad, pkt(T0 + 2, arp), pkt(T0 + 3, good)]));
  assert.equal(r.badFrames.length, 1);
  assert.equal(r.badFrames[0]!.packet, bad);
  assert.ok(ERR_FLOWS_BAD_FRAME.is(r.badFrames[0]!.error));
  assert.equal((r.badFrames[0]!.error.cause as { code: string }).code, 'CORDON_ERR_PCAP_DECODE_TRUNCATED');
  assert.equal(r.framesNonIp, 1);
  const [f] = records(t.processBatch(batch([], { end: true })));
  assert.equal(f!.pkts_toserver, 2);
  // A link type the decoder does not know: every frame is a bad frame.
  const u = new FlowTable(cfg).processBatch(batch([pkt(T0, good)], { linktype: 147 }));
  assert.equal(u.badFrames.length, 1);
});

test('non-first fragments count to the ports-0 flow of the address pair', () => {
  const t = new FlowTable(cfg);
  t.processBatch(
    batch([
      pkt(T0, udp(cli, srv, 1472)),
      pkt(T0 + 1, udpFragment(cli, srv, 1480, 1)),
      pkt(T0 + 2, udpFragment(cli, srv, 2960, 1)),
    ]),
  );
  const r = records(t.processBatch(batch([], { end: true })));
  assert.deepEqual(
    r.map((f) => [f.src_port, f.dst_port, f.pkts_toserver]),
    [
      [40000, 80, 1],
      [0, 0, 2],
    ],
  );
});

test('the flow cap closes the oldest flow and counts it', () => {
  const t = new FlowTable(parseFlowTableConfig({ maxFlows: 2 }));
  const r = t.processBatch(batch([1, 2, 3].map((i) => pkt(T0 + i, udp({ ip: `10.0.1.${i}`, port: i }, srv)))));
  assert.equal(r.flowsEvicted, 1);
  assert.equal(r.flows[0]!.record.src_ip, '10.0.1.1');
  assert.equal(t.size, 2);
});

// ---- snapshot / restore ----------------------------------------------------------------

/**
 * 300 overlapping conversations as one sensor's stream: TCP closed by FINs, reset, or left
 * established; UDP exchanges; and, every 60 conversations, a pause longer than every timeout.
 */
function generatedStream(): PacketBatch[] {
  const timed: Array<{ ts: number; frame: Buffer }> = [];
  let start = T0;
  for (let i = 0; i < 300; i++) {
    if (i % 60 === 59) start += 400 * S;
    start += 20_000;
    const c = { ip: `10.1.${i >> 8}.${i & 255}`, port: 30000 + i };
    const s = { ip: `10.0.0.${2 + (i % 3)}`, port: [80, 443, 53][i % 3]! };
    const steps: Buffer[] =
      i % 5 === 2
        ? [tcp(c, s, F.SYN), tcp(s, c, F.RST | F.ACK)]
        : i % 5 === 3
          ? [udp(c, s, 40), udp(s, c, 200)]
          : i % 5 === 4
            ? [tcp(c, s, F.SYN), tcp(s, c, F.SYN | F.ACK), tcp(c, s, F.ACK), tcp(c, s, F.PSH | F.ACK, 300)]
            : [
                tcp(c, s, F.SYN),
                tcp(s, c, F.SYN | F.ACK),
                tcp(c, s, F.ACK),
                tcp(c, s, F.PSH | F.ACK, 120),
                tcp(s, c, F.PSH | F.ACK, 900),
                tcp(c, s, F.FIN | F.ACK),
                tcp(s, c, F.FIN | F.ACK),
                tcp(c, s, F.ACK),
              ];
    steps.forEach((frame, k) => timed.push({ ts: start + k * 7_000, frame }));
  }
  timed.sort((a, b) => a.ts - b.ts);
  const frames = timed.map((f, seq) => ({ ts_us: f.ts, seq, orig_len: f.frame.length, frame: f.frame }));
  const out: PacketBatch[] = [];
  for (let i = 0; i < frames.length; i += 7)
    out.push({
      batch_id: `g:${i}`,
      sensor: 'generated',
      vm: null,
      linktype: 1,
      end_of_source: false,
      recovery_of: null,
      packets: frames.slice(i, i + 7),
    });
  out.push({
    batch_id: 'g:end',
    sensor: 'generated',
    vm: null,
    linktype: 1,
    end_of_source: true,
    recovery_of: null,
    packets: [],
  });
  return out;
}

/** 40 corpus captures as one sensor's stream: hundreds of flows, timeouts between captures. */
async function corpusStream(): Promise<PacketBatch[]> {
  const out: PacketBatch[] = [];
  let seq = 0;
  const CORPUS = corpusPath('suricata-verify');
  for (const dir of readdirSync(CORPUS).sort().slice(0, 40)) {
    let meta: { pcap: string; pcap_info: { linktypes: number[] } };
    try {
      meta = JSON.parse(readFileSync(join(CORPUS, dir, 'expected.json'), 'utf8'));
    } catch {
      continue;
    }
    const frames = [];
    for await (const f of readCapture(join(CORPUS, dir, meta.pcap)))
      frames.push({ ts_us: f.ts_us, seq: seq++, orig_len: f.orig_len, frame: f.frame });
    for (let i = 0; i < frames.length; i += 7) {
      out.push({
        batch_id: `c:${i}`,
        sensor: 'corpus',
        vm: null,
        linktype: meta.pcap_info.linktypes[0]!,
        end_of_source: false,
        recovery_of: null,
        packets: frames.slice(i, i + 7),
      });
    }
  }
  out.push({
    batch_id: 'c:end',
    sensor: 'corpus',
    vm: null,
    linktype: 1,
    end_of_source: true,
    recovery_of: null,
    packets: [],
  });
  return out;
}

const streams = [
  { what: 'generated conversations', skip: false as const, batches: () => Promise.resolve(generatedStream()) },
  { what: 'the suricata-verify captures', skip: skipWithoutCorpus('suricata-verify'), batches: corpusStream },
];
for (const { what, skip, batches: load } of streams) {
  test(
    `snapshot/restore on ${what}: first part, snapshot, restore in a new table, rest == all in one go`,
    { skip },
    async () => {
      const batches = await load();
      const whole = new FlowTable(cfg);
      const expected = batches.flatMap((b) => records(whole.processBatch(b)));
      assert.ok(expected.length > 30, `${expected.length} flows`);
      assert.ok(expected.some((f) => f.end_reason === 'timeout') && expected.some((f) => f.end_reason === 'fin'));
      for (const cut of [1, Math.floor(batches.length / 3), Math.floor(batches.length / 2), batches.length - 2]) {
        const first = new FlowTable(cfg);
        const got = batches.slice(0, cut).flatMap((b) => records(first.processBatch(b)));
        const snap = first.snapshot();
        const second = FlowTable.restore(snap, cfg);
        assert.equal(second.size, first.size);
        assert.deepEqual(second.snapshot(), snap, 'restore then snapshot gives the same bytes');
        got.push(...batches.slice(cut).flatMap((b) => records(second.processBatch(b))));
        assert.deepEqual(got, expected, `cut at batch ${cut}`);
      }
    },
  );
}

test("a snapshot carries the partition's recovery state beside the table, and gives it back", () => {
  const t = new FlowTable(cfg);
  t.processBatch(batch([pkt(T0, udp(cli, srv))]));
  const recovery: [string, number | null, number | null, number | null][] = [
    ['vm1\u0000agent:a', T0, null, null],
    ['vm1\u0000agent:b', null, T0 - 5_000, T0],
  ];
  const snap = t.snapshot(recovery);
  const back = FlowTable.restoreState(snap, cfg);
  assert.deepEqual(back.recovery, recovery);
  assert.deepEqual(back.table.snapshot(back.recovery), snap, 'restore then snapshot gives the same bytes');
  // none kept: the bytes are those of a table alone, and nothing comes back
  assert.deepEqual(t.snapshot([]), t.snapshot());
  assert.deepEqual(FlowTable.restoreState(t.snapshot(), cfg).recovery, []);
});

test('a snapshot that cannot be trusted is a typed error', () => {
  const t = new FlowTable(cfg);
  t.processBatch(batch([pkt(T0, udp(cli, srv))]));
  const good = t.snapshot();
  const cases = [
    Buffer.alloc(0),
    Buffer.from('garbage'),
    Buffer.concat([good.subarray(0, 7), deflateRawSync('{"v":3,"clocks":[],"flows":[]}')]),
    Buffer.concat([good.subarray(0, 7), deflateRawSync('{"v":1,"clocks":[],"flows":[["x"]]}')]),
    Buffer.concat([good.subarray(0, 7), Buffer.from('{"v":1,"clocks":[],"flows":[]}')]),
    good.subarray(0, good.length - 3),
    // a recovery state of the wrong shape, or larger than any filter keeps
    Buffer.concat([good.subarray(0, 7), deflateRawSync('{"v":2,"clocks":[],"flows":[],"recovery":[["k",1,2]]}')]),
    Buffer.concat([
      good.subarray(0, 7),
      deflateRawSync('{"v":2,"clocks":[],"flows":[],"recovery":[["k","1",null,null]]}'),
    ]),
    Buffer.concat([
      good.subarray(0, 7),
      deflateRawSync(
        JSON.stringify({ v: 2, clocks: [], flows: [], recovery: Array(65_537).fill(['k', 1, null, null]) }),
      ),
    ]),
  ];
  for (const c of cases)
    assert.throws(
      () => FlowTable.restore(c, cfg),
      (e) => ERR_FLOWS_SNAPSHOT.is(e),
      c.toString('latin1'),
    );
});

test('a version 1 snapshot (before the Community ID) restores, the id recomputed from the tuple', () => {
  const v1 = {
    v: 1,
    clocks: [['s1', T0, T0 + 10 * S]],
    flows: [
      [
        's1',
        null,
        Buffer.from('k').toString('base64'),
        true,
        0,
        17,
        cli.ip,
        cli.port,
        srv.ip,
        srv.port,
        T0,
        T0,
        1,
        0,
        60,
        0,
        0,
        0,
        0,
      ],
    ],
  };
  const t = FlowTable.restore(Buffer.concat([Buffer.from('CFLOWS\n'), deflateRawSync(JSON.stringify(v1))]), cfg);
  const [f] = t.flushAll();
  assert.equal(
    f!.record.community_id,
    communityId({ proto: 17, srcIp: cli.ip, dstIp: srv.ip, srcPort: cli.port, dstPort: srv.port }),
  );
});

test('every flow carries its Community ID, the same from either direction', () => {
  const t = new FlowTable(cfg);
  t.processBatch(batch([pkt(T0, udp(cli, srv))]));
  const [f] = t.flushAll();
  assert.equal(
    f!.record.community_id,
    communityId({ proto: 17, srcIp: srv.ip, dstIp: cli.ip, srcPort: srv.port, dstPort: cli.port }),
  );
  assert.match(f!.record.community_id!, /^1:[A-Za-z0-9+/]{27}=$/);
});

test('config: defaults filled, unknown keys rejected by name', () => {
  const c = parseFlowsConfig({});
  assert.equal(c.groupId, 'cordon-flows');
  assert.equal(c.table.tcpEstablishedTimeoutS, 300);
  assert.equal(c.table.udpTimeoutS, 60);
  assert.throws(
    () => parseFlowsConfig({ table: { udpTimeout: 5 } }),
    (e) => ERR_FLOWS_CONFIG.is(e) && /"table\.udpTimeout"/.test((e as Error).message),
  );
  assert.throws(
    () => parseFlowsConfig({ grupId: 'x' }),
    (e) => ERR_FLOWS_CONFIG.is(e) && /"grupId"/.test((e as Error).message),
  );
  assert.throws(
    () => parseFlowsConfig({ table: { udpTimeoutS: -1 } }),
    (e) => ERR_FLOWS_CONFIG.is(e) && /table\.udpTimeoutS/.test((e as Error).message),
  );
});
