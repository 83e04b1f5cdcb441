import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  truncateSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { createProbePool, createProber, parseFimPolicy, compileGlob } from '../src/index.js';
import { sandbox } from './helpers.js';

const sha = (b: string | Buffer) => createHash('sha256').update(b).digest('hex');
const opts = { hash: true, maxHashBytes: 1 << 30, trustStat: false };

test('a file replaced (renamed over) while it is hashed is re-read: the digest is of the new file', () => {
  const s = sandbox();
  try {
    const f = join(s.tree, 'etc', 'app0.conf');
    let calls = 0;
    const p = createProber({
      ...opts,
      onChunk: (path, attempt) => {
        calls++;
        if (attempt === 1) {
          writeFileSync(`${path}.new`, 'replacement\n');
          renameSync(`${path}.new`, path);
        }
      },
    });
    const r = p.probe({ path: f });
    assert.equal(r.kind, 'ok');
    assert.equal(r.kind === 'ok' && r.entry.sha256, sha('replacement\n'));
    assert.equal(r.kind === 'ok' && r.entry.error, null);
    assert.equal(calls, 2, 'hashed twice');
  } finally {
    s.cleanup();
  }
});

test('a file truncated while it is hashed is re-read', () => {
  const s = sandbox();
  try {
    const f = join(s.tree, 'bin', 'big');
    writeFileSync(f, Buffer.alloc(3 << 20, 1)); // three chunks
    let calls = 0;
    const p = createProber({
      ...opts,
      onChunk: (path, attempt) => attempt === 1 && calls++ === 0 && truncateSync(path, 100),
    });
    const r = p.probe({ path: f });
    assert.ok(r.kind === 'ok');
    assert.equal(r.entry.size, 100);
    assert.equal(r.entry.sha256, sha(Buffer.alloc(100, 1)));
  } finally {
    s.cleanup();
  }
});

test('a file that keeps changing while it is hashed is reported as unstable, not hashed wrongly', () => {
  const s = sandbox();
  try {
    const f = join(s.tree, 'etc', 'app1.conf');
    let n = 0;
    const p = createProber({ ...opts, attempts: 3, onChunk: (path) => writeFileSync(path, `v${n++}\n`) });
    const r = p.probe({ path: f });
    assert.ok(r.kind === 'ok');
    assert.equal(r.entry.sha256, null);
    assert.match(r.entry.error!, /^CORDON_ERR_FIM_UNSTABLE: .* 3 times in a row/);
    assert.equal(n, 3);
  } finally {
    s.cleanup();
  }
});

test('a file that vanishes while it is hashed is gone, not an exception', () => {
  const s = sandbox();
  try {
    const f = join(s.tree, 'etc', 'app2.conf');
    const p = createProber({ ...opts, onChunk: (path) => rmSync(path) });
    assert.deepEqual(p.probe({ path: f }), { kind: 'gone' });
    assert.deepEqual(p.probe({ path: join(s.tree, 'nope') }), { kind: 'gone' });
  } finally {
    s.cleanup();
  }
});

test('trustStat reuses the baseline digest only when size, mtime, ctime, inode and device match', () => {
  const s = sandbox();
  try {
    const f = join(s.tree, 'etc', 'app3.conf');
    const plain = createProber(opts).probe({ path: f });
    assert.ok(plain.kind === 'ok');
    const prev = { ...plain.entry, sha256: 'f'.repeat(64) }; // a digest that cannot be the real one
    const trusting = createProber({ ...opts, trustStat: true });
    const same = trusting.probe({ path: f, prev });
    assert.ok(same.kind === 'ok' && same.entry.sha256 === prev.sha256, 'stat unchanged: digest reused');
    const moved = trusting.probe({ path: f, prev: { ...prev, ctimeUs: prev.ctimeUs - 1 } });
    assert.ok(moved.kind === 'ok' && moved.entry.sha256 === plain.entry.sha256, 'stat differs: re-hashed');
    const strict = createProber(opts).probe({ path: f, prev });
    assert.ok(strict.kind === 'ok' && strict.entry.sha256 === plain.entry.sha256, 'trustStat off: always re-hashed');
  } finally {
    s.cleanup();
  }
});

