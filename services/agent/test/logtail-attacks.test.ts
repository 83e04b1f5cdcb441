import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  closeSync,
  constants,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { LogTailer, type TailBatch } from '../src/index.js';

/**
 * Attacks on the log tailer by whoever can write into a log directory (a service's own
 * /var/log/<app>, owned by that service's user): a symlink that makes the agent ship a file
 * it may read and the attacker may not, and a FIFO that makes its reads hang.
 */
function world() {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-tail-attack-'));
  const logs = join(dir, 'log');
  mkdirSync(logs);
  const got: Array<{ source: string; line: string }> = [];
  const make = (paths: string[]) =>
    new LogTailer({
      sources: paths.map((path) => ({ path })),
      roots: [logs],
      stateFile: join(dir, 'state', 'logtail.json'),
      ctx: createContext({ log: silentLogger }),
      startAt: 'beginning',
      pollMs: 20,
      onBatch: async (b: TailBatch) => {
        got.push(...b.lines.map((l) => ({ source: b.source.path, line: l.line.toString() })));
      },
    });
  return { dir, logs, got, make, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A file of another user, readable by its owner only (and by root: the agent). */
function secretOfAnotherUser(path: string): void {
  writeFileSync(path, 'root:$6$salt$hash:19000:0:99999:7:::\n');
  chmodSync(path, 0o600);
  if (process.getuid?.() === 0) chownSync(path, 65534, 65534);
}

test('a symlink at a log path is not followed: the 0600 file of another user it points at is never shipped', async () => {
  const w = world();
  const secret = join(w.dir, 'shadow');
  secretOfAnotherUser(secret);
  symlinkSync(secret, join(w.logs, 'app.log'));
  writeFileSync(join(w.logs, 'real.log'), 'a real line\n');
  const t = w.make([join(w.logs, 'app.log'), join(w.logs, 'real.log')]);
  await t.pollAll();
  await t.stop();
  assert.deepEqual(w.got, [{ source: join(w.logs, 'real.log'), line: 'a real line' }]);
  w.cleanup();
});

test('a symlinked directory inside a log root that leads out of it is refused too', async () => {
  const w = world();
  const outside = join(w.dir, 'private');
  mkdirSync(outside);
  secretOfAnotherUser(join(outside, 'app.log'));
  symlinkSync(outside, join(w.logs, 'app'));
  const t = w.make([join(w.logs, 'app', 'app.log')]);
  await t.pollAll();
  await t.stop();
  assert.deepEqual(w.got, []);
  w.cleanup();
});

test('a log path outside the allowed roots is never opened', async () => {
  const w = world();
  const elsewhere = join(w.dir, 'etc-shadow');
  secretOfAnotherUser(elsewhere);
  const t = w.make([elsewhere]);
  await t.pollAll();
  await t.stop();
  assert.deepEqual(w.got, []);
  w.cleanup();
});

test('a FIFO at a log path blocks neither the other sources nor shutdown', { timeout: 30_000 }, async () => {
  const w = world();
  const fifo = join(w.logs, 'app.log');
  execFileSync('mkfifo', [fifo]);
  writeFileSync(join(w.logs, 'real.log'), 'a real line\n');
  const t = w.make([fifo, join(w.logs, 'real.log')]);
  const within = <T>(p: Promise<T>, ms: number) =>
    Promise.race([p.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms))]);
  try {
    const polled = await within(t.pollAll(), 3000);
    const stopped = polled && (await within(t.stop(), 3000));
    assert.ok(polled, 'a round over the sources finished with a FIFO among them');
    assert.ok(stopped, 'the tailer stopped');
    assert.deepEqual(w.got, [{ source: join(w.logs, 'real.log'), line: 'a real line' }]);
  } finally {
    // what a tailer that did open the FIFO waits for: a writer; give it one so the test ends
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK));
    } catch {
      // ENXIO: nobody has it open for reading, as it should be
    }
    await t.stop();
    w.cleanup();
  }
});
