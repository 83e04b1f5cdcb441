/**
 * Flow accounting checked against tshark on real captures, end to end: `cordon replay` of
 * every capture → packets topic (embedded bus) → flows service → sink → ClickHouse. The
 * flows table, read with a plain GROUP BY (no FINAL: nothing may be counted twice) and
 * aggregated per 5-tuple (flows that reuse a 5-tuple summed), must equal tshark's
 * conv,tcp and conv,udp tables, packets and bytes each way, for every conversation — and the
 * address-pair totals must equal conv,ip / conv,ipv6 (which also covers ICMP and other
 * protocols). Byte counts tshark prints rounded ("24 kB") are also checked exactly against
 * tshark's own per-frame dissection (frame.len of every frame with that 5-tuple).
 *
 * tshark is required: CI installs it (CORDON_SETUP_TEST=1 scripts/setup.sh). A missing tshark fails this test;
 * a missing corpus (../shared/corpus/suricata-verify, beside CI's checkout) skips it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { decodeFrame, readCapture, type CaptureFrame } from '@cordon/pcap';
import {
  applyTopics,
  loadConfig,
  openBus,
  openStore,
  pipelineOf,
  replayCapture,
  startService,
  waitCaughtUp,
} from '@cordon/cli';
import { corpusPath, skipWithoutCorpus } from '@cordon/testkit';
import { tshark, tsharkAvailable, tsharkBytes, type Conv, type TsharkView } from './lib/oracle.js';

const CORPUS = corpusPath('suricata-verify');
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

interface FlowRow {
  sensor: string;
  proto: number;
  src: string;
  sport: number;
  dst: string;
  dport: number;
  flows: string;
  pkts_ts: string;
  pkts_tc: string;
  bytes_ts: string;
  bytes_tc: string;
}

/** Run the real pipeline over the captures (sensor = capture name) and read the flows back from ClickHouse. */
async function pipelineFlows(captures: Array<{ name: string; file: string }>): Promise<Map<string, FlowRow[]>> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cordon-e2e-flows-'));
  const ctx = createContext({ log: silentLogger });
  const config = loadConfig({ env: {}, flags: { dataDir } });
  const bus = openBus(config, ctx);
  const store = await openStore(config, ctx);
  try {
    await applyTopics(bus);
    const services = [
      await startService('flows', { bus, ctx, config, store }),
      await startService('sink', { bus, ctx, config, store }),
    ];
    for (const c of captures) {
      const report = await replayCapture({ bus, ctx, file: c.file, sensor: c.name });
      assert.equal(report.error, undefined, `${c.name} replays without error`);
    }
    await waitCaughtUp(bus, pipelineOf(['flows', 'sink']), 300_000);
    for (const s of services) await s.stop();
    const rows = await store.query<FlowRow>(
      `SELECT sensor, proto, src_addr AS src, src_port AS sport, dst_addr AS dst, dst_port AS dport, count() AS flows,
              sum(pkts_toserver) AS pkts_ts, sum(pkts_toclient) AS pkts_tc, sum(bytes_toserver) AS bytes_ts, sum(bytes_toclient) AS bytes_tc
         FROM flows GROUP BY sensor, proto, src, sport, dst, dport`,
    );
    const dlq = await store.query<{ n: string }>('SELECT count() AS n FROM dlq');
    assert.equal(dlq[0]!.n, '0', 'no dead letters from valid captures');
    const bySensor = new Map<string, FlowRow[]>();
    for (const r of rows) bySensor.set(r.sensor, [...(bySensor.get(r.sensor) ?? []), r]);
    return bySensor;
  } finally {
    await bus.close();
    await store.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

function compare(
  what: string,
  ours: Totals,
  theirs: Totals,
  rounded: Map<string, { xy: string; yx: string }> | null,
  problems: string[],
): void {
  for (const [k, t] of theirs) {
    const o = ours.get(k);
    if (!o) {
      problems.push(`${what} ${k}: tshark has it, we do not`);
      continue;
    }
    for (const dir of ['xy', 'yx'] as const) {
      if (o[dir].frames !== t[dir].frames)
        problems.push(`${what} ${k} ${dir}: frames ours ${o[dir].frames} tshark ${t[dir].frames}`);
      const shown = rounded?.get(k)?.[dir];
      if (shown !== undefined) {
        if (tsharkBytes(o[dir].bytes) !== shown)
          problems.push(`${what} ${k} ${dir}: bytes ours ${o[dir].bytes} tshark shows ${shown}`);
      } else if (o[dir].bytes !== t[dir].bytes) {
        problems.push(`${what} ${k} ${dir}: bytes ours ${o[dir].bytes} tshark ${t[dir].bytes}`);
      }
    }
  }
  for (const k of ours.keys()) if (!theirs.has(k)) problems.push(`${what} ${k}: we have it, tshark does not`);
}

/** conv rows → totals; bytes shown rounded go to `rounded` (and a 0 placeholder in totals). */
function convTotals(
  proto: string,
  rows: Conv[],
  withPorts: boolean,
  rounded: Map<string, { xy: string; yx: string }>,
): Totals {
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
    if (f.tcpPorts.length === 2)
      add(t, 'tcp', `${f.ipSrc[0]}#${f.tcpPorts[0]}`, `${f.ipDst[0]}#${f.tcpPorts[1]}`, 1, f.len);
    if (f.udpPorts.length === 2)
      add(t, 'udp', `${f.ipSrc[0]}#${f.udpPorts[0]}`, `${f.ipDst[0]}#${f.udpPorts[1]}`, 1, f.len);
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

test(
  "cordon replay + flows + sink give tshark's per-flow packet and byte counts on the corpus",
  { timeout: 900_000, skip: skipWithoutCorpus('suricata-verify') },
  async (t) => {
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
    const compared: {
      name: string;
      conversations: number;
      frames: number;
      flows: number;
      tcp: number;
      udp: number;
      ipPairs: number;
      rounded: number;
    }[] = [];
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
    const chosen: Array<{ name: string; file: string; frames: number; view: TsharkView }> = [];
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
      if (reason) skipped.push({ name: c.name, reason });
      else chosen.push({ name: c.name, file: c.file, frames: frames.length, view });
    }

    const flowsBySensor = await pipelineFlows(chosen);
    for (const c of chosen) {
      const view = c.view;
      const rows = flowsBySensor.get(c.name) ?? [];
      const ours: Totals = new Map();
      const oursByAddr: Totals = new Map();
      for (const f of rows) {
        const proto = f.proto === 6 ? 'tcp' : f.proto === 17 ? 'udp' : null;
        const [pts, ptc, bts, btc] = [f.pkts_ts, f.pkts_tc, f.bytes_ts, f.bytes_tc].map(Number) as [
          number,
          number,
          number,
          number,
        ];
        if (proto) {
          add(ours, proto, `${f.src}#${f.sport}`, `${f.dst}#${f.dport}`, pts, bts);
          add(ours, proto, `${f.dst}#${f.dport}`, `${f.src}#${f.sport}`, ptc, btc);
        }
        add(oursByAddr, 'ip', f.src, f.dst, pts, bts);
        add(oursByAddr, 'ip', f.dst, f.src, ptc, btc);
      }
      const before = problems.length;
      const rounded = new Map<string, { xy: string; yx: string }>();
      const theirs = new Map([
        ...convTotals('tcp', view.tcp, true, rounded),
        ...convTotals('udp', view.udp, true, rounded),
      ]);
      compare(`${c.name} conv`, ours, theirs, rounded, problems);
      compare(`${c.name} frames`, ours, fieldTotals(view), null, problems);
      const roundedIp = new Map<string, { xy: string; yx: string }>();
      const theirsIp = new Map([
        ...convTotals('ip', view.ip, false, roundedIp),
        ...convTotals('ip', view.ipv6, false, roundedIp),
      ]);
      compare(`${c.name} conv,ip`, oursByAddr, theirsIp, roundedIp, problems);
      if (problems.length === before) {
        compared.push({
          name: c.name,
          conversations: theirs.size,
          frames: c.frames,
          flows: rows.reduce((n, r) => n + Number(r.flows), 0),
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
  },
);
