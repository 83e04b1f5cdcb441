import { scanOnce } from '@cordon/fim';
import { createContext, silentLogger } from '@cordon/runtime';
import { mkdirSync, writeFileSync, existsSync } from 'node:fs';
const t = '/tmp/fimperf/tree', s='/tmp/fimperf/state';
if (!existsSync(t)) { for (let d=0; d<200; d++) { mkdirSync(`${t}/d${d}`, {recursive:true}); for (let i=0;i<500;i++) writeFileSync(`${t}/d${d}/f${i}`, `file ${d} ${i}\n`.repeat(1 + (i % 20))); } }
const ctx = createContext({ log: silentLogger });
for (const mode of ['init','check','check']) { const t0=Date.now(); const r = await scanOnce({ policy: { paths:[t], hashConcurrency: 2 }, stateDir: s, ctx, mode }); console.log(mode, Date.now()-t0, 'ms', r.events.length, r.stats.entries); }
