import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { isIP } from 'node:net';
import { forEachLine, LogInspector, loadFail2ban, parseInspectorConfig, translatePython } from '../src/index.js';

const SHARED = process.env.CORDON_SHARED ?? join(import.meta.dirname, '..', '..', '..', '..', '..', 'shared');
const LOGS = join(SHARED, 'corpus', 'logs', 'fail2ban', 'logs');
const ETC = '/etc/fail2ban';
const f2bRegex = spawnSync('sh', ['-c', 'command -v fail2ban-regex'], { encoding: 'utf8' }).stdout.trim();
const haveF2b = f2bRegex !== '' && existsSync(join(ETC, 'filter.d'));

test('Python regular expressions become JavaScript ones', () => {
  assert.equal(translatePython('(?P<user>\\S+) (?P=user)').source, '(?<user>\\S+) \\k<user>');
  assert.equal(translatePython('a{,3}\\Z').source, 'a{0,3}(?![\\s\\S])');
  assert.equal(translatePython('[]x]').source, '[\\]x]');
  const t = translatePython('^(?i)failed');
  assert.equal(t.flags, 'i');
  const c = translatePython('(?P<g>a)?(?(g)b|c)');
  assert.equal(c.source, '(?<g>a)?(?:b|c)');
  assert.equal(c.notes.length, 1);
  assert.throws(() => translatePython('(?x) a b'), /verbose/);
});

test(
  "Debian's fail2ban filters load, and every one that cannot is reported with its reason",
  { skip: haveF2b ? false : 'fail2ban is not installed (apt-get install fail2ban)' },
  () => {
    const load = loadFail2ban({ dir: ETC });
    const filters = load.reports.filter((r) => !r.include);
    const loaded = filters.filter((r) => r.loaded);
    for (const r of filters) if (!r.loaded) assert.ok(r.reason && r.reason.length > 10, `${r.filter} has a reason`);
    assert.ok(loaded.length >= filters.length * 0.9, `${loaded.length} of ${filters.length} loaded`);
    assert.equal(load.rules.length, loaded.length);
    const sshd = load.reports.find((r) => r.filter === 'sshd')!;
    assert.ok(sshd.loaded && sshd.threshold!.maxretry >= 1);
  },
);

/**
 * The same log through fail2ban-regex and through Cordon with that one fail2ban filter loaded:
 * the failures (address and line) must be the same, filter by filter. Two differences are
 * allowed and counted: fail2ban resolves host names (usedns) and drops those that do not
 * resolve, where Cordon reports the name as written; and a filter whose multi-line parts were
 * refused (the load report says which) finds fewer than fail2ban, never others.
 */
test(
  'filter by filter, Cordon finds what fail2ban-regex finds on the shared corpus logs',
  { skip: haveF2b && existsSync(LOGS) ? false : 'needs fail2ban-regex and the shared corpus' },
  () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-f2b-'));
    const norm = (s: string): string => s.replace(/\s+/g, ' ').trim();
    const rows: string[] = [];
    let compared = 0;
    try {
      for (const f of readdirSync(LOGS).sort()) {
        const filter = f.replace(/-journal$/, '');
        if (!existsSync(join(ETC, 'filter.d', `${filter}.conf`))) {
          rows.push(`${f}: no such filter in this fail2ban`);
          continue;
        }
        const lines = readFileSync(join(LOGS, f), 'utf8')
          .split('\n')
          .filter((l) => l && !l.startsWith('#'));
        const file = join(dir, f);
        writeFileSync(file, `${lines.join('\n')}\n`);
        const out = execFileSync(f2bRegex, ['-o', '<ip> | <msg>', file, join(ETC, 'filter.d', `${filter}.conf`)], {
          encoding: 'utf8',
        });
        const theirs = out
          .split('\n')
          .filter((l) => l.includes(' | '))
          .map((l) => `${l.slice(0, l.indexOf(' | '))} | ${norm(l.slice(l.indexOf(' | ') + 3))}`);
        const inspector = LogInspector.fromConfig(
          parseInspectorConfig({ builtinRules: false, fail2ban: { dir: ETC, filters: [filter] } }),
        );
        const report = inspector.fail2ban!.reports[0]!;
        const st = inspector.newState();
        const ours: string[] = [];
        forEachLine(file, (line) => {
          for (const d of inspector.inspect(st, line, { refMs: Date.UTC(2024, 0, 1) }).detections)
            ours.push(`${d.srcIp} | ${norm(line)}`);
        });
        const left = new Map<string, number>();
        for (const x of theirs) left.set(x, (left.get(x) ?? 0) + 1);
        const extra: string[] = [];
        let hostnames = 0;
        for (const x of ours) {
          const n = left.get(x) ?? 0;
          if (n > 0) left.set(x, n - 1);
          else if (isIP(x.slice(0, x.indexOf(' | '))) === 0) hostnames++;
          else extra.push(x);
        }
        const missed = [...left.values()].reduce((a, b) => a + b, 0);
        const partial = !report.loaded || report.notes.some((n) => /refused|multi-line/.test(n));
        rows.push(
          `${f}: fail2ban ${theirs.length}, cordon ${ours.length}, missed ${missed}, extra ${extra.length}, unresolved names ${hostnames}${partial ? ` (partial load: ${report.reason ?? report.notes.filter((n) => /refused/.test(n)).length + ' regexes refused'})` : ''}`,
        );
        assert.deepEqual(extra, [], `${f}: Cordon found failures fail2ban did not`);
        if (!partial) assert.equal(missed, 0, `${f}: Cordon missed failures fail2ban found`);
        compared++;
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
      process.stdout.write(`# fail2ban-regex beside Cordon:\n${rows.map((r) => `#   ${r}`).join('\n')}\n`);
    }
    assert.ok(compared >= 15);
  },
);
