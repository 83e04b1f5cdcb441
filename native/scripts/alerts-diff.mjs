#!/usr/bin/env node
// Differential harness for the DPI engine: the alerts of every suricata-verify capture, with
// the capture's own rules and with all of ET Open, written one file per (capture, rule set)
// so that the output of two builds can be compared with `diff -r`. A refactor of the engine
// must leave that diff empty.
//
//   node native/scripts/alerts-diff.mjs --out DIR [--corpus DIR] [--filter SUBSTR]
//                                       [--rulesets own,et-open,sv-all] [--order] [--verify-cli N]
//   diff -r BEFORE_DIR AFTER_DIR
//
// Each capture runs exactly as `cordon dpi --rules RULES --pcap PCAP
// [--no-checksum-validation]` runs it (the same runCapture of @cordon/dpi, a fresh engine per
// capture), but ET Open is compiled once for all captures instead of once per capture (~2 s
// each). `--verify-cli N` checks that claim: for the N captures with the most alerts it runs
// the real `./cordon dpi` and compares its output with the files written.
//
// Output: DIR/<corpus>/<capture>.<ruleset>.jsonl, the EVE lines sorted (every field kept);
// with --order also <capture>.<ruleset>.order.jsonl in emission order (stricter: a change of
// evaluation order shows there even when the set of alerts is the same); DIR/et-open.load.txt,
// ET Open's load report.
//
// A third rule set, sv-all (every capture folder's rules compiled as one set), is on by
// default too: ET Open raises few alerts on these captures, and the folders' rules together
// put many rules of every keyword (flowbits, thresholds, HTTP buffers) on every capture. A line "ERROR: ..." records a capture that failed part-way.
//
// The corpus is ../shared/corpus beside the checkout (or two levels up, for a git worktree
// under wt/), CORDON_CORPUS or --corpus; without it the harness says so and exits 0.
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { execFileSync } from 'node:child_process';
import { Rules } from '@cordon/native';
import { runCapture } from '@cordon/dpi';

const repo = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const SUITES = ['suricata-verify', 'suricata-verify-tier2'];

const { values: opt } = parseArgs({
  options: {
    out: { type: 'string' },
    corpus: { type: 'string' },
    filter: { type: 'string', default: '' },
    rulesets: { type: 'string', default: 'own,et-open,sv-all' },
    order: { type: 'boolean', default: false },
    'verify-cli': { type: 'string', default: '0' },
  },
});
if (!opt.out) {
  console.error('usage: alerts-diff.mjs --out DIR [--corpus DIR] [--filter SUBSTR] [--rulesets own,et-open,sv-all] [--order] [--verify-cli N]');
  process.exit(2);
}
const rulesets = opt.rulesets.split(',').filter(Boolean);
for (const r of rulesets) if (!['own', 'et-open', 'sv-all'].includes(r)) throw new Error(`unknown rule set "${r}" (own, et-open, sv-all)`);

const corpus = [opt.corpus, process.env.CORDON_CORPUS, join(repo, '../shared/corpus'), join(repo, '../../shared/corpus')].find(
  (d) => d && existsSync(join(d, 'suricata-verify')),
);
if (!corpus) {
  console.log('alerts-diff: skipped: no corpus (../shared/corpus, CORDON_CORPUS or --corpus)');
  process.exit(0);
}
const etDir = join(corpus, 'et-open');
const etFiles = existsSync(etDir) ? readdirSync(etDir).filter((f) => f.endsWith('.rules')).sort().map((f) => join(etDir, f)) : [];
if (rulesets.includes('et-open') && !etFiles.length) {
  console.log(`alerts-diff: skipped: no ET Open rules under ${etDir}`);
  process.exit(0);
}

/** Every capture folder: { suite, name, dir, pcap, rules, checksum }. */
const captures = [];
for (const suite of SUITES) {
  const sdir = join(corpus, suite);
  if (!existsSync(sdir)) continue;
  for (const name of readdirSync(sdir).sort()) {
    const dir = join(sdir, name);
    if (!existsSync(join(dir, 'expected.json')) || !name.includes(opt.filter)) continue;
    const e = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8'));
    captures.push({ suite, name, dir, pcap: join(dir, e.pcap), rules: join(dir, e.rules), checksum: e.checksum_validation === false ? 'off' : 'auto' });
  }
}

