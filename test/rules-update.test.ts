/**
 * `cordon rules update` / `cordon rules list` / `ruleSets` in a policy, through the real CLI
 * (child processes), against a rule vendor played by a local HTTP server started here that
 * serves archives built here. Refused updates (tampered, oversized, path traversal) must end
 * with their error code and leave the installed set as it was.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildTarGz, serveFiles } from '@cordon/testkit';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function cordon(args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { cwd, env: { ...process.env, CORDON_KAFKA_BROKERS: '', CORDON_LOG_LEVEL: 'warn' } },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}

const RULES = (n: number) =>
  Array.from(
    { length: n },
    (_, i) =>
      `alert http any any -> $HOME_NET any (msg:"vendor rule ${i}"; flow:to_server; http.uri; content:"/v${i}/"; sid:${9200000 + i}; rev:1;)`,
  ).join('\n') + '\n';

const archive = (rules: string, extra: Array<{ path: string; data?: string; type?: string; link?: string }> = []) =>
  buildTarGz([
    { path: 'rules/', type: '5' },
    { path: 'rules/vendor-web.rules', data: rules },
    { path: 'rules/classification.config', data: '# none\n' },
    ...extra,
  ]);

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');

/** What `rules list --format json` says about a set, plus every installed file's bytes. */
async function state(
  dataDir: string,
  cwd: string,
): Promise<{ list: Array<Record<string, unknown>>; files: Record<string, string> }> {
  const r = await cordon(['rules', 'list', '--format', 'json', '--data-dir', dataDir], cwd);
  assert.equal(r.code, 0, r.stderr);
  const files: Record<string, string> = {};
  const root = join(dataDir, 'rules', 'vendor');
  for (const v of readdirSync(root)) {
    if (v === 'current') continue;
    for (const f of readdirSync(join(root, v))) files[`${v}/${f}`] = readFileSync(join(root, v, f), 'utf8');
  }
  return {
    list: r.stdout
      .trim()
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, unknown>),
    files,
  };
}

