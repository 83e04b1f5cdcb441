/**
 * Rule sources end to end in one process: archives built here, served by a local HTTP server
 * started here (never the internet), fetched, verified, unpacked and installed under a
 * temporary data dir. Every refused update must leave the installed set exactly as it was.
 */
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { buildTar, buildTarGz, paxRecords, serveFiles, type TarEntrySpec } from '@cordon/testkit';
import {
  countRules,
  DEFAULT_LIMITS,
  deriveName,
  ERR_RULES_ARCHIVE,
  ERR_RULES_CHECKSUM,
  ERR_RULES_CORRUPT,
  ERR_RULES_FETCH,
  ERR_RULES_NOT_INSTALLED,
  ERR_RULES_TOO_LARGE,
  ERR_RULES_UNSAFE_ENTRY,
  installedSet,
  listInstalled,
  readRuleSet,
  readTar,
  readYaraRuleSet,
  updateRuleSet,
  versionsOnDisk,
  type UpdateOptions,
} from '@cordon/rulesets';

const RULES_V1 = [
  'alert http any any -> any any (msg:"test one"; content:"one"; sid:9100001; rev:1;)',
  'alert http any any -> any any (msg:"test two"; content:"two"; sid:9100002; rev:1;)',
  '# alert http any any -> any any (msg:"test off"; content:"off"; sid:9100003; rev:1;)',
  '',
].join('\n');
const RULES_V2 = `${RULES_V1}alert dns any any -> any any (msg:"test three"; dns.query; content:"three"; sid:9100004; rev:1;)\n`;

const goodArchive = (rules: string, extra: TarEntrySpec[] = []): Buffer =>
  buildTarGz([
    { path: 'rules/', type: '5' },
    { path: 'rules/test-web.rules', data: rules },
    {
      path: 'rules/classification.config',
      data: 'config classification: web-application-attack,Web Application Attack,1\n',
    },
    { path: 'rules/suricata-7.0.yaml', data: 'not kept\n' },
    { path: 'rules/LICENSE', data: 'not kept\n' },
    ...extra,
  ]);

const md5 = (b: Buffer) => createHash('md5').update(b).digest('hex');
const sha256 = (b: Buffer) => createHash('sha256').update(b).digest('hex');

let server: Awaited<ReturnType<typeof serveFiles>>;
const files = new Map<string, Buffer>();
let dir: string;
let clock = Date.UTC(2026, 11, 1, 12, 0, 0);

const opts = (dataDir: string, limits: Partial<UpdateOptions['limits']> = {}): UpdateOptions => ({
  dataDir,
  limits: { ...DEFAULT_LIMITS, timeoutMs: 10_000, ...limits },
  sidecars: true,
  now: () => new Date((clock += 60_000)),
});

/** Everything an installed set is on disk: where current points, and every file's bytes. */
function snapshot(dataDir: string, name: string): Record<string, string> {
  const root = join(dataDir, 'rules', name);
  const out: Record<string, string> = { current: readlinkSync(join(root, 'current')) };
  for (const v of readdirSync(root)) {
    if (v === 'current') continue;
    for (const f of readdirSync(join(root, v))) out[`${v}/${f}`] = sha256(readFileSync(join(root, v, f)));
  }
  return out;
}

