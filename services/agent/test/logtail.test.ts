import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { LogTailer, type TailBatch } from '../src/index.js';

function world() {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-tail-'));
  const log = join(dir, 'auth.log');
  const got: string[] = [];
  /** failAfter: every batch from that one on fails; failing: while it says so, batches fail. */
  const make = (opts: { failAfter?: number; failing?: () => boolean } = {}) => {
    let batches = 0;
    return new LogTailer({
      sources: [{ path: log, format: 'auth' }],
      roots: [dir],
      stateFile: join(dir, 'state', 'logtail.json'),
      ctx: createContext({ log: silentLogger }),
      startAt: 'beginning',
      maxBatchLines: 3,
      maxLineBytes: 100,
      onBatch: async (b: TailBatch) => {
        if (opts.failAfter !== undefined && batches++ >= opts.failAfter) throw new Error('bus down');
        if (opts.failing?.()) throw new Error('bus down');
        got.push(...b.lines.map((l) => l.line.toString('latin1')));
      },
    });
  };
  return { dir, log, got, make, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

const lines = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix} ${i}\n`).join('');

test('lines arrive once each across rename rotation, copytruncate and a partial last line', async () => {
  const w = world();
  const t = w.make();
  writeFileSync(w.log, lines('a', 5) + 'half');
  await t.pollAll();
  assert.deepEqual(w.got, ['a 0', 'a 1', 'a 2', 'a 3', 'a 4'], 'the unterminated line waits');
  appendFileSync(w.log, ' done\n' + lines('b', 2));
  await t.pollAll();
  assert.deepEqual(w.got.slice(5), ['half done', 'b 0', 'b 1']);
  // logrotate: rename, the writer keeps appending to the old file for a moment, then a new file
  renameSync(w.log, `${w.log}.1`);
  appendFileSync(`${w.log}.1`, lines('late', 2));
  writeFileSync(w.log, lines('c', 2));
  await t.pollAll();
  assert.deepEqual(w.got.slice(8), ['late 0', 'late 1', 'c 0', 'c 1'], 'the old file is finished before the new one');
  // copytruncate: copied away and emptied in place, then written again
  truncateSync(w.log, 0);
  appendFileSync(w.log, lines('d', 1));
  await t.pollAll();
  assert.deepEqual(w.got.slice(12), ['d 0']);
  await t.stop();
  w.cleanup();
});

test('a restart neither loses nor repeats lines, even when the bus failed mid-way', async () => {
  const w = world();
  writeFileSync(w.log, lines('x', 10));
  const t1 = w.make({ failAfter: 2 }); // two batches of 3 land, the third fails
  await t1.pollAll();
  await t1.stop();
  assert.deepEqual(w.got, ['x 0', 'x 1', 'x 2', 'x 3', 'x 4', 'x 5']);
  appendFileSync(w.log, lines('y', 2));
  const t2 = w.make();
  await t2.pollAll();
  await t2.stop();
  assert.deepEqual(w.got, [...Array.from({ length: 10 }, (_, i) => `x ${i}`), 'y 0', 'y 1']);
  w.cleanup();
});

test('a batch the bus could not take is read again by the next round: none lost, none repeated', async () => {
  const w = world();
  let down = false;
  const t = w.make({ failing: () => down });
  writeFileSync(w.log, lines('a', 4));
  await t.pollAll();
  // the bus is down for three rounds while lines keep coming: a round's last batch (read to
  // the file's end), a full batch in mid-read, a cut line and an unterminated one
  down = true;
  appendFileSync(w.log, lines('b', 2));
  await t.pollAll();
  appendFileSync(w.log, lines('b', 5).slice(lines('b', 2).length));
  await t.pollAll();
  appendFileSync(w.log, 'c' + 'x'.repeat(150) + '\n' + 'half');
  await t.pollAll();
  appendFileSync(w.log, ' done\n' + lines('d', 2));
  down = false;
  await t.pollAll();
  appendFileSync(w.log, lines('e', 1));
  await t.pollAll();
  await t.stop();
  const want = [
    ...['a 0', 'a 1', 'a 2', 'a 3'],
    ...['b 0', 'b 1', 'b 2', 'b 3', 'b 4'],
    `c${'x'.repeat(99)}`,
    'half done',
    ...['d 0', 'd 1', 'e 0'],
  ];
  assert.deepEqual(w.got, want);
  // and a restart from the saved position repeats nothing
  const t2 = w.make();
  await t2.pollAll();
  await t2.stop();
  assert.deepEqual(w.got, want);
  w.cleanup();
});

test('a rotation while the agent was down: the rest of the old file first, then the new one', async () => {
  const w = world();
  writeFileSync(w.log, lines('old', 3));
  const t1 = w.make();
  await t1.pollAll();
  await t1.stop();
  appendFileSync(w.log, lines('unread', 2));
  renameSync(w.log, `${w.log}.1`);
  writeFileSync(w.log, lines('new', 2));
  const t2 = w.make();
  await t2.pollAll();
  await t2.stop();
  assert.deepEqual(w.got, ['old 0', 'old 1', 'old 2', 'unread 0', 'unread 1', 'new 0', 'new 1']);
  w.cleanup();
});

test('binary bytes pass through untouched and an endless line is cut, not buffered forever', async () => {
  const w = world();
  const t = w.make();
  writeFileSync(
    w.log,
    Buffer.concat([Buffer.from([0xff, 0x00, 0xfe, 0x0a]), Buffer.alloc(500, 0x41), Buffer.from('\nafter\n')]),
  );
  await t.pollAll();
  await t.stop();
  assert.equal(w.got.length, 3);
  assert.deepEqual(Buffer.from(w.got[0]!, 'latin1'), Buffer.from([0xff, 0x00, 0xfe]));
  assert.equal(w.got[1]!.length, 100, 'cut at maxLineBytes');
  assert.equal(w.got[2], 'after');
  w.cleanup();
});
