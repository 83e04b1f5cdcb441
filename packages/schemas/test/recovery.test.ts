import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RECOVERY_TOLERANCE_US, RecoveryFilter, type PacketBatch } from '../src/index.js';

const batch = (sensor: string, vm: string | null, ts: number[], recoveryOf: string | null = null): PacketBatch => ({
  batch_id: `${sensor}:${ts[0] ?? 0}`,
  sensor,
  vm,
  linktype: 1,
  end_of_source: false,
  recovery_of: recoveryOf,
  packets: ts.map((t, i) => ({ ts_us: t, seq: i, orig_len: 60, frame: Buffer.alloc(60) })),
});
const times = (b: PacketBatch['packets']) => b.map((p) => p.ts_us);

test('a recovery keeps only the frames stamped after the newest the lost agent delivered in that partition', () => {
  const f = new RecoveryFilter();
  assert.deepEqual(times(f.packets(3, batch('agent:a', 'vm1', [1_000, 5_000]))), [1_000, 5_000]);
  assert.deepEqual(times(f.packets(3, batch('agent:a', 'vm1', [9_000]))), [9_000]);
  // the watchdog stamped the agent's last frame 1.5 ms later on its bridge: within the tolerance
  const rec = batch(
    'watchdog:hv1',
    'vm1',
    [1_020, 5_010, 9_000 + 1_500, 9_000 + RECOVERY_TOLERANCE_US + 1, 40_000],
    'agent:a',
  );
  assert.deepEqual(times(f.packets(3, rec)), [9_000 + RECOVERY_TOLERANCE_US + 1, 40_000]);
  assert.deepEqual([f.dropped, f.recovered], [3, 2]);
});

test('what a recovery is compared with: its own partition, VM and agent only', () => {
  const f = new RecoveryFilter();
  f.packets(1, batch('agent:a', 'vm1', [50_000]));
  f.packets(2, batch('agent:b', 'vm2', [50_000]));
  f.packets(2, batch('watchdog:hv1', 'vm1', [90_000]));
  // partition 2 never had a frame of agent a for vm1: the agent delivered none of these there
  assert.deepEqual(times(f.packets(2, batch('watchdog:hv1', 'vm1', [10_000, 20_000], 'agent:a'))), [10_000, 20_000]);
  assert.deepEqual(times(f.packets(1, batch('watchdog:hv1', 'vm1', [10_000, 60_000], 'agent:a'))), [60_000]);
  // a recovery of another agent, or of the same agent for another VM, is not cut by agent a's frames
  assert.deepEqual(times(f.packets(1, batch('watchdog:hv1', 'vm1', [10_000], 'agent:z'))), [10_000]);
  assert.deepEqual(times(f.packets(1, batch('watchdog:hv1', 'vm3', [10_000], 'agent:a'))), [10_000]);
  // a partition taken away forgets what it knew: a recovery there is then kept whole
  f.forget(1);
  assert.deepEqual(times(f.packets(1, batch('watchdog:hv1', 'vm1', [10_000], 'agent:a'))), [10_000]);
});

test('ordinary batches pass untouched, and the per-partition memory is bounded', () => {
  const f = new RecoveryFilter({ maxKeysPerPartition: 4 });
  const b = batch('replay', null, [1, 2, 3]);
  assert.equal(f.packets(0, b), b.packets, 'no VM: nothing to compare, the same array');
  for (let i = 0; i < 100; i++) f.packets(0, batch(`agent:x${i}`, `vm${i}`, [i * 1_000_000]));
  // the oldest keys went: a recovery of agent x0 is kept whole rather than cut by a stale bound
  assert.deepEqual(times(f.packets(0, batch('watchdog:hv1', 'vm0', [5], 'agent:x0'))), [5]);
  // the newest are still known
  assert.deepEqual(times(f.packets(0, batch('watchdog:hv1', 'vm99', [5], 'agent:x99'))), []);
});

test('an agent cut off from the bus, not dead: its retried sends that come after the recovery are the ones dropped', () => {
  const f = new RecoveryFilter();
  f.packets(0, batch('agent:a', 'vm1', [10_000, 20_000]));
  // the agent lost the bus after 20,000; the watchdog recovered 30,000–80,000 (and the 20,000 it had)
  assert.deepEqual(
    times(f.packets(0, batch('watchdog:hv1', 'vm1', [20_001, 30_000, 80_000], 'agent:a'))),
    [30_000, 80_000],
  );
  // the link comes back and the agent's producer delivers what it had kept retrying: 30,000 and
  // 80,000 were recovered already; 5,000 is older than the recovery (nobody else had it)
  assert.deepEqual(times(f.packets(0, batch('agent:a', 'vm1', [5_000, 30_000, 80_000]))), [5_000]);
  assert.equal(f.late, 2);
  // its frames after the recovery (it was promoted again) pass
  assert.deepEqual(times(f.packets(0, batch('agent:a', 'vm1', [500_000]))), [500_000]);
});

test("a partition's state survives a checkpoint: snapshot, restore into a new filter, and records read again change nothing", () => {
  const f = new RecoveryFilter();
  f.packets(4, batch('agent:a', 'vm1', [1_000, 9_000]));
  f.packets(4, batch('watchdog:hv1', 'vm1', [30_000], 'agent:b'));
  f.packets(5, batch('agent:a', 'vm2', [7_000]));
  const snap = f.snapshot(4);
  assert.deepEqual(snap, [
    ['vm1\u0000agent:a', 9_000, null, null],
    ['vm1\u0000agent:b', null, 30_000, 30_000],
  ]);
  // JSON is how it travels
  const g = new RecoveryFilter();
  g.restore(4, JSON.parse(JSON.stringify(snap)));
  assert.deepEqual(g.snapshot(4), snap);
  assert.deepEqual(g.snapshot(5), [], 'only the partition asked for');
  // the input before the checkpoint's offset is read again: merging leaves the state as it was
  g.packets(4, batch('agent:a', 'vm1', [1_000]));
  g.restore(4, [['vm1\u0000agent:a', 2_000, null, null]]);
  assert.deepEqual(g.snapshot(4)[1], ['vm1\u0000agent:a', 9_000, null, null]);
  // and the restored filter decides as the first one would have
  const rec = batch('watchdog:hv1', 'vm1', [8_000, 9_500, 20_000], 'agent:a');
  assert.deepEqual(times(g.packets(4, structuredClone(rec))), times(f.packets(4, rec)));
  assert.deepEqual(times(g.packets(4, batch('agent:b', 'vm1', [30_500, 60_000]))), [60_000], 'b: late sends dropped');
});