before(async () => {
  server = await serveFiles(files);
  dir = mkdtempSync(join(tmpdir(), 'cordon-rulesets-'));
});
after(async () => {
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

test('an archive from a URL is verified against its .md5, unpacked and installed as the current version', async () => {
  const data = join(dir, 'happy');
  const v1 = goodArchive(RULES_V1);
  files.set('/r/emerging.rules.tar.gz', v1);
  files.set('/r/emerging.rules.tar.gz.md5', Buffer.from(`${md5(v1)}\n`));
  const r = await updateRuleSet({ location: server.url('/r/emerging.rules.tar.gz'), name: 'lab' }, opts(data));
  assert.equal(r.result.changed, true);
  assert.match(r.verified, /^md5 \(http:\/\/127\.0\.0\.1:\d+\/r\/emerging\.rules\.tar\.gz\.md5\)$/);
  assert.ok(server.requests.includes('/r/emerging.rules.tar.gz.sha256'), 'a .sha256 is looked for first');
  const set = installedSet(data, 'lab')!;
  assert.equal(set.rules, 2);
  assert.equal(set.disabled, 1);
  assert.deepEqual(
    set.files.map((f) => f.name),
    ['classification.config', 'test-web.rules'],
    'only rules and their configuration are kept',
  );
  assert.equal(set.skipped, 3, 'the directory, the yaml and the licence are skipped');
  assert.equal(set.sha256, sha256(v1));
  assert.match(set.version, /^20261201T\d{6}Z-[0-9a-f]{12}$/);
  assert.equal(readFileSync(join(data, 'rules', 'lab', 'current', 'test-web.rules'), 'utf8'), RULES_V1);
  assert.deepEqual(readRuleSet(data, 'lab'), [{ name: 'lab/test-web.rules', text: RULES_V1 }]);
  assert.deepEqual(
    listInstalled(data).map((s) => s.name),
    ['lab'],
  );

  const again = await updateRuleSet({ location: server.url('/r/emerging.rules.tar.gz'), name: 'lab' }, opts(data));
  assert.equal(again.result.changed, false, 'the same archive again is not a new version');
  assert.equal(versionsOnDisk(data, 'lab').length, 1);
});

test('refused updates leave the installed set untouched; a good one keeps the previous version', async () => {
  const data = join(dir, 'refused');
  const url = server.url('/set/rules.tar.gz');
  const v1 = goodArchive(RULES_V1);
  files.set('/set/rules.tar.gz', v1);
  files.set('/set/rules.tar.gz.md5', Buffer.from(md5(v1)));
  await updateRuleSet({ location: url }, opts(data));
  assert.deepEqual(
    listInstalled(data).map((s) => s.name),
    ['rules'],
    'the name is derived from the file name',
  );
  const installed = snapshot(data, 'rules');

  // tampered: the archive changed, its published checksum did not
  files.set('/set/rules.tar.gz', goodArchive(RULES_V1.replace('test one', 'pwned')));
  await assert.rejects(
    updateRuleSet({ location: url }, opts(data)),
    (e) => ERR_RULES_CHECKSUM.is(e) && /md5/.test(e.message),
  );
  assert.deepEqual(snapshot(data, 'rules'), installed);

  // a pinned sha256 that does not match
  files.set('/set/rules.tar.gz', v1);
  await assert.rejects(
    updateRuleSet({ location: url, sha256: 'a'.repeat(64) }, opts(data)),
    (e) => ERR_RULES_CHECKSUM.is(e) && /--sha256/.test(e.message),
  );

  // a checksum file that is not one
  files.set('/set/rules.tar.gz.md5', Buffer.from('<html>oops</html>'));
  await assert.rejects(
    updateRuleSet({ location: url }, opts(data)),
    (e) => ERR_RULES_CHECKSUM.is(e) && /does not hold a md5 digest/.test(e.message),
  );
  files.delete('/set/rules.tar.gz.md5');

  // oversized download
  files.set(
    '/set/rules.tar.gz',
    goodArchive(RULES_V2, [
      {
        path: 'rules/big.rules',
        data: Buffer.from(
          Array.from({ length: 40_000 }, (_, i) => `# ${i} ${sha256(Buffer.from(String(i)))}`).join('\n'),
        ),
      },
    ]),
  );
  await assert.rejects(
    updateRuleSet({ location: url }, opts(data, { maxDownloadBytes: 64 * 1024 })),
    (e) => ERR_RULES_TOO_LARGE.is(e) && /larger than/.test(e.message),
  );

  // a gzip bomb: 64 MiB of zeros in ~64 KiB, against a 4 MiB unpacked limit
  files.set(
    '/set/rules.tar.gz',
    gzipSync(
      Buffer.concat([
        buildTar([{ path: 'rules/a.rules', data: RULES_V2 }]).subarray(0, 1024),
        Buffer.alloc(64 * 1048576),
      ]),
      { level: 9 },
    ),
  );
  await assert.rejects(
    updateRuleSet({ location: url }, opts(data, { maxUnpackedBytes: 4 * 1048576 })),
    (e) => ERR_RULES_TOO_LARGE.is(e) && /unpacks to more than 4 MiB/.test(e.message),
  );

  // too many entries
  files.set(
    '/set/rules.tar.gz',
    goodArchive(
      RULES_V2,
      Array.from({ length: 30 }, (_, i) => ({ path: `rules/x${i}.txt`, data: 'x' })),
    ),
  );
  await assert.rejects(
    updateRuleSet({ location: url }, opts(data, { maxEntries: 20 })),
    (e) => ERR_RULES_TOO_LARGE.is(e) && /more than 20 archive entries/.test(e.message),
  );

  // path traversal, absolute paths, links out of the tree, devices
  const hostile: Array<[string, TarEntrySpec[]]> = [
    ['"..": ', [{ path: 'rules/../../evil.rules', data: RULES_V2 }]],
    ['absolute', [{ path: '/etc/cron.d/evil.rules', data: RULES_V2 }]],
    ['symlink out', [{ path: 'rules/passwd.rules', type: '2', link: '/etc/passwd' }]],
    ['symlink up', [{ path: 'rules/up.rules', type: '2', link: '../../../etc/passwd' }]],
    ['hard link up', [{ path: 'rules/hard.rules', type: '1', link: '../outside.rules' }]],
    ['char device', [{ path: 'rules/null.rules', type: '3' }]],
    ['FIFO', [{ path: 'rules/fifo.rules', type: '6' }]],
    [
      'pax path',
      [
        { path: 'PaxHeaders/x', type: 'x', data: paxRecords({ path: '../pax-evil.rules' }) },
        { path: 'rules/innocent.rules', data: RULES_V2 },
      ],
    ],
    [
      'GNU long name',
      [
        {
          path: '././@LongLink',
          type: 'L',
          data: `${'a/'.repeat(60)}../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../../gnu-evil.rules\0`,
        },
        { path: 'rules/innocent.rules', data: RULES_V2 },
      ],
    ],
    ['backslash', [{ path: 'rules\\..\\..\\evil.rules', data: RULES_V2 }]],
  ];
  for (const [what, entries] of hostile) {
    files.set('/set/rules.tar.gz', goodArchive(RULES_V2, entries));
    await assert.rejects(
      updateRuleSet({ location: url }, opts(data)),
      (e) => ERR_RULES_UNSAFE_ENTRY.is(e),
      `${what} is refused`,
    );
  }
  assert.deepEqual(snapshot(data, 'rules'), installed, 'no refused update changed the installed set');
  for (const f of ['evil.rules', 'pax-evil.rules', 'gnu-evil.rules']) {
    assert.equal(
      existsSync(join(data, f)) || existsSync(join(dir, f)) || existsSync(join(data, 'rules', f)),
      false,
      `${f} was not written`,
    );
  }

  // an unreachable source
  await assert.rejects(
    updateRuleSet({ location: server.url('/nope.tar.gz') }, opts(data)),
    (e) => ERR_RULES_FETCH.is(e) && /HTTP 404/.test(e.message),
  );

  // a good second update: new current, previous kept; a third drops the oldest
  const v1Version = installedSet(data, 'rules')!.version;
  const v2 = goodArchive(RULES_V2);
  files.set('/set/rules.tar.gz', v2);
  files.set('/set/rules.tar.gz.sha256', Buffer.from(`${sha256(v2)}  rules.tar.gz\n`));
  const r2 = await updateRuleSet({ location: url }, opts(data));
  assert.ok(r2.result.changed);
  assert.equal(r2.verified.startsWith('sha256 ('), true, 'a .sha256 beside the archive is preferred');
  const s2 = installedSet(data, 'rules')!;
  assert.equal(s2.rules, 3);
  assert.equal(s2.previous, v1Version);
  assert.deepEqual(versionsOnDisk(data, 'rules'), [v1Version, s2.version].sort());
  const v3 = goodArchive(`${RULES_V2}# v3\n`);
  files.set('/set/rules.tar.gz', v3);
  files.set('/set/rules.tar.gz.sha256', Buffer.from(sha256(v3)));
  const r3 = await updateRuleSet({ location: url }, opts(data));
  assert.ok(
    r3.result.changed && r3.result.removed.includes(v1Version),
    'the version before the previous one is removed',
  );
  assert.deepEqual(versionsOnDisk(data, 'rules'), [s2.version, installedSet(data, 'rules')!.version].sort());
});

test('a local .rules file is a set of one file; a policy-style read checks the manifest', async () => {
  const data = join(dir, 'local');
  const file = join(dir, 'my-local.rules');
  writeFileSync(file, RULES_V2);
  const r = await updateRuleSet({ location: file }, { ...opts(data), sidecars: false });
  assert.equal(r.name, 'my-local');
  assert.equal(r.verified, 'none');
  assert.deepEqual(
    readRuleSet(data, 'my-local').map((t) => t.name),
    ['my-local/my-local.rules'],
  );
  writeFileSync(
    join(data, 'rules', 'my-local', 'current', 'my-local.rules'),
    `${RULES_V2}alert ip any any -> any any (msg:"sneaked in"; sid:1;)\n`,
  );
  assert.throws(
    () => readRuleSet(data, 'my-local'),
    (e) => ERR_RULES_CORRUPT.is(e),
  );
  assert.throws(
    () => readRuleSet(data, 'et-open'),
    (e) => ERR_RULES_NOT_INSTALLED.is(e) && /cordon rules update/.test(e.message),
  );
});

test('the tar reader: pax and GNU long names, in-tree links skipped, bad checksums and truncation refused', () => {
  const long = `rules/${'d'.repeat(120)}/long.rules`;
  const tar = buildTar([
    { path: 'PaxHeaders/1', type: 'x', data: paxRecords({ path: 'rules/pax-named.rules' }) },
    { path: 'short-name', data: 'A' },
    { path: '././@LongLink', type: 'L', data: `${long}\0` },
    { path: long.slice(0, 99), data: 'B' },
    { path: 'rules/alias.rules', type: '2', link: 'pax-named.rules' },
    { path: 'rules/sub/', type: '5' },
  ]);
  const listing = readTar(tar, 'test', { maxEntries: 100 });
  assert.deepEqual(
    listing.files.map((f) => [f.path, f.data.toString()]),
    [
      ['rules/pax-named.rules', 'A'],
      [long, 'B'],
    ],
  );
  assert.deepEqual(listing.skipped, ['rules/alias.rules -> pax-named.rules', 'rules/sub/']);

  const bad = Buffer.from(tar);
  bad[0] = bad[0]! ^ 1;
  assert.throws(
    () => readTar(bad, 'test', { maxEntries: 100 }),
    (e) => ERR_RULES_ARCHIVE.is(e) && /checksum/.test(e.message),
  );
  assert.throws(
    () => readTar(tar.subarray(0, 1536), 'test', { maxEntries: 100 }),
    (e) => ERR_RULES_ARCHIVE.is(e),
  );
});

test('names and rule counts', () => {
  assert.equal(deriveName('https://rules.emergingthreats.net/open/suricata-7.0/emerging.rules.tar.gz'), 'et-open');
  assert.equal(deriveName('https://example.org/feeds/Vendor_Web.tar.gz'), 'vendor_web');
  assert.equal(deriveName('/srv/rules/local.rules'), 'local');
  assert.deepEqual(countRules(RULES_V2), { rules: 3, disabled: 1 });
});

test('YARA rule sources: a .yar file and a tar.gz of .yar files install as sets the agents read', async () => {
  const data = join(dir, 'yara');
  const file = join(dir, 'webshells.yar');
  const rule = 'rule A : x { strings: $a = "a" condition: $a }\nprivate rule B { condition: true }\n';
  writeFileSync(file, rule);
  const one = await updateRuleSet({ location: file }, { ...opts(data), sidecars: false });
  assert.equal(one.name, 'webshells');
  assert.equal(installedSet(data, 'webshells')!.rules, 2);
  assert.deepEqual(readYaraRuleSet(data, 'webshells'), [{ name: 'webshells/webshells.yar', text: rule }]);
  // no Suricata rules in it: a dpi policy naming it publishes nothing
  assert.deepEqual(readRuleSet(data, 'webshells'), []);

  const tgz = join(dir, 'forge.tar.gz');
  writeFileSync(
    tgz,
    buildTarGz([
      { path: 'forge/rules/miners.yara', data: 'rule M { condition: false }\n' },
      { path: 'forge/README.md', data: 'docs' },
    ]),
  );
  const two = await updateRuleSet({ location: tgz }, { ...opts(data), sidecars: false });
  assert.equal(two.name, 'forge');
  assert.deepEqual(
    readYaraRuleSet(data, 'forge').map((r) => r.name),
    ['forge/miners.yara'],
  );
  // a tampered file is refused, as for Suricata sets
  writeFileSync(join(data, 'rules', 'forge', 'current', 'miners.yara'), 'rule M { condition: true }\n');
  assert.throws(
    () => readYaraRuleSet(data, 'forge'),
    (e) => ERR_RULES_CORRUPT.is(e),
  );
});
