// DPI throughput with the full ET Open set loaded, on a reproducible generated capture of
// mixed HTTP / DNS / TLS traffic, beside the raw multi-pattern scan of the same payload bytes
// (the matcher's physical limit). Also rule load time and resident memory.
//   node bench/dpi.mjs [--flows N]
import { writeFileSync } from 'node:fs';
import os from 'node:os';
import v8 from 'node:v8';
import vm from 'node:vm';
import { Rules, Engine, BatchBuilder } from '@cordon/native';
import { generateCapture } from './lib/dpi-capture.mjs';
import { etOpenSources } from './lib/et-open.mjs';
import { report } from './lib/result.mjs';

const flowsArg = process.argv.indexOf('--flows');
const FLOWS = flowsArg > 0 ? Number(process.argv[flowsArg + 1]) : 6000;

const mb = (n) => (n / 1048576).toFixed(0);
const rssBefore = process.memoryUsage().rss;
const sources = etOpenSources('dpi');
if (sources === null) process.exit(0);
let t0 = process.hrtime.bigint();
const rules = Rules.compile(sources);
const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
const rep = rules.report();
const rssRules = process.memoryUsage().rss;
console.log(
  `dpi: ET Open: ${rep.rules} rules, ${rep.loaded} loaded, ${rep.failed} failed; load ${loadMs.toFixed(0)} ms; RSS +${mb(rssRules - rssBefore)} MiB (total ${mb(rssRules)} MiB)`,
);

const { frames, payloads } = generateCapture(FLOWS);
const wireBytes = frames.reduce((s, [f]) => s + f.length, 0);
const payloadBuf = Buffer.concat(payloads);
console.log(
  `dpi: capture: ${frames.length} packets, ${mb(wireBytes)} MiB on the wire, ${mb(payloadBuf.length)} MiB payload (seeded, ${FLOWS} flows: 60% HTTP, 25% TLS, 15% DNS)`,
);

// --write-pcap FILE: also save the capture (for profiling the engine outside Node).
const pcapArg = process.argv.indexOf('--write-pcap');
if (pcapArg > 0) {
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(0xa1b2c3d4, 0);
  gh.writeUInt16LE(2, 4);
  gh.writeUInt16LE(4, 6);
  gh.writeUInt32LE(65535, 16);
  gh.writeUInt32LE(1, 20);
  const parts = [gh];
  for (const [f, ts] of frames) {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Math.floor(ts / 1e6), 0);
    h.writeUInt32LE(ts % 1e6, 4);
    h.writeUInt32LE(f.length, 8);
    h.writeUInt32LE(f.length, 12);
    parts.push(h, f);
  }
  writeFileSync(process.argv[pcapArg + 1], Buffer.concat(parts));
}

// Prebuild batches so the measurement is the engine, not the generator.
const batches = [];
let b = new BatchBuilder();
for (const [f, ts] of frames) {
  b.add(f, ts, 1);
  if (b.size >= 4096) {
    batches.push(b.take());
  }
}
if (b.size) batches.push(b.take());

const rssBeforeEngine = process.memoryUsage().rss;
const engine = new Engine(rules, { checksum: 'off' });
// Throughput per core is computed from the CPU time the process spent (user + system), so a
// busy shared machine does not count other processes' time; wall time is printed beside it.
const cpuSecs = (c) => (c.user + c.system) / 1e6;
let alerts = 0;
t0 = process.hrtime.bigint();
let c0 = process.cpuUsage();
for (const batch of batches) alerts += engine.processBatch(batch).length;
const heldFlows = engine.stats().active_flows;
const rssHeld = process.memoryUsage().rss;
alerts += engine.finish().length;
const secs = cpuSecs(process.cpuUsage(c0));
const wall = Number(process.hrtime.bigint() - t0) / 1e9;
// Steady state: more passes, each with a fresh engine over the same capture (the first pass
// also pays for growing the process heap, page by page, which a long-running sensor does
// once). Each engine pass is paired with a raw Hyperscan scan of the same payload bytes timed
// right after it, and the ratio is taken per pair: on a shared machine whose load shifts from
// second to second, a pair sees the same conditions, where two separate series need not.
// The median is reported, with the range.
const PASSES = 7;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const range = (xs, bytes) =>
  `${((bytes * 8) / Math.max(...xs) / 1e9).toFixed(2)}–${((bytes * 8) / Math.min(...xs) / 1e9).toFixed(2)}`;
const gbps = (wireBytes * 8) / secs / 1e9;
console.log(
  `dpi: engine: ${gbps.toFixed(2)} Gbit/s, ${(frames.length / secs / 1e3).toFixed(0)} kpackets/s per core (${secs.toFixed(2)} s CPU, ${wall.toFixed(2)} s wall, ${alerts} alerts); RSS ${mb(rssHeld)} MiB with ${heldFlows} flows held (engine state +${mb(rssHeld - rssBeforeEngine)} MiB; the rest is the generated capture in JS)`,
);

