#!/usr/bin/env node
// The end of `npm run bench`: one line per benchmark that ran — its judged figure, the target
// and PASS/FAIL from its JSON result line, "no target" for those without one, ERROR with the
// exit code for one that failed to finish (the run goes on past it, so one broken benchmark
// does not hide the others' figures). Exit 1 when some benchmark ended in an error.
//   node bench/lib/summary.mjs DIR SECONDS     DIR holds NAME.log and NAME.rc per benchmark, in run order (order.txt)
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseResults } from '../history.mjs';

const [dir, seconds] = process.argv.slice(2);
const names = readFileSync(join(dir, 'order.txt'), 'utf8').split('\n').filter(Boolean);
const num = (x) => (typeof x === 'number' ? Number(x.toPrecision(4)).toLocaleString('en-US') : '-');
let errors = 0;
let pass = 0;
let fail = 0;
const rows = names.map((name) => {
  const rc = Number(readFileSync(join(dir, `${name}.rc`), 'utf8').trim());
  const log = readFileSync(join(dir, `${name}.log`), 'utf8');
  const results = parseResults(log);
  const r = results.at(-1);
  let word;
  if (rc !== 0) {
    errors++;
    word = `ERROR (exit ${rc})`;
  } else if (!r) word = /^\{"bench":/m.test(log) ? 'no target' : 'no result line';
  else if (r.target === null || r.target === undefined || r.pass === null) word = 'no target';
  else {
    if (r.pass) pass++;
    else fail++;
    word = r.pass ? 'PASS' : 'FAIL';
  }
  const figure = r
    ? `value ${num(r.value)}${r.baseline !== null ? `, baseline ${num(r.baseline)}, ratio ${num(r.ratio)}` : ''}`
    : '';
  const target = r && typeof r.target === 'number' ? `target ${num(r.target)}` : '';
  return [name, figure, target, word];
});
const w = [0, 1, 2].map((i) => Math.max(...rows.map((row) => row[i].length)));
console.log(`bench summary (${names.length} benchmarks in ${(Number(seconds) / 60).toFixed(1)} min):`);
for (const row of rows)
  console.log(`  ${row[0].padEnd(w[0])}  ${row[1].padEnd(w[1])}  ${row[2].padEnd(w[2])}  ${row[3]}`);
console.log(`${pass} PASS, ${fail} FAIL, ${errors} ERROR`);
process.exit(errors > 0 ? 1 : 0);
