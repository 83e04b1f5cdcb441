/**
 * Flow accounting checked against tshark on real captures: pcap reader → decoder → flow
 * table, aggregated per 5-tuple (flows that reuse a 5-tuple summed), must equal tshark's
 * conv,tcp and conv,udp tables, packets and bytes each way, for every conversation — and the
 * address-pair totals must equal conv,ip / conv,ipv6 (which also covers ICMP and other
 * protocols). Byte counts tshark prints rounded ("24 kB") are also checked exactly against
 * tshark's own per-frame dissection (frame.len of every frame with that 5-tuple).
 *
 * tshark is required: CI installs it (CORDON_SETUP_TEST=1 scripts/setup.sh). A missing tshark fails this test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { decodeFrame, readCapture, type CaptureFrame } from '@cordon/pcap';
import type { FlowRecord, PacketBatch } from '@cordon/schemas';
import { FlowTable, parseFlowTableConfig } from '../src/index.js';
import { tshark, tsharkAvailable, tsharkBytes, type Conv, type TsharkView } from './oracle.js';

const CORPUS = process.env.CORDON_CORPUS ?? '/work/shared/corpus/suricata-verify';
const MIN_COMPARED = 20;

interface Dir {
  frames: number;
  bytes: number;
}
/** "proto|endpoint X|endpoint Y" with X < Y, and the counts X→Y and Y→X. */
type Totals = Map<string, { xy: Dir; yx: Dir }>;

function add(t: Totals, proto: string, from: string, to: string, frames: number, bytes: number): void {
  const forward = from < to;
  const key = forward ? `${proto}|${from}|${to}` : `${proto}|${to}|${from}`;
  let e = t.get(key);
  if (!e) t.set(key, (e = { xy: { frames: 0, bytes: 0 }, yx: { frames: 0, bytes: 0 } }));
  const d = forward ? e.xy : e.yx;
  d.frames += frames;
  d.bytes += bytes;
}

/** tshark prints "addr:port" for IPv4 and IPv6 alike; the port is after the last colon. */
function endpoint(s: string): string {
  const i = s.lastIndexOf(':');
  return `${s.slice(0, i).replace(/^\[|\]$/g, '')}#${s.slice(i + 1)}`;
}

async function ourFlows(frames: CaptureFrame[], linktype: number): Promise<FlowRecord[]> {
  const table = new FlowTable(parseFlowTableConfig({}));
  const flows: FlowRecord[] = [];
  const batch = (packets: CaptureFrame[], end: boolean): PacketBatch => ({
    batch_id: `t:${packets[0]?.seq ?? 'end'}`,
    sensor: 'tshark-test',
    vm: null,
    linktype,
    end_of_source: end,
    packets: packets.map((f) => ({ ts_us: f.ts_us, seq: f.seq, orig_len: f.orig_len, frame: f.frame })),
  });
  for (let i = 0; i < frames.length; i += 64) {
    const r = table.processBatch(batch(frames.slice(i, i + 64), false));
    assert.deepEqual(r.badFrames.map((b) => b.error.message), [], 'every frame decodes');
    flows.push(...r.flows.map((f) => f.record));
  }
  flows.push(...table.processBatch(batch([], true)).flows.map((f) => f.record));
  assert.equal(table.size, 0, 'end_of_source flushed every flow');
  return flows;
}

function compare(what: string, ours: Totals, theirs: Totals, rounded: Map<string, { xy: string; yx: string }> | null, problems: string[]): void {
  for (const [k, t] of theirs) {
    const o = ours.get(k);
    if (!o) {
      problems.push(`${what} ${k}: tshark has it, we do not`);
      continue;
    }
    for (const dir of ['xy', 'yx'] as const) {
      if (o[dir].frames !== t[dir].frames) problems.push(`${what} ${k} ${dir}: frames ours ${o[dir].frames} tshark ${t[dir].frames}`);
      const shown = rounded?.get(k)?.[dir];
      if (shown !== undefined) {
        if (tsharkBytes(o[dir].bytes) !== shown) problems.push(`${what} ${k} ${dir}: bytes ours ${o[dir].bytes} tshark shows ${shown}`);
      } else if (o[dir].bytes !== t[dir].bytes) {
        problems.push(`${what} ${k} ${dir}: bytes ours ${o[dir].bytes} tshark ${t[dir].bytes}`);
      }
    }
  }
  for (const k of ours.keys()) if (!theirs.has(k)) problems.push(`${what} ${k}: we have it, tshark does not`);
}

