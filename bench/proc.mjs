#!/usr/bin/env node
// Process monitoring: exec events per second the agent sustains with the rules loaded, beside
// the exec rate of the same load generator with no agent, measured in the same run.
//
//   npx tsc -b services/agent services/procinspect && node bench/proc.mjs [EXECS]   (root)
//
// The load generator: two shells each forking and executing /bin/true EXECS/2 times as fast
// as they can (no other work). Baseline: their exec rate alone. Then the same with the real
// agent stage (process monitoring on, the kernel's connector, its default limits raised so its
// rate limit does not decide the figure) and the procinspect stage (Cordon's rules and every
// Sigma Linux process_creation rule of the corpus) on the embedded bus, in this process — the
// path of `cordon up`: connector → /proc read → tree → Avro → signature → bus → decode →
// signature check → rules. The figure: the generator's execs that went all the way through
// procinspect, per second, from the generator's start to the last one inspected; events lost
// (dropped, or not seen) lower it. Ratio = figure / baseline: what watching every exec costs
// the machine's exec throughput on these 2 cores (agent and generator share them). Target 0.5.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus, readAll } from '../packages/bus/dist/src/index.js';
import { createContext, silentLogger } from '../packages/runtime/dist/src/index.js';
import { allTopicSpecs, codecFor, TOPICS } from '../packages/schemas/dist/src/index.js';
import { runStage } from '../packages/stage/dist/src/index.js';
import { agentStage, makeEnrollToken } from '../services/agent/dist/src/index.js';
import { procinspectStage } from '../services/procinspect/dist/src/index.js';
import { report } from './lib/result.mjs';

const EXECS = Number(process.argv[2] ?? 20_000);
const SHELLS = 2;
const sigma = join(process.env.CORDON_SHARED ?? join(import.meta.dirname, '..', '..', 'shared'), 'corpus', 'sigma');
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

if (process.getuid?.() !== 0) {
  console.log('proc: needs root (the kernel process events connector); skipped');
  process.exit(0);
}

/** The generator: SHELLS shells of EXECS/SHELLS execs each. Resolves with their pids and seconds. */
function generate() {
  const per = Math.round(EXECS / SHELLS);
  const t0 = performance.now();
  const shells = Array.from({ length: SHELLS }, () => {
    const sh = spawn('/bin/sh', ['-c', `i=0; while [ $i -lt ${per} ]; do /bin/true; i=$((i+1)); done`], {
      stdio: 'ignore',
    });
    return { pid: sh.pid, done: new Promise((r) => sh.on('exit', r)) };
  });
  return {
    pids: new Set(shells.map((s) => s.pid)),
    t0,
    done: Promise.all(shells.map((s) => s.done)).then(() => (performance.now() - t0) / 1000),
    count: per * SHELLS,
  };
}

// ---- baseline: the generator alone (twice; the better run, as the machine is shared)
let baseline = 0;
for (let i = 0; i < 2; i++) {
  const g = generate();
  const s = await g.done;
  baseline = Math.max(baseline, g.count / s);
}

// ---- the agent and procinspect on the embedded bus
const dir = mkdtempSync(join(tmpdir(), 'cordon-bench-proc-'));
const ctx = createContext({ log: silentLogger });
const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
await bus.admin.ensureTopics(allTopicSpecs());
const inspector = await runStage(procinspectStage, {
  bus,
  ctx,
  config: {
    maxBatchRecords: 2000,
    rules: { sigmaDirs: ['rules', 'rules-emerging-threats', 'rules-threat-hunting'].map((d) => join(sigma, d)) },
  },
});
const rules = inspector.inspector.rules.rules.length;
const agent = await runStage(agentStage, {
  bus,
  ctx,
  config: {
    token: makeEnrollToken(randomBytes(32), 'vm-bench', 3_600_000, Date.now()),
    stateDir: join(dir, 'state'),
    enforce: { enabled: false },
    netconf: { enabled: false },
    verdictWaitS: 0,
    processes: { enabled: true, mode: 'connector', maxEventsPerSecond: 1_000_000, maxQueue: 1_048_576 },
  },
});
await sleep(500);
const before = inspector.inspector.counters.events;
const g = generate();
const genSeconds = await g.done;
// wait for the pipeline to drain: procinspect's count stops moving
let last = -1;
let lastAt = performance.now();
for (;;) {
  const n = inspector.inspector.counters.events;
  if (n !== last) {
    last = n;
    lastAt = performance.now();
  } else if (performance.now() - lastAt > 1500) break;
  await sleep(100);
}
const elapsed = (lastAt - g.t0) / 1000;
// the generator's execs that reached the processes topic, and all through procinspect
let seen = 0;
let incomplete = 0;
const codec = codecFor(TOPICS.processes);
for (const r of await readAll(bus, TOPICS.processes)) {
  const e = codec.decode(r.value);
  if (e.kind === 'exec' && g.pids.has(e.ppid)) {
    seen++;
    if (e.incomplete) incomplete++;
  }
}
const inspected = inspector.inspector.counters.events - before;
const st = agent.processes.status();
await agent.stop();
await inspector.stop();
await bus.close();
rmSync(dir, { recursive: true, force: true });

const through = Math.min(seen, inspected);
const value = through / elapsed;
console.log(
  `proc: ${g.count} execs by the generator in ${genSeconds.toFixed(2)} s with the agent watching ` +
    `(${(g.count / genSeconds).toFixed(0)}/s); ${seen} seen on ${TOPICS.processes} (${incomplete} gone before /proc was read), ` +
    `${inspected} process starts inspected by ${rules} rules, last ${elapsed.toFixed(2)} s after the start; ` +
    `agent: ${st.events} events read, ${st.dropped} dropped (queue ${st.dropped_queue}, kernel ${st.dropped_kernel})`,
);
report({
  bench: 'proc',
  metric: 'exec events/s through agent + rules',
  value,
  baseline,
  target: 0.5,
  unit: 'execs/s',
  note: `baseline: the same generator's execs/s with no agent; ${g.count - seen} of ${g.count} execs not seen`,
});
