// The whole path end to end, in one process on the embedded bus: replay of the bench capture
// (bench/lib/dpi-capture.mjs) → `packets` → flows and dpi (full ET Open, `--workers N` consume
// loops) → `flows`, `alerts` → sink → embedded ClickHouse (chdb). Records/s and bytes/s from the
// replay's start to the last record stored, and when each stage had drained its input (its
// group's committed offsets at the topic's end): the stage that finished longest after its
// input was complete is the one that bounds the pipeline.
//   node bench/pipeline.mjs [--flows N] [--workers N]
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, loadavg, cpus } from 'node:os';
import { join, dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createEmbeddedBus } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, TOPICS } from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { createStore } from '@cordon/store';
import { generateCapture } from './lib/dpi-capture.mjs';
import { flowsStage } from '../services/flows/dist/src/index.js';
import { dpiStage } from '../services/dpi/dist/src/index.js';
import { sinkStage } from '../services/sink/dist/src/index.js';
import { replayCapture } from '../services/cli/dist/src/index.js';

const here = dirname(fileURLToPath(import.meta.url));
const etDir = resolve(here, '../../shared/corpus/et-open');
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const FLOWS = arg('--flows', 3000);
const WORKERS = arg('--workers', 1);

const dir = mkdtempSync(join(tmpdir(), 'cordon-bench-pipeline-'));
const ctx = createContext({ log: silentLogger });
const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
const stages = [];
let store = null;
try {
  await bus.admin.ensureTopics(allTopicSpecs());
  store = await createStore({ dataDir: join(dir, 'clickhouse'), ctx });

  // the capture as a pcap file, as `cordon replay` reads one
  const { frames } = generateCapture(FLOWS);
  const head = Buffer.alloc(24);
  head.writeUInt32LE(0xa1b2c3d4, 0);
  head.writeUInt16LE(2, 4);
  head.writeUInt16LE(4, 6);
  head.writeUInt32LE(65535, 16);
  head.writeUInt32LE(1, 20);
  const parts = [head];
  let wire = 0;
  for (const [f, ts] of frames) {
    const h = Buffer.alloc(16);
    h.writeUInt32LE(Math.floor(ts / 1e6), 0);
    h.writeUInt32LE(ts % 1e6, 4);
    h.writeUInt32LE(f.length, 8);
    h.writeUInt32LE(f.length, 12);
    parts.push(h, f);
    wire += f.length;
  }
  const pcap = join(dir, 'bench.pcap');
  writeFileSync(pcap, Buffer.concat(parts));
  const packets = frames.length;
  frames.length = 0;

  const ruleFiles = readdirSync(etDir)
    .filter((f) => f.endsWith('.rules'))
    .map((f) => join(etDir, f));
  stages.push(await runStage(flowsStage, { bus, ctx }));
  stages.push(await runStage(dpiStage, { bus, ctx, config: { ruleFiles, checksum: 'off', workers: WORKERS } }));
  stages.push(
    await runStage(sinkStage, {
      bus,
      ctx,
      config: { topics: [TOPICS.flows, TOPICS.alerts] },
      env: { store: async () => store },
    }),
  );

  /** Has `group` committed every partition of `topic` up to its end? */
  const drained = async (group, topic) => {
    const ends = await bus.admin.endOffsets(topic);
    const done = await bus.admin.committedOffsets(group, topic);
    for (const [p, end] of ends) if (end > 0n && (done.get(p) ?? 0n) < end) return false;
    return true;
  };
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const at = {};
  const replay = replayCapture({ bus, ctx, file: pcap, batchPackets: 256 }).then((r) => {
    at.replay = performance.now() - t0;
    return r;
  });
  const watch = [
    ['flows', 'cordon-flows', [TOPICS.packets], ['replay']],
    ['dpi', 'cordon-dpi', [TOPICS.packets], ['replay']],
    ['sink', 'cordon-sink', [TOPICS.flows, TOPICS.alerts], ['flows', 'dpi']],
  ];
  while (watch.some(([name]) => at[name] === undefined)) {
    await new Promise((r) => setTimeout(r, 20));
    for (const [name, group, topics, after] of watch) {
      if (at[name] !== undefined || after.some((u) => at[u] === undefined)) continue;
      let ok = true;
      for (const t of topics) ok &&= await drained(group, t);
      if (ok) at[name] = performance.now() - t0;
    }
    if (performance.now() - t0 > 600_000)
      throw new Error(`pipeline did not drain in 10 minutes: ${JSON.stringify(at)}`);
  }
  const rep = await replay;
  const cpu = process.cpuUsage(cpu0);
  const secs = at.sink / 1000;
  const flowsStored = Number((await store.query('SELECT count() AS n FROM flows'))[0]?.n ?? 0);
  const alertsStored = Number((await store.query('SELECT count() AS n FROM alerts'))[0]?.n ?? 0);
  // what each stage added after its input was complete
  const tail = {
    replay: at.replay,
    flows: at.flows - at.replay,
    dpi: at.dpi - at.replay,
    sink: at.sink - Math.max(at.flows, at.dpi),
  };
  const bound = Object.entries(tail).sort((a, b) => b[1] - a[1])[0][0];
  const s = (ms) => `${(ms / 1000).toFixed(2)} s`;
  console.log(
    `pipeline: ${FLOWS} flows, ${packets.toLocaleString('en-US')} packets, ${(wire / 1048576).toFixed(0)} MiB replayed (${rep.batches} batches); dpi workers ${WORKERS}; ${flowsStored} flows and ${alertsStored} alerts stored`,
  );
  console.log(
    `pipeline: drained at: replay ${s(at.replay)}, flows ${s(at.flows)}, dpi ${s(at.dpi)}, sink ${s(at.sink)}; after its input was complete: flows +${s(tail.flows)}, dpi +${s(tail.dpi)}, sink +${s(tail.sink)}; bounded by ${bound}`,
  );
  console.log(
    `pipeline: end to end ${Math.round(packets / secs).toLocaleString('en-US')} packets/s (${Math.round((flowsStored + alertsStored) / secs).toLocaleString('en-US')} records stored/s), ${((wire * 8) / secs / 1e9).toFixed(2)} Gbit/s (${(wire / secs / 1e6).toFixed(0)} MB/s); process CPU ${((cpu.user + cpu.system) / 1e6).toFixed(1)} s in ${secs.toFixed(1)} s wall, peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(0)} MiB; load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs`,
  );
  // issue 19 sets no target for this figure: the result line says so (no PASS/FAIL)
  console.log(
    JSON.stringify({
      bench: 'pipeline',
      metric: 'packets/s replay → flows + dpi → sink',
      value: Math.round(packets / secs),
      baseline: null,
      ratio: null,
      target: null,
      pass: null,
      bound,
    }),
  );
} finally {
  for (const st of stages.reverse()) await st.stop().catch(() => undefined);
  await store?.close();
  await bus.close();
  rmSync(dir, { recursive: true, force: true });
}
