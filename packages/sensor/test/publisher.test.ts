import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { ProduceRecord } from '@cordon/bus';
import { codecFor, TOPICS } from '@cordon/schemas';
import { FramePublisher } from '../src/index.js';

/** Ethernet + IPv4 + UDP 192.0.2.1 → 192.0.2.2 (one address pair: one partition). */
function frame(n: number): Buffer {
  const f = Buffer.alloc(14 + 20 + 8 + 4);
  f.writeUInt16BE(0x0800, 12);
  f[14] = 0x45;
  f.writeUInt16BE(20 + 8 + 4, 16);
  f[22] = 64;
  f[23] = 17;
  Buffer.from([192, 0, 2, 1]).copy(f, 26);
  Buffer.from([192, 0, 2, 2]).copy(f, 30);
  f.writeUInt32BE(n, 42);
  return f;
}

test("recovery frames go out in batches of their own, marked with the lost agent's name; the others unmarked", async () => {
  const sent: ProduceRecord[] = [];
  const p = new FramePublisher({ sensor: 'watchdog:hv1', partitions: 3, send: async (r) => void sent.push(...r) });
  const f = (ts: number, recoveryOf?: string) => ({
    tsUs: ts,
    origLen: 46,
    frame: frame(ts),
    ...(recoveryOf ? { recoveryOf } : {}),
  });
  p.add('vm1', f(1, 'agent:a'));
  p.add('vm1', f(2, 'agent:a'));
  p.add('vm1', f(3));
  p.add('vm1', f(4));
  await p.flush();
  const codec = codecFor(TOPICS.packets);
  const batches = sent.map((r) => codec.decode(r.value!));
  assert.deepEqual(
    batches.map((b) => [b.sensor, b.vm, b.recovery_of, b.packets.map((x) => x.ts_us)]),
    [
      ['watchdog:hv1', 'vm1', 'agent:a', [1, 2]],
      ['watchdog:hv1', 'vm1', null, [3, 4]],
    ],
  );
  assert.equal(new Set(sent.map((r) => r.partition)).size, 1, 'one flow, one partition, in time order');
});