const readRules = (files) => files.map((f) => ({ name: f, text: readFileSync(f, 'utf8') }));
const outFile = (c, rs, suffix = '') => join(opt.out, c.suite, `${c.name}.${rs}${suffix}.jsonl`);
for (const s of SUITES) mkdirSync(join(opt.out, s), { recursive: true });

/**
 * Run one capture; returns the EVE lines in emission order. A capture that fails part-way
 * (a corrupt file) keeps the alerts raised before the failure, then an ERROR line.
 */
async function run(rules, c) {
  const lines = [];
  try {
    await runCapture(rules, c.pcap, { checksum: c.checksum }, (l) => lines.push(l));
  } catch (err) {
    lines.push(`ERROR: ${err.message}`);
  }
  return lines;
}

function write(c, rs, lines) {
  const text = (ls) => (ls.length ? ls.join('\n') + '\n' : '');
  writeFileSync(outFile(c, rs), text([...lines].sort()));
  if (opt.order) writeFileSync(outFile(c, rs, '.order'), text(lines));
}

const t0 = Date.now();
const totals = {};
let et;
if (rulesets.includes('et-open')) {
  et = Rules.compile(readRules(etFiles));
  const rep = et.report();
  const load = rep.failures.map((f) => `sid ${f.sid ?? '?'} ${f.file}:${f.line}: ${f.reason}`);
  load.push(JSON.stringify({ rules: rep.rules, loaded: rep.loaded, failed: rep.failed }));
  writeFileSync(join(opt.out, 'et-open.load.txt'), load.join('\n') + '\n');
  console.log(`alerts-diff: ET Open ${JSON.stringify({ rules: rep.rules, loaded: rep.loaded, failed: rep.failed })} compiled in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
}
const svAllFiles = [...new Set(captures.map((c) => c.rules))];
const svAll = rulesets.includes('sv-all') ? Rules.compile(readRules(svAllFiles)) : undefined;
const ruleFiles = (c, rs) => (rs === 'et-open' ? etFiles : rs === 'sv-all' ? svAllFiles : [c.rules]);
for (const c of captures) {
  for (const rs of rulesets) {
    const rules = rs === 'et-open' ? et : rs === 'sv-all' ? svAll : Rules.compile(readRules([c.rules]));
    const lines = await run(rules, c);
    write(c, rs, lines);
    totals[rs] = (totals[rs] ?? 0) + lines.length;
    c[rs] = lines.length;
  }
}
console.log(`alerts-diff: ${captures.length} captures, ${JSON.stringify(totals)} alert lines, ${((Date.now() - t0) / 1000).toFixed(0)} s, written to ${opt.out}`);

// The in-process run must be what `cordon dpi` prints: compare, for each rule set, on the N
// captures with the most alerts (captures that fail to read are left out: the CLI stops).
const nVerify = Number(opt['verify-cli']);
if (nVerify > 0) {
  const cli = join(repo, 'cordon');
  let bad = 0;
  for (const rs of rulesets) {
    const ok = captures.filter((c) => !readFileSync(outFile(c, rs), 'utf8').startsWith('ERROR: '));
    const busiest = ok.sort((a, b) => b[rs] - a[rs] || a.name.localeCompare(b.name)).slice(0, nVerify);
    for (const c of busiest) {
      const argv = ['dpi', ...ruleFiles(c, rs).flatMap((f) => ['--rules', f]), '--pcap', c.pcap];
      if (c.checksum === 'off') argv.push('--no-checksum-validation');
      let lines;
      try {
        lines = execFileSync(cli, argv, { encoding: 'utf8', maxBuffer: 1 << 30, stdio: ['ignore', 'pipe', 'ignore'] }).split('\n').filter((l) => l.startsWith('{'));
      } catch (err) {
        lines = [`ERROR: ${err.message}`];
      }
      const want = readFileSync(outFile(c, rs), 'utf8');
      const got = lines.length ? [...lines].sort().join('\n') + '\n' : '';
      const same = got === want;
      if (!same) bad++;
      console.log(`alerts-diff: cordon dpi ${c.suite}/${c.name} ${rs}: ${lines.length} lines, ${same ? 'same' : 'DIFFERENT'}`);
    }
  }
  if (bad) {
    console.log(`alerts-diff: ${bad} CLI runs differ from the in-process run`);
    process.exit(1);
  }
}
