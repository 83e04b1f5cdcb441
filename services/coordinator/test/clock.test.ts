import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClockOffsets } from '../src/clock.js';

test("a sender's clock offset is the largest stamp − receipt of its last records: queued records only lower theirs", () => {
  const c = new ClockOffsets(4);
  assert.equal(c.get('a'), null);
  // 250 ms ahead; records take 1 to 40 ms to arrive
  const now = 1_000_000_000;
  const skew = 250_000;
  const transit = [1_000, 40_000, 12_000, 3_000];
  transit.forEach((t, i) => c.add('a', now + i * 100_000 - t + skew, now + i * 100_000));
  assert.equal(c.get('a'), skew - 1_000);
  // the clock is set right: within a window of records the estimate follows
  for (let i = 4; i < 8; i++) c.add('a', now + i * 100_000 - 2_000, now + i * 100_000);
  assert.equal(c.get('a'), -2_000);
  assert.equal(c.get('b'), null, 'senders are apart');
  c.forget('a');
  assert.equal(c.get('a'), null);
  assert.equal(c.size, 0);
});

test('records handled in one burst are one moment of measuring: a reader catching up does not settle an estimate', () => {
  const c = new ClockOffsets();
  const now = 1_000_000_000;
  const gap = 50_000; // half a 100 ms heartbeat interval
  // ten heartbeats sent over a second, read at once by a reader that just started: all late
  for (let i = 0; i < 10; i++) c.add('a', now - 1_000_000 + i * 100_000, now + i * 200, gap);
  assert.equal(c.samples('a'), 1);
  assert.equal(c.get('a'), -100_000 + 9 * -200, 'every one of them makes the sender look behind');
  // then heartbeats as they come, 100 ms apart and 1 ms in transit: each a moment of its own
  for (let i = 1; i <= 3; i++) c.add('a', now + i * 100_000 - 1_000, now + i * 100_000, gap);
  assert.equal(c.samples('a'), 4);
  assert.equal(c.get('a'), -1_000);
  // without a gap every record counts, as before
  const d = new ClockOffsets();
  for (let i = 0; i < 3; i++) d.add('d', now, now + i);
  assert.equal(d.samples('d'), 3);
});