// Raw scans of the same payload bytes, each payload on its own (as the engine scans them).
const payOffs = new Uint32Array(payloads.length + 1);
for (let i = 0, o = 0; i < payloads.length; i++) {
  o += payloads[i].length;
  payOffs[i + 1] = o;
}
const haveHs = rules.rawScanHs(Buffer.alloc(0)) !== null;
v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');
const timed = (fn) => {
  // the harness's own garbage (the generated capture, its batches) is collected before each
  // timed pass, so no concurrent marking of it is charged to the engine or to the raw scan
  gc();
  const c = process.cpuUsage();
  const m = fn();
  return [cpuSecs(process.cpuUsage(c)), m];
};
if (haveHs) rules.rawScanHs(payloadBuf, payOffs); // warm-up (Hyperscan scratch, page faults)
const passSecs = [],
  hsSecs = [],
  pairRatios = [];
let hsMatches = 0;
for (let i = 0; i < PASSES; i++) {
  const e = new Engine(rules, { checksum: 'off' });
  const [es] = timed(() => {
    for (const batch of batches) e.processBatch(batch);
    e.finish();
  });
  passSecs.push(es);
  if (haveHs && !process.env.DPI_BENCH_ENGINE_ONLY) {
    const [hsS, m] = timed(() => rules.rawScanHs(payloadBuf, payOffs));
    hsSecs.push(hsS);
    hsMatches = m;
    pairRatios.push(hsS / es); // engine payload rate / raw rate = raw time / engine time
  }
}
const secs2 = median(passSecs);
const gbps2 = (wireBytes * 8) / secs2 / 1e9;
console.log(
  `dpi: engine, steady state (median of ${PASSES} passes, fresh engine each): ${gbps2.toFixed(2)} Gbit/s, ${(frames.length / secs2 / 1e3).toFixed(0)} kpackets/s per core (${secs2.toFixed(3)} s CPU; passes ${range(passSecs, wireBytes)} Gbit/s)`,
);

if (process.env.DPI_BENCH_ENGINE_ONLY) process.exit(0); // profiling aid: skip the baselines
const acSecs = [];
let acMatches = 0;
rules.rawScan(payloadBuf, payOffs);
for (let i = 0; i < 3; i++) {
  const [s, m] = timed(() => rules.rawScan(payloadBuf, payOffs));
  acSecs.push(s);
  acMatches = m;
}
const ac = {
  gbps: (payloadBuf.length * 8) / median(acSecs) / 1e9,
  matches: acMatches,
  range: range(acSecs, payloadBuf.length),
};
const engPayloadGbps = (payloadBuf.length * 8) / secs / 1e9;
const engPayloadGbps2 = (payloadBuf.length * 8) / secs2 / 1e9;
console.log(
  `dpi: raw multi-pattern scan, aho-corasick (same payload bytes): ${ac.gbps.toFixed(2)} Gbit/s, median of 3 (${ac.range}; ${ac.matches} matches)`,
);
let hs = null;
if (haveHs) {
  hs = { gbps: (payloadBuf.length * 8) / median(hsSecs) / 1e9, range: range(hsSecs, payloadBuf.length) };
  console.log(
    `dpi: raw multi-pattern scan, Hyperscan (same payload bytes): ${hs.gbps.toFixed(2)} Gbit/s, median of ${PASSES}, each right after an engine pass (${hs.range}; ${hsMatches} payload×pattern hits)`,
  );
} else {
  console.log(
    'dpi: raw multi-pattern scan, Hyperscan: not built (install libhyperscan-dev or libvectorscan-dev and rebuild native/)',
  );
}
const pct = (e, x) => ((e / x.gbps) * 100).toFixed(0);
console.log(
  `dpi: prefilter matcher ${rules.matcher()}; engine payload rate, first pass ${engPayloadGbps.toFixed(2)} Gbit/s = ${pct(engPayloadGbps, ac)}% of raw aho-corasick${hs ? `, ${pct(engPayloadGbps, hs)}% of raw Hyperscan` : ''}`,
);
const pairs = hs
  ? `, ${(median(pairRatios) * 100).toFixed(0)}% of raw Hyperscan (median of ${PASSES} engine/raw pairs, ${(Math.min(...pairRatios) * 100).toFixed(0)}–${(Math.max(...pairRatios) * 100).toFixed(0)}%)`
  : '';
console.log(
  `dpi: prefilter matcher ${rules.matcher()}; engine payload rate, steady state ${engPayloadGbps2.toFixed(2)} Gbit/s = ${pct(engPayloadGbps2, ac)}% of raw aho-corasick${pairs}`,
);
// The result: the pair whose engine/raw ratio is the median (its two rates, so the ratio is
// that median), target 60% of raw Hyperscan (issue 19).
if (hs) {
  const order = pairRatios.map((r, i) => [r, i]).sort((a, b) => a[0] - b[0]);
  const mid = order[order.length >> 1][1];
  report({
    bench: 'dpi',
    metric: 'payload Gbit/s per core, steady state (median engine/raw pair)',
    value: (payloadBuf.length * 8) / passSecs[mid] / 1e9,
    baseline: (payloadBuf.length * 8) / hsSecs[mid] / 1e9,
    target: 0.6,
    unit: 'Gbit/s',
    note: `baseline: raw Hyperscan scan of the same payload bytes; load average ${os.loadavg()[0].toFixed(1)}`,
  });
} else {
  report({
    bench: 'dpi',
    metric: 'payload Gbit/s per core',
    value: engPayloadGbps2,
    baseline: null,
    target: 0.6,
    note: 'no Hyperscan build: no baseline',
  });
}