test(
  'cordon rules update installs a served archive, refuses tampered, oversized and traversing ones, and keeps the previous version',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-rules-'));
    const dataDir = join(dir, 'data');
    const served = new Map<string, Buffer>();
    const server = await serveFiles(served);
    const url = server.url('/open/vendor.tar.gz');
    try {
      const v1 = archive(RULES(3));
      served.set('/open/vendor.tar.gz', v1);
      served.set('/open/vendor.tar.gz.md5', Buffer.from(`${md5(v1)}\n`));

      // the happy path
      const up1 = await cordon(['rules', 'update', '--source', url, '--data-dir', dataDir], dir);
      assert.equal(up1.code, 0, up1.stderr);
      assert.match(
        up1.stdout,
        /^vendor: installed \d{8}T\d{6}Z-[0-9a-f]{12} from http:\/\/127\.0\.0\.1:\d+\/open\/vendor\.tar\.gz: 3 rules \(0 disabled\) in 1 rule files; verified: md5/m,
      );
      const table = await cordon(['rules', 'list', '--data-dir', dataDir], dir);
      assert.equal(table.code, 0, table.stderr);
      assert.match(
        table.stdout,
        /^name\s+version\s+source\s+fetched\s+files\s+rules\s+disabled\s+verified\s+sha256\s+previous$/m,
      );
      assert.match(
        table.stdout,
        new RegExp(
          `^vendor\\s+\\d{8}T\\d{6}Z-[0-9a-f]{12}\\s+${url.replace(/[.?]/g, '\\$&')}\\s+\\S+\\s+2\\s+3\\s+0\\s+md5 \\(checksum file\\)\\s+${createHash('sha256').update(v1).digest('hex')}`,
          'm',
        ),
      );
      const installed = await state(dataDir, dir);
      assert.equal(installed.list.length, 1);
      assert.equal(installed.list[0]!.rules, 3);

      // tampered: the archive changed under its published .md5
      served.set('/open/vendor.tar.gz', archive(RULES(3).replace('vendor rule 0', 'pwned')));
      const tampered = await cordon(['rules', 'update', '--source', url, '--data-dir', dataDir], dir);
      assert.equal(tampered.code, 1);
      assert.match(
        tampered.stderr,
        /CORDON_ERR_RULES_CHECKSUM: .*its md5 is [0-9a-f]{32}, but .*vendor\.tar\.gz\.md5 says/,
      );
      // …or against a pinned --sha256
      const pinned = await cordon(
        ['rules', 'update', '--source', url, '--sha256', 'b'.repeat(64), '--no-checksum-file', '--data-dir', dataDir],
        dir,
      );
      assert.equal(pinned.code, 1);
      assert.match(pinned.stderr, /CORDON_ERR_RULES_CHECKSUM: .*given with --sha256/);
      assert.deepEqual(await state(dataDir, dir), installed, 'the tampered archive changed nothing');

      // oversized: over the download limit, and a gzip bomb over the unpacked limit
      const big = archive(RULES(3), [
        { path: 'rules/noise.rules', data: `# ${randomBytes(300_000).toString('hex')}\n` },
      ]);
      served.set('/open/vendor.tar.gz', big);
      served.set('/open/vendor.tar.gz.md5', Buffer.from(md5(big)));
      const oversized = await cordon(
        ['rules', 'update', '--source', url, '--max-download-mb', '0.1', '--data-dir', dataDir],
        dir,
      );
      assert.equal(oversized.code, 1);
      assert.match(
        oversized.stderr,
        /CORDON_ERR_RULES_TOO_LARGE: .* is larger than 0\.1 MiB \(the --max-download-mb limit\)/,
      );
      const bomb = archive(RULES(3), [{ path: 'rules/zeros.rules', data: '\n'.repeat(8 * 1048576) }]);
      served.set('/open/vendor.tar.gz', bomb);
      served.set('/open/vendor.tar.gz.md5', Buffer.from(md5(bomb)));
      assert.ok(bomb.length < 64 * 1024, `the bomb is small (${bomb.length} bytes)`);
      const bombed = await cordon(
        ['rules', 'update', '--source', url, '--max-unpacked-mb', '2', '--data-dir', dataDir],
        dir,
      );
      assert.equal(bombed.code, 1);
      assert.match(bombed.stderr, /CORDON_ERR_RULES_TOO_LARGE: .*unpacks to more than 2 MiB/);
      assert.deepEqual(await state(dataDir, dir), installed, 'the oversized archives changed nothing');

      // path traversal
      const evil = archive(RULES(4), [{ path: 'rules/../../../escaped.rules', data: RULES(1) }]);
      served.set('/open/vendor.tar.gz', evil);
      served.set('/open/vendor.tar.gz.md5', Buffer.from(md5(evil)));
      const traversal = await cordon(['rules', 'update', '--source', url, '--data-dir', dataDir], dir);
      assert.equal(traversal.code, 1);
      assert.match(
        traversal.stderr,
        /CORDON_ERR_RULES_UNSAFE_ENTRY: .*entry "rules\/\.\.\/\.\.\/\.\.\/escaped\.rules" has a "\.\." component/,
      );
      assert.equal(
        existsSync(join(dir, 'escaped.rules')) ||
          existsSync(join(dataDir, 'escaped.rules')) ||
          existsSync(join(dataDir, 'rules', 'escaped.rules')),
        false,
      );
      assert.deepEqual(await state(dataDir, dir), installed, 'the traversing archive changed nothing');

      // a good second update: the new version is current, the first is kept as previous
      const v2 = archive(RULES(5));
      served.set('/open/vendor.tar.gz', v2);
      served.set('/open/vendor.tar.gz.md5', Buffer.from(md5(v2)));
      const up2 = await cordon(['rules', 'update', '--source', url, '--data-dir', dataDir], dir);
      assert.equal(up2.code, 0, up2.stderr);
      assert.match(
        up2.stdout,
        new RegExp(`vendor: installed .*: 5 rules .*; previous ${installed.list[0]!.version} kept`),
      );
      const after = await state(dataDir, dir);
      assert.equal(after.list[0]!.rules, 5);
      assert.equal(after.list[0]!.previous, installed.list[0]!.version);
      for (const [f, text] of Object.entries(installed.files))
        assert.equal(after.files[f], text, `${f} of the previous version is still there`);

      // policies use the set by name; a set that is not installed is a coded error saying what to run
      writeFileSync(join(dir, 'policy.yaml'), 'id: default\nmode: detect\nruleSets: [vendor]\n');
      const applied = await cordon(['policy', 'apply', join(dir, 'policy.yaml'), '--data-dir', dataDir], dir);
      assert.equal(applied.code, 0, applied.stderr);
      assert.match(applied.stdout, /policy default: version 1; 1 ruleset record\(s\)/);
      writeFileSync(join(dir, 'missing.yaml'), 'id: default\nruleSets:\n  - vendor\n  - et-open\n');
      const missing = await cordon(['policy', 'apply', join(dir, 'missing.yaml'), '--data-dir', dataDir], dir);
      assert.equal(missing.code, 1);
      assert.match(
        missing.stderr,
        /CORDON_ERR_RULES_NOT_INSTALLED: .*missing\.yaml:4: rule set "et-open" is not installed .*run "cordon rules update"/,
      );
    } finally {
      await server.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('cordon rules update --help and rules list --help name every flag, its variable and default', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-rules-help-'));
  try {
    const u = await cordon(['rules', 'update', '--help'], dir);
    assert.equal(u.code, 0);
    for (const flag of [
      '--source',
      '--name',
      '--sha256',
      '--no-checksum-file',
      '--max-download-mb',
      '--max-unpacked-mb',
      '--max-entries',
      '--timeout-s',
      '--data-dir',
      '--config',
    ]) {
      assert.match(u.stdout, new RegExp(`^  ${flag} `, 'm'), `update --help lists ${flag}`);
    }
    assert.match(u.stdout, /CORDON_ETOPEN_URL/);
    assert.match(u.stdout, /CORDON_DATA_DIR/);
    assert.match(u.stdout, /https:\/\/rules\.emergingthreats\.net\/open\/suricata-7\.0\/emerging\.rules\.tar\.gz/);
    const l = await cordon(['rules', 'list', '--help'], dir);
    assert.equal(l.code, 0);
    for (const flag of ['--format', '--data-dir', '--config']) assert.match(l.stdout, new RegExp(`^  ${flag} `, 'm'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