/** conv rows → totals; bytes shown rounded go to `rounded` (and a 0 placeholder in totals). */
function convTotals(proto: string, rows: Conv[], withPorts: boolean, rounded: Map<string, { xy: string; yx: string }>): Totals {
  const t: Totals = new Map();
  for (const c of rows) {
    const a = withPorts ? endpoint(c.a) : c.a;
    const b = withPorts ? endpoint(c.b) : c.b;
    add(t, proto, a, b, c.framesAtoB, c.bytesAtoB.exact ?? 0);
    add(t, proto, b, a, c.framesBtoA, c.bytesBtoA.exact ?? 0);
    if (c.bytesAtoB.exact === null || c.bytesBtoA.exact === null) {
      const key = a < b ? `${proto}|${a}|${b}` : `${proto}|${b}|${a}`;
      if (t.get(key)!.xy.frames + t.get(key)!.yx.frames !== c.framesAtoB + c.framesBtoA) {
        // Two rows for one 5-tuple with rounded bytes: the sum of floors is not the floor of
        // the sum, so such a capture cannot be checked through the table alone.
        throw new Error(`duplicate conversation rows with rounded bytes for ${key}`);
      }
      const ab = c.bytesAtoB.exact === null ? c.bytesAtoB.display : tsharkBytes(c.bytesAtoB.exact);
      const ba = c.bytesBtoA.exact === null ? c.bytesBtoA.display : tsharkBytes(c.bytesBtoA.exact);
      rounded.set(key, a < b ? { xy: ab, yx: ba } : { xy: ba, yx: ab });
    }
  }
  return t;
}

/** Exact per-5-tuple totals from tshark's per-frame dissection (frames with one IP and one L4 header). */
function fieldTotals(view: TsharkView): Totals {
  const t: Totals = new Map();
  for (const f of view.frames) {
    if (f.ipSrc.length !== 1) continue;
    if (f.tcpPorts.length === 2) add(t, 'tcp', `${f.ipSrc[0]}#${f.tcpPorts[0]}`, `${f.ipDst[0]}#${f.tcpPorts[1]}`, 1, f.len);
    if (f.udpPorts.length === 2) add(t, 'udp', `${f.ipSrc[0]}#${f.udpPorts[0]}`, `${f.ipDst[0]}#${f.udpPorts[1]}`, 1, f.len);
  }
  return t;
}

function skipReason(frames: CaptureFrame[], view: TsharkView): string | null {
  for (const f of frames) {
    const d = decodeFrame(f.linktype, f.frame);
    if (d.kind === 'ip' && d.fragment) {
      return `IP fragments (frame ${f.seq + 1}): tshark reassembles them and counts the datagram in conv,tcp/udp once, at the last fragment; we count fragments, non-first ones to the ports-0 flow`;
    }
  }
  for (const f of view.frames) {
    if (f.ipSrc.length > 1 || f.tcpPorts.length > 2 || f.udpPorts.length > 2) {
      return `nested IP/L4 headers (frame ${f.number}: a tunnel or an ICMP error quoting a packet): tshark's conv taps count the inner header's conversation too; we account frames to their outer header only`;
    }
  }
  if (new Set(frames.map((f) => f.linktype)).size > 1) return 'several link types in one file';
  return null;
}

