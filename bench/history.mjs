#!/usr/bin/env node
// Appends the JSON result lines of a bench run (bench/lib/result.mjs) to the history table at
// the end of bench/RESULTS.md, one row per bench with the date and the commit measured, so a
// regression shows as a row that got worse:
//   npm run bench -- bus-kafka | tee run.log; node bench/history.mjs run.log
//   npm run bench | node bench/history.mjs            (reads stdin without a file)
// Lines that are not result JSON are ignored; a run with none is an error (exit 1).
import { execFileSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const RESULTS = process.env.BENCH_RESULTS_FILE ?? join(here, 'RESULTS.md');
const HEADING = '## History';
const HEAD = [
  '| date | commit | bench | metric | value | baseline | ratio | target | pass |',
  '|---|---|---|---|---:|---:|---:|---:|---|',
];

/** The result objects among a run's lines. */
export function parseResults(text) {
  const out = [];
  for (const line of text.split('\n')) {
    const t = line.trim();
    if (!t.startsWith('{"bench":')) continue;
    try {
      const r = JSON.parse(t);
      if (typeof r.bench === 'string' && typeof r.pass === 'boolean') out.push(r);
    } catch {
      // a line that only looks like one
    }
  }
  return out;
}

const cell = (x) => (x === null || x === undefined ? '-' : String(x).replaceAll('|', '\\|'));

export function historyRows(results, date, commit) {
  return results.map((r) =>
    [date, commit, r.bench, r.metric, r.value, r.baseline, r.ratio, r.target, r.pass ? 'PASS' : 'FAIL']
      .map(cell)
      .join(' | ')
      .replace(/^/, '| ')
      .replace(/$/, ' |'),
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const text = readFileSync(process.argv[2] ?? 0, 'utf8');
  const results = parseResults(text);
  if (results.length === 0) {
    console.error('history: no result lines ({"bench":…}) in the input');
    process.exit(1);
  }
  let commit = 'unknown';
  try {
    commit = execFileSync('git', ['rev-parse', '--short=10', 'HEAD'], { cwd: here, encoding: 'utf8' }).trim();
    // uncommitted changes other than the results file itself: the figures are not of that commit alone
    const dirty = execFileSync('git', ['status', '--porcelain', '--untracked-files=no'], {
      cwd: here,
      encoding: 'utf8',
    })
      .split('\n')
      .filter((l) => l.trim() && !l.endsWith('bench/RESULTS.md'));
    if (dirty.length > 0) commit += '+dirty';
  } catch {
    // not a git checkout
  }
  const date = new Date().toISOString().slice(0, 16).replace('T', ' ') + 'Z';
  const md = readFileSync(RESULTS, 'utf8');
  const rows = historyRows(results, date, commit);
  // the table is the file's last section: rows are appended at the end
  const prefix = md.includes(`\n${HEADING}\n`)
    ? md.endsWith('\n')
      ? ''
      : '\n'
    : `${md.endsWith('\n') ? '' : '\n'}\n${HEADING}\n\nEvery run recorded with \`node bench/history.mjs\` (the JSON result lines of \`npm run bench\`), oldest first.\n\n${HEAD.join('\n')}\n`;
  appendFileSync(RESULTS, prefix + rows.join('\n') + '\n');
  console.log(`history: ${rows.length} result(s) of ${commit} appended to ${RESULTS}`);
}
