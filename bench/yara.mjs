// YARA scan throughput: the agent's native scanner (YARA-X in native/cordon_scan.node, one
// thread, files in batches as the agent hands them over) beside Debian's `yara` command
// (libyara 4, one thread) on the same files with the same rules, in the same run. The files are
// the system's own: regular files of /usr/lib and /usr/bin (ELF libraries and programs, scripts)
// up to CORDON_BENCH_YARA_MB (default 256) MiB, read once beforehand so that both scan from
// the page cache and the figure is the scanner's, not the disk's. Both must find the same
// matches. Rounds alternate (native, yara, native, yara, …). The figure is MB per CPU-second
// (this process's CPU for the native scanner, the child's for yara, from /proc/self/stat), the
// median of the rounds: one thread each, so on an idle machine it is the MB/s of the wall
// clock, and on a shared one (other builds running) it does not depend on who got the cores.
// The wall-clock MB/s of every round is printed beside it.
//   node bench/yara.mjs [ROUNDS]
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { YaraRules } from '@cordon/native';
import { builtinRuleSources, walkFiles } from '@cordon/malware';
import { report } from './lib/result.mjs';

const ROUNDS = Number(process.argv[2] ?? 5);
const LIMIT = Number(process.env.CORDON_BENCH_YARA_MB ?? 256) * 1048576;
const MAX_FILE = 32 << 20;

function ensureYara() {
  if (spawnSync('yara', ['--version']).status === 0) return;
  if (process.getuid?.() === 0 && spawnSync('apt-get', ['--version']).status === 0) {
    console.log('installing Debian yara (the baseline)…');
    spawnSync('apt-get', ['install', '-y', '-qq', '--no-install-recommends', 'yara'], {
      stdio: 'inherit',
      env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
    });
  }
  if (spawnSync('yara', ['--version']).status !== 0) throw new Error('yara is not installed (apt-get install yara)');
}

async function corpus() {
  const files = [];
  let bytes = 0;
  for await (const p of walkFiles(['/usr/lib', '/usr/bin'])) {
    let size;
    try {
      size = readFileSync(p).length; // also warms the page cache
    } catch {
      continue;
    }
    if (size === 0 || size > MAX_FILE) continue;
    files.push(p);
    bytes += size;
    if (bytes >= LIMIT) break;
  }
  return { files, bytes };
}

const TICK = 100; // USER_HZ: /proc's clock ticks a second on Linux
/** CPU seconds of the children this process has waited for (cutime + cstime). */
function childrenCpu() {
  const f = readFileSync('/proc/self/stat', 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  // fields 16 and 17 of stat(5), counted from 3 after the command name
  return (Number(rest[13]) + Number(rest[14])) / TICK;
}
const selfCpu = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

const TEST_RULE = `
rule Bench_Marker : bench
{
  strings:
    $a = "cordon-bench-marker"
    $b = { 7F 45 4C 46 02 01 01 ?? ?? ?? ?? ?? ?? ?? ?? ?? 03 00 }
  condition:
    $a or ($b at 0 and filesize < 4096)
}
`;

async function main() {
  ensureYara();
  const work = mkdtempSync(join(tmpdir(), 'cordon-bench-yara-'));
  try {
    const sources = [...builtinRuleSources(), { name: 'bench.yar', namespace: 'bench', text: TEST_RULE }];
    const ruleFiles = sources.map((s, i) => {
      const f = join(work, `r${i}.yar`);
      writeFileSync(f, s.text);
      return f;
    });
    const { files, bytes } = await corpus();
    const list = join(work, 'files.txt');
    writeFileSync(list, `${files.join('\n')}\n`);
    const rules = YaraRules.compile(sources);
    console.log(
      `corpus: ${files.length} files, ${(bytes / 1048576).toFixed(1)} MiB from /usr/lib and /usr/bin; ${rules.ruleCount} rules (Cordon's own + a bench rule)`,
    );

    const native = async () => {
      const found = new Set();
      const c0 = selfCpu();
      const t0 = process.hrtime.bigint();
      for (let i = 0; i < files.length; i += 16) {
        const res = await rules.scanFiles(files.slice(i, i + 16), { maxBytes: MAX_FILE, timeoutMs: 60_000 });
        for (const r of res) {
          if (r.status !== 'ok') throw new Error(`${r.path}: ${r.status} ${r.error ?? ''}`);
          for (const m of r.matches) found.add(`${m.rule} ${r.path}`);
        }
      }
      return { s: Number(process.hrtime.bigint() - t0) / 1e9, cpu: selfCpu() - c0, found };
    };
    const yara = () => {
      const c0 = childrenCpu();
      const t0 = process.hrtime.bigint();
      const r = spawnSync('yara', ['-p', '1', '-N', '--scan-list', ...ruleFiles, list], {
        encoding: 'utf8',
        maxBuffer: 256 << 20,
      });
      const s = Number(process.hrtime.bigint() - t0) / 1e9;
      if (r.status !== 0) throw new Error(`yara failed (${r.status}): ${r.stderr}`);
      const found = new Set(r.stdout.split('\n').filter(Boolean));
      return { s, cpu: childrenCpu() - c0, found };
    };

    const ns = [];
    const ys = [];
    let nFound = null;
    let yFound = null;
    for (let round = 0; round < ROUNDS; round++) {
      const a = await native();
      const b = yara();
      ns.push(a.cpu);
      ys.push(b.cpu);
      nFound = a.found;
      yFound = b.found;
      console.log(
        `round ${round + 1}: native ${(bytes / 1e6 / a.cpu).toFixed(1)} MB/CPU-s (${a.cpu.toFixed(2)} CPU-s, wall ${(bytes / 1e6 / a.s).toFixed(1)} MB/s), ` +
          `yara ${(bytes / 1e6 / b.cpu).toFixed(1)} MB/CPU-s (${b.cpu.toFixed(2)} CPU-s, wall ${(bytes / 1e6 / b.s).toFixed(1)} MB/s)`,
      );
    }
    const same = nFound.size === yFound.size && [...nFound].every((x) => yFound.has(x));
    console.log(`matches: native ${nFound.size}, yara ${yFound.size}: ${same ? 'the same' : 'DIFFERENT'}`);
    if (!same) {
      console.log('only native:', [...nFound].filter((x) => !yFound.has(x)).slice(0, 10));
      console.log('only yara:', [...yFound].filter((x) => !nFound.has(x)).slice(0, 10));
    }
    const median = (xs) => [...xs].sort((p, q) => p - q)[Math.floor(xs.length / 2)];
    const mb = bytes / 1e6;
    report({
      bench: 'yara',
      metric: 'MB/s',
      value: same ? mb / median(ns) : 0,
      baseline: mb / median(ys),
      target: 0.8,
      unit: 'MB/s',
      note: `MB per CPU-second, one thread each, ${files.length} files, ${(bytes / 1e6).toFixed(0)} MB, yara ${spawnSync('yara', ['--version'], { encoding: 'utf8' }).stdout.trim()}${same ? '' : '; MATCHES DIFFER'}`,
    });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

await main();