test('flow accounting equals tshark conv,tcp / conv,udp / conv,ip / conv,ipv6 on the corpus', async (t) => {
  const version = await tsharkAvailable();
  assert.ok(
    version,
    'tshark is not installed: run the setup script (CORDON_SETUP_TEST=1 bash scripts/setup.sh, as CI does; or apt-get install -y tshark); this test does not skip without it',
  );
  const captures = readdirSync(CORPUS)
    .sort()
    .flatMap((dir) => {
      try {
        const meta = JSON.parse(readFileSync(join(CORPUS, dir, 'expected.json'), 'utf8')) as { pcap: string };
        return [{ name: dir, file: join(CORPUS, dir, meta.pcap) }];
      } catch {
        return [];
      }
    });
  const limit = Number(process.env.CORDON_TSHARK_LIMIT ?? captures.length);
  const compared: { name: string; conversations: number; frames: number; flows: number; tcp: number; udp: number; ipPairs: number; rounded: number }[] = [];
  const skipped: { name: string; reason: string }[] = [];
  const problems: string[] = [];

  // Two tshark processes at a time (the machine has two cores).
  const queue = captures.slice(0, limit);
  const views = new Map<string, Promise<TsharkView>>();
  const viewOf = (i: number) => {
    const c = queue[i];
    if (c && !views.has(c.file)) views.set(c.file, tshark(c.file));
    return c ? views.get(c.file)! : null;
  };
  for (let i = 0; i < queue.length; i++) {
    const c = queue[i]!;
    const view = await viewOf(i)!;
    void viewOf(i + 1);
    void viewOf(i + 2);
    views.delete(c.file);
    const frames: CaptureFrame[] = [];
    for await (const f of readCapture(c.file)) frames.push(f);
    assert.equal(view.frames.length, frames.length, `${c.name}: tshark and the reader see the same number of frames`);
    const reason = skipReason(frames, view);
    if (reason) {
      skipped.push({ name: c.name, reason });
      continue;
    }
    const flows = await ourFlows(frames, frames[0]?.linktype ?? 1);
    const ours: Totals = new Map();
    const oursByAddr: Totals = new Map();
    for (const f of flows) {
      const proto = f.proto === 6 ? 'tcp' : f.proto === 17 ? 'udp' : null;
      if (proto) {
        add(ours, proto, `${f.src_ip}#${f.src_port}`, `${f.dst_ip}#${f.dst_port}`, f.pkts_toserver, f.bytes_toserver);
        add(ours, proto, `${f.dst_ip}#${f.dst_port}`, `${f.src_ip}#${f.src_port}`, f.pkts_toclient, f.bytes_toclient);
      }
      add(oursByAddr, 'ip', f.src_ip, f.dst_ip, f.pkts_toserver, f.bytes_toserver);
      add(oursByAddr, 'ip', f.dst_ip, f.src_ip, f.pkts_toclient, f.bytes_toclient);
    }
    const before = problems.length;
    const rounded = new Map<string, { xy: string; yx: string }>();
    const theirs = new Map([...convTotals('tcp', view.tcp, true, rounded), ...convTotals('udp', view.udp, true, rounded)]);
    compare(`${c.name} conv`, ours, theirs, rounded, problems);
    compare(`${c.name} frames`, ours, fieldTotals(view), null, problems);
    const roundedIp = new Map<string, { xy: string; yx: string }>();
    const theirsIp = new Map([...convTotals('ip', view.ip, false, roundedIp), ...convTotals('ip', view.ipv6, false, roundedIp)]);
    compare(`${c.name} conv,ip`, oursByAddr, theirsIp, roundedIp, problems);
    if (problems.length === before) {
      compared.push({
        name: c.name,
        conversations: theirs.size,
        frames: frames.length,
        flows: flows.length,
        tcp: view.tcp.length,
        udp: view.udp.length,
        ipPairs: theirsIp.size,
        rounded: rounded.size + roundedIp.size,
      });
    }
  }
  const summary = {
    tshark: version,
    compared: compared.length,
    conversations: compared.reduce((n, c) => n + c.conversations, 0),
    frames: compared.reduce((n, c) => n + c.frames, 0),
    flows: compared.reduce((n, c) => n + c.flows, 0),
    tcpRows: compared.reduce((n, c) => n + c.tcp, 0),
    udpRows: compared.reduce((n, c) => n + c.udp, 0),
    ipPairs: compared.reduce((n, c) => n + c.ipPairs, 0),
    roundedByteRows: compared.reduce((n, c) => n + c.rounded, 0),
    skipped,
  };
  t.diagnostic(JSON.stringify(summary));
  if (process.env.CORDON_TSHARK_SUMMARY) console.log(JSON.stringify(summary, null, 1));
  assert.deepEqual(problems.slice(0, 50), [], `${problems.length} differences from tshark`);
  assert.ok(compared.length >= MIN_COMPARED, `only ${compared.length} captures compared, need ${MIN_COMPARED}`);
});
