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