test('unreadable files and directories (as a non-root user) are per-file errors; files below an unlistable directory are not reported removed', () => {
  const s = sandbox();
  try {
    const secret = join(s.tree, 'etc', 'secret');
    writeFileSync(secret, 'k');
    const locked = join(s.tree, 'locked');
    mkdirSync(locked);
    writeFileSync(join(locked, 'inner'), 'i');
    execFileSync('chown', ['-R', '65534:65534', s.dir]);
    // The scan runs as nobody in a child process (root reads everything, chmod 000 or not).
    const script = `
      import { scanOnce } from '@cordon/fim-scan';
      import { createContext, silentLogger } from '@cordon/runtime';
      const ctx = createContext({ log: silentLogger });
      const r = await scanOnce({ policy: { paths: [${JSON.stringify(s.tree)}] }, stateDir: ${JSON.stringify(s.state)}, ctx });
      process.stdout.write(JSON.stringify(r.events));
    `;
    const run = () => {
      const out = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
        uid: 65534,
        gid: 65534,
        cwd: join(import.meta.dirname, '..', '..'),
        encoding: 'utf8',
      });
      assert.equal(out.status, 0, out.stderr);
      return JSON.parse(out.stdout) as Array<{ op: string; path: string; error: string | null }>;
    };
    assert.deepEqual(
      run().map((e) => e.op),
      ['baseline'],
    );
    chmodSync(secret, 0o000);
    chmodSync(locked, 0o000);
    const events = run();
    const bySecret = events.find((e) => e.path === secret);
    assert.equal(bySecret?.op, 'changed'); // mode 644 → 000, with the read error
    assert.match(bySecret!.error!, /^CORDON_ERR_FIM_UNREADABLE: cannot read .*secret \(EACCES\)/);
    const byLocked = events.find((e) => e.path === locked);
    assert.match(byLocked!.error!, /^CORDON_ERR_FIM_DIR_UNREADABLE: cannot list directory/);
    assert.equal(
      events.find((e) => e.path === join(locked, 'inner')),
      undefined,
      'not reported removed',
    );
    // Readable again: the inner file is still known, nothing to report below the directory.
    chmodSync(locked, 0o755);
    chownSync(locked, 65534, 65534);
    const after = run();
    assert.equal(
      after.find((e) => e.path === join(locked, 'inner')),
      undefined,
    );
  } finally {
    s.cleanup();
  }
});

test('policies are validated: unknown keys are named, paths must be absolute, globs must compile', () => {
  assert.throws(
    () => parseFimPolicy({ paths: ['/etc'], recurse: true }),
    /CORDON_ERR_FIM_POLICY|unknown key "recurse"/,
  );
  assert.throws(
    () => parseFimPolicy({ paths: ['/etc'], recurse: true }),
    (e: Error & { code?: string }) => e.code === 'CORDON_ERR_FIM_POLICY' && /unknown key "recurse"/.test(e.message),
  );
  assert.throws(() => parseFimPolicy({ paths: ['etc'] }), /paths\.0: must be an absolute path/);
  assert.throws(() => parseFimPolicy({ paths: ['/etc'], exclude: ['[abc'] }), /unclosed "\["/);
  assert.throws(() => parseFimPolicy({ paths: ['/etc'], attributes: ['md5'] }), /attributes\.0/);
  const p = parseFimPolicy({ paths: ['/etc/', '/etc/ssh', '/usr/bin'] });
  assert.deepEqual(p.paths, ['/etc', '/usr/bin'], 'nested roots collapse');
  assert.equal(p.trustStat, false);
  assert.equal(p.attributes.length, 12);
});

test('globs: * stays in a segment, ** spans segments, patterns without / match the base name', () => {
  const m = (g: string, p: string) => compileGlob(g).matches(p);
  assert.ok(m('*.log', '/var/log/syslog.log'));
  assert.ok(!m('/var/*.log', '/var/log/x.log'));
  assert.ok(m('/var/**/*.log', '/var/log/x.log'));
  assert.ok(m('/var/**/*.log', '/var/x.log'));
  assert.ok(m('/etc/**', '/etc/ssh/sshd_config'));
  assert.ok(m('{*.swp,*~}', '/etc/passwd~'));
  assert.ok(m('app[0-2].conf', '/x/app1.conf'));
  assert.ok(!m('app[!0-2].conf', '/x/app1.conf'));
  assert.ok(!m('a?c', '/x/a/c'));
  assert.ok(m('a.c', '/x/a.c') && !m('a.c', '/x/abc'), 'dots are literal');
});

