import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { FileEvent } from '@cordon/schemas';
import { createFimWatcher, type FimPolicyInput } from '../src/index.js';
import { diffOf, sandbox, sleep, type Sandbox } from './helpers.js';

function collector() {
  const events: FileEvent[] = [];
  return {
    events,
    onEvents: async (batch: FileEvent[]) => {
      events.push(...batch);
    },
    async waitFor(
      what: string,
      pred: (e: FileEvent) => boolean,
      ms = 2000,
    ): Promise<{ event: FileEvent; afterMs: number }> {
      const t0 = Date.now();
      for (;;) {
        const event = events.find(pred);
        if (event) return { event, afterMs: Date.now() - t0 };
        if (Date.now() - t0 > ms)
          throw new Error(`no ${what} within ${ms} ms; got ${JSON.stringify(events.map((e) => [e.op, e.path]))}`);
        await sleep(20);
      }
    },
  };
}

async function started(s: Sandbox, c: ReturnType<typeof collector>, extra: Partial<FimPolicyInput> = {}) {
  const w = createFimWatcher({
    policy: { paths: [s.tree], scanIntervalS: 0, debounceMs: 50, ...extra },
    stateDir: s.state,
    ctx: s.ctx,
    onEvents: c.onEvents,
    identity: { agent: 'a1', vm: 'vm1' },
  });
  await w.start();
  return w;
}

test('realtime: a content change becomes a FileEvent within 2 s', async () => {
  const s = sandbox();
  const c = collector();
  const w = await started(s, c);
  try {
    assert.deepEqual(
      c.events.map((e) => e.op),
      ['baseline'],
    );
    assert.equal(w.watchCount, 3);
    const f = join(s.tree, 'etc', 'app0.conf');
    const t0 = Date.now();
    writeFileSync(f, 'tampered\n');
    const { event } = await c.waitFor('changed event', (e) => e.path === f && e.op === 'changed');
    assert.ok(Date.now() - t0 < 2000);
    assert.equal(event.scan, 'realtime');
    assert.ok(diffOf(event).includes('sha256'));
  } finally {
    await w.stop();
    s.cleanup();
  }
});

test('realtime: a permission change, a rename, a delete-and-recreate and a new directory are each reported', async () => {
  const s = sandbox();
  const c = collector();
  const w = await started(s, c);
  try {
    const tool = join(s.tree, 'bin', 'tool1');
    chmodSync(tool, 0o777);
    const { event: perm } = await c.waitFor('mode change', (e) => e.path === tool && e.op === 'changed');
    assert.deepEqual(
      diffOf(perm).filter((a) => a !== 'ctime'),
      ['mode'],
    );

    const from = join(s.tree, 'etc', 'app1.conf');
    const to = join(s.tree, 'etc', 'app1.conf.old');
    renameSync(from, to);
    const { event: ren } = await c.waitFor('rename', (e) => e.op === 'renamed' && e.path === to);
    assert.equal(ren.renamed_from, from);

    const f = join(s.tree, 'etc', 'app2.conf');
    writeFileSync(join(s.dir, 'holder'), 'x');
    rmSync(f);
    writeFileSync(f, 'recreated\n');
    const { event: re } = await c.waitFor('delete and recreate', (e) => e.path === f && e.op !== 'baseline');
    assert.equal(re.op, 'changed');
    assert.ok(diffOf(re).includes('sha256'));

    const d = join(s.tree, 'newdir');
    mkdirSync(d);
    writeFileSync(join(d, 'dropped'), 'payload');
    await c.waitFor('new file in a new directory', (e) => e.path === join(d, 'dropped') && e.op === 'added');
    await sleep(100);
    // The new directory is watched now: a change inside it is seen too.
    writeFileSync(join(d, 'dropped'), 'payload v2');
    await c.waitFor('change in the new directory', (e) => e.path === join(d, 'dropped') && e.op === 'changed');
    assert.equal(w.watchCount, 4);
  } finally {
    await w.stop();
    s.cleanup();
  }
});

test('a change made while the watcher was stopped is reported by the next start', async () => {
  const s = sandbox();
  const c1 = collector();
  const w1 = await started(s, c1);
  await w1.stop();
  const f = join(s.tree, 'bin', 'tool2');
  writeFileSync(f, 'trojan');
  const c2 = collector();
  const w2 = await started(s, c2);
  try {
    const files = c2.events.filter((e) => e.after?.type === 'file');
    assert.deepEqual(
      files.map((e) => [e.op, e.path, e.scan]),
      [['changed', f, 'startup']],
    );
  } finally {
    await w2.stop();
    s.cleanup();
  }
});

test('a flood of changes past maxPendingPaths falls back to a rescan and still reports every file', async () => {
  const s = sandbox();
  const c = collector();
  const w = await started(s, c, { maxPendingPaths: 50, debounceMs: 100 });
  try {
    const d = join(s.tree, 'etc');
    for (let i = 0; i < 400; i++) writeFileSync(join(d, `flood${i}`), `${i}`);
    const t0 = Date.now();
    while (c.events.filter((e) => e.op === 'added').length < 400 && Date.now() - t0 < 5000) await sleep(50);
    const added = new Set(c.events.filter((e) => e.op === 'added').map((e) => e.path));
    assert.equal(added.size, 400);
    assert.ok(s.metrics.get('fim.realtime_overflows') >= 1);
  } finally {
    await w.stop();
    s.cleanup();
  }
});

test('events whose delivery fails are reported again, with the same ids, by the rescan that follows', async () => {
  const s = sandbox();
  let fail = false;
  const seen: FileEvent[] = [];
  const w = createFimWatcher({
    policy: { paths: [s.tree], scanIntervalS: 0, realtime: false },
    stateDir: s.state,
    ctx: s.ctx,
    onEvents: async (b) => {
      if (fail) throw new Error('bus down');
      seen.push(...b);
    },
  });
  await w.start();
  try {
    const f = join(s.tree, 'etc', 'app3.conf');
    chmodSync(f, 0o600);
    fail = true;
    await w.rescan();
    const lost = seen.length;
    fail = false;
    await w.rescan();
    const again = seen.slice(lost).filter((e) => e.path === f);
    assert.equal(again.length, 1);
    assert.equal(again[0]!.op, 'changed');
    assert.equal(s.metrics.get('fim.delivery_failures'), 1);
    // Delivered once: a third look is quiet.
    await w.rescan();
    assert.equal(seen.filter((e) => e.path === f).length, 1);
    // rebaseline: the current state becomes the baseline without reporting differences.
    chmodSync(f, 0o644);
    await w.rebaseline();
    assert.equal(seen.filter((e) => e.path === f).length, 1);
    assert.equal(seen.at(-1)!.op, 'baseline');
  } finally {
    await w.stop();
    s.cleanup();
  }
});