test('the native probe reads the attributes Node reads: mode, ids, size, inode, device, times to the µs (odd nanoseconds too)', () => {
  const s = sandbox();
  try {
    const p = createProber(opts);
    const files: string[] = [];
    // Times whose nanoseconds round up, down and to halves: baselines written by the old
    // JavaScript prober (Math.round(mtimeMs * 1000)) must compare equal, or every file would be "changed".
    const times = [0.5e-6, 1.4999e-6, 1700000000.0000005, 1700000000.9999995, 1234567890.123456789, 4102444800.25];
    times.forEach((t, i) => {
      const f = join(s.tree, 'etc', `t${i}`);
      writeFileSync(f, Buffer.alloc(i * 1000, i));
      utimesSync(f, t, t);
      files.push(f);
    });
    files.push(join(s.tree, 'etc'), join(s.tree, 'bin', 'tool0'));
    for (const f of files) {
      const r = p.probe({ path: f });
      assert.ok(r.kind === 'ok', f);
      const st = lstatSync(f);
      assert.deepEqual(
        [
          r.entry.mode,
          r.entry.uid,
          r.entry.gid,
          r.entry.size,
          r.entry.ino,
          r.entry.dev,
          r.entry.mtimeUs,
          r.entry.ctimeUs,
        ],
        [
          st.mode,
          st.uid,
          st.gid,
          st.size,
          st.ino,
          st.dev,
          Math.round(st.mtimeMs * 1000),
          Math.round(st.ctimeMs * 1000),
        ],
        f,
      );
      if (st.isFile()) assert.equal(r.entry.sha256, sha(readFileSync(f)));
    }
  } finally {
    s.cleanup();
  }
});

test('names with newlines, link targets that are not UTF-8, a symlink loop and a FIFO are probed without following or opening anything', () => {
  const s = sandbox();
  try {
    const p = createProber(opts);
    const nl = join(s.tree, 'etc', 'two\nlines');
    writeFileSync(nl, 'x');
    const r1 = p.probe({ path: nl });
    assert.ok(r1.kind === 'ok' && r1.entry.sha256 === sha('x'));
    const bad = join(s.tree, 'etc', 'badlink');
    symlinkSync(Buffer.from([0x2f, 0x61, 0xff, 0xfe, 0x62]), bad); // "/a\xff\xfeb"
    const r2 = p.probe({ path: bad });
    assert.ok(r2.kind === 'ok' && r2.entry.type === 'symlink');
    assert.equal(r2.entry.linkTarget, readlinkSync(bad), 'decoded as Node decodes it');
    const loop = join(s.tree, 'etc', 'loop');
    symlinkSync(loop, loop);
    const r3 = p.probe({ path: loop });
    assert.ok(r3.kind === 'ok' && r3.entry.linkTarget === loop && r3.entry.error === null);
    const fifo = join(s.tree, 'etc', 'fifo');
    execFileSync('mkfifo', [fifo]);
    const r4 = p.probe({ path: fifo });
    assert.ok(r4.kind === 'ok' && r4.entry.sha256 === null);
    assert.match(r4.entry.error!, /^CORDON_ERR_FIM_NOT_REGULAR: .* is a FIFO/);
    assert.deepEqual(p.probe({ path: `${nl}\0x` }).kind, 'unknown', 'a NUL in a path is an error result, not a throw');
    assert.deepEqual(p.probe({ path: join(nl, 'below-a-file') }), { kind: 'gone' });
  } finally {
    s.cleanup();
  }
});

test('the probing pool answers batches in order, with files over the cap and vanished paths among them', async () => {
  const s = sandbox();
  try {
    const pool = createProbePool(2, { hash: true, maxHashBytes: 3001, trustStat: false });
    const paths = [0, 1, 2].map((i) => join(s.tree, 'bin', `tool${i}`)).concat(join(s.tree, 'gone'));
    const batches = await Promise.all([0, 1, 2, 3].map(() => pool.probe(paths.map((path) => ({ path })))));
    await pool.close();
    for (const res of batches) {
      assert.deepEqual(
        res.map((r) => (r.kind === 'ok' ? (r.entry.sha256 ?? r.entry.error!.split(':')[0]) : r.kind)),
        [sha(Buffer.alloc(3000, 1)), sha(Buffer.alloc(3001, 2)), 'CORDON_ERR_FIM_TOO_LARGE', 'gone'],
      );
    }
    await assert.rejects(pool.probe([{ path: paths[0]! }]), { code: 'CORDON_ERR_FIM_WORKER' });
  } finally {
    s.cleanup();
  }
});
