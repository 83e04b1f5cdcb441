import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Assignment } from '@cordon/schemas';
import { ProtectionWindows, type SensorFrame } from '../src/index.js';

const frame = (tsUs: number): SensorFrame => ({ tsUs, origLen: 60, frame: Buffer.alloc(60, tsUs % 251) });
const asg = (o: Partial<Assignment>): Assignment => ({
  vm: 'vm-1',
  mode: 'watchdog',
  host: 'hv1',
  agent: null,
  incarnation: null,
  policy_version: 1,
  reason: '',
  since_us: 0,
  enforcer: null,
  handoff_us: 0,
  epoch: 1,
  gated: false,
  recovery_of: null,
  recovery_from_us: 0,
  clock_offset_us: 0,
  ...o,
});
const opts = { holdUs: 10_000_000, maxBytesPerVm: 1 << 20, maxBytes: 1 << 20 };

test('a watchdog publishes a VM nobody was assigned; handing over ahead, it stops at the boundary and holds the rest', () => {
  const w = new ProtectionWindows({
    ...opts,
    isMe: (a) => a.mode === 'watchdog' && a.host === 'hv1',
    unassignedIsMine: true,
  });
  assert.equal(w.offer('vm-1', frame(100)), true);
  assert.deepEqual(w.assign(asg({ mode: 'agent', agent: 'agt', handoff_us: 300, epoch: 2 })), []);
  assert.equal(w.offer('vm-1', frame(200)), true, 'before the boundary: still ours');
  assert.equal(w.offer('vm-1', frame(300)), false, 'from it on: held');
  assert.equal(w.protects('vm-1'), false);
  // the agent is lost: back from its lease (250 < 300: frames from 300 on are held, so they come back)
  const back = w.assign(asg({ handoff_us: 250, epoch: 3 }));
  assert.deepEqual(
    back.map((f) => f.tsUs),
    [300],
  );
  assert.equal(w.offer('vm-1', frame(400)), true);
  assert.deepEqual(w.acks(), { 'vm-1': 3 });
  // an older assignment seen late changes nothing
  assert.deepEqual(w.assign(asg({ mode: 'agent', agent: 'agt', handoff_us: 0, epoch: 2 })), []);
  assert.equal(w.offer('vm-1', frame(500)), true);
});

/** A watchdog's windows, and an agent's (incarnation i1, leased). */
function sensorWindows() {
  return {
    wd: new ProtectionWindows({ ...opts, isMe: (a) => a.mode === 'watchdog', unassignedIsMine: true }),
    ag: new ProtectionWindows({
      ...opts,
      isMe: (a) => a.mode === 'agent' && a.incarnation === 'i1',
      unassignedIsMine: false,
      leased: true,
    }),
  };
}

/**
 * A watchdog's and an agent's (incarnation i1) windows over vm-1, applying the same
 * assignments; `published` counts how often each frame (by time) was published by either.
 */
function twoSensors() {
  const { wd, ag } = sensorWindows();
  const published = new Map<number, number>();
  const pub = (fs: SensorFrame[]) => fs.forEach((f) => published.set(f.tsUs, (published.get(f.tsUs) ?? 0) + 1));
  const offer = (ts: number) => {
    if (wd.offer('vm-1', frame(ts))) pub([frame(ts)]);
    if (ag.offer('vm-1', frame(ts))) pub([frame(ts)]);
  };
  const both = (a: Assignment) => {
    pub(wd.assign(a));
    pub(ag.assign(a));
  };
  return { ag, published, pub, offer, both };
}

test('a frame is published by at most one of two sensors that apply the same assignments', () => {
  const { ag, published, pub, offer, both } = twoSensors();
  for (let t = 0; t < 100; t += 10) offer(t);
  both(asg({ mode: 'agent', agent: 'agt', incarnation: 'i1', handoff_us: 150, epoch: 1 }));
  for (let t = 100; t < 200; t += 10) offer(t);
  // the agent announces leases; frames past the last one wait for the next
  for (const r of ag.extendLease(180)) pub(r.frames);
  for (let t = 200; t < 260; t += 10) offer(t);
  for (const r of ag.extendLease(240)) pub(r.frames);
  // it dies: the watchdog takes over from its last lease
  both(asg({ handoff_us: 240, epoch: 2 }));
  for (let t = 260; t < 300; t += 10) offer(t);
  for (let t = 0; t < 300; t += 10) assert.equal(published.get(t), 1, `frame ${t} published once`);
});

test('powered off, then on with its agent already inspecting: the agent takes the frames from the power-on, nobody skips or repeats one', () => {
  const { ag, published, pub, offer, both } = twoSensors();
  for (let t = 0; t < 50; t += 10) offer(t);
  both(asg({ mode: 'none', host: 'hv1', since_us: 50, handoff_us: 50, epoch: 1 }));
  // it runs again from 50; its power record comes late, after the agent's heartbeats: the
  // coordinator's boundary is when it became nobody's (decide), in the past
  for (let t = 50; t < 120; t += 10) offer(t);
  both(asg({ mode: 'agent', agent: 'agt', incarnation: 'i1', since_us: 120, handoff_us: 50, epoch: 2 }));
  for (let t = 120; t < 150; t += 10) offer(t);
  for (const r of ag.extendLease(150)) pub(r.frames);
  for (let t = 0; t < 150; t += 10) assert.equal(published.get(t), 1, `frame ${t} published once`);
});

test("an assignment for another incarnation of the same agent is not this one's", () => {
  const ag = new ProtectionWindows({
    ...opts,
    isMe: (a) => a.mode === 'agent' && a.agent === 'agt' && (a.incarnation === null || a.incarnation === 'new'),
    unassignedIsMine: false,
    leased: true,
  });
  ag.extendLease(1_000);
  ag.assign(asg({ mode: 'agent', agent: 'agt', incarnation: 'old', handoff_us: 0, epoch: 5 }));
  assert.equal(ag.offer('vm-1', frame(10)), false);
  const mine = ag.assign(asg({ mode: 'agent', agent: 'agt', incarnation: 'new', handoff_us: 5, epoch: 7 }));
  assert.deepEqual(
    mine.map((f) => f.tsUs),
    [10],
  );
});

test('held frames are bounded by time and size', () => {
  const w = new ProtectionWindows({
    holdUs: 100,
    maxBytesPerVm: 600,
    maxBytes: 600,
    isMe: () => false,
    unassignedIsMine: false,
  });
  for (let t = 0; t < 20; t++) w.offer('vm-1', frame(t * 10));
  assert.ok(w.heldBytes() <= 600);
  assert.ok(w.evicted > 0, 'size evictions of frames still within the hold are counted');
});

test("taking a VM back from a lost agent: the frames held before the lease come back as that agent's recovery, once, oldest first", () => {
  const w = new ProtectionWindows({
    ...opts,
    isMe: (a) => a.mode === 'watchdog' && a.host === 'hv1',
    unassignedIsMine: true,
  });
  w.assign(asg({ mode: 'agent', agent: 'agt', handoff_us: 100, epoch: 2 }));
  for (const t of [50, 120, 200, 260, 300, 410]) w.offer('vm-1', frame(t));
  // the agent died after its heartbeat at 250; its lease was 300: back from 300, recovery from 150
  const back = w.assign(asg({ handoff_us: 300, epoch: 3, recovery_of: 'agent:agt', recovery_from_us: 150 }));
  assert.deepEqual(
    back.map((f) => [f.tsUs, f.recoveryOf ?? null]),
    [
      [200, 'agent:agt'],
      [260, 'agent:agt'],
      [300, null],
      [410, null],
    ],
    'before 150: the agent surely delivered them, not published; from the lease on: the watchdog’s own',
  );
  assert.equal(w.offer('vm-1', frame(500)), true);
  // a frame stamped inside the recovery but read from the ring after the assignment came (a
  // restart is decided within milliseconds of the death): published, marked
  const late = frame(280);
  assert.equal(w.offer('vm-1', late), true);
  assert.equal(late.recoveryOf, 'agent:agt');
  const older = frame(140);
  assert.equal(w.offer('vm-1', older), false, 'before the recovery: the agent delivered it');
  assert.equal(older.recoveryOf, undefined);
  assert.deepEqual(w.assign(asg({ handoff_us: 300, epoch: 3, recovery_of: 'agent:agt', recovery_from_us: 150 })), []);
  assert.deepEqual(
    w.assign(asg({ handoff_us: 300, epoch: 4, recovery_of: 'agent:agt', recovery_from_us: 150 })),
    [],
    'nothing is recovered twice',
  );
  // the next assignment (the agent again) ends the recovery: a late frame of it is held, not marked
  w.assign(asg({ mode: 'agent', agent: 'agt', handoff_us: 900, epoch: 5 }));
  const after = frame(290);
  assert.equal(w.offer('vm-1', after), false);
  assert.equal(after.recoveryOf, undefined);
});

test("an agent whose clock runs ahead: with its assignment's clock offset, each frame is published once, on the host's clock", () => {
  const SKEW = 25; // the agent stamps every frame 25 µs later than the watchdog
  /** One packet (true time `t`) as a sensor stamped it: the bytes say which packet it is. */
  const seen = (stamp: number, t: number): SensorFrame => {
    const b = Buffer.alloc(60);
    b.writeUInt32BE(t);
    return { tsUs: stamp, origLen: 60, frame: b };
  };
  const run = (told: number) => {
    const { wd, ag } = sensorWindows();
    const published = new Map<number, number>();
    const stamps: Array<[number, number]> = [];
    const pub = (fs: SensorFrame[]) =>
      fs.forEach((f) => {
        const t = f.frame.readUInt32BE(0);
        published.set(t, (published.get(t) ?? 0) + 1);
        stamps.push([t, f.tsUs]);
      });
    const host = (fs: SensorFrame[]) => fs.map((f) => ag.onHostClock('vm-1', f));
    const offer = (t: number) => {
      if (wd.offer('vm-1', seen(t, t))) pub([seen(t, t)]);
      if (ag.offer('vm-1', seen(t + SKEW, t))) pub(host([seen(t + SKEW, t)]));
    };
    const both = (a: Assignment) => {
      pub(wd.assign(a));
      pub(host(ag.assign(a)));
    };
    for (let t = 0; t < 100; t += 5) offer(t);
    both(asg({ mode: 'agent', agent: 'agt', incarnation: 'i1', handoff_us: 150, epoch: 1, clock_offset_us: told }));
    for (let t = 100; t < 200; t += 5) offer(t);
    for (const r of ag.extendLease(180 + SKEW)) pub(host(r.frames));
    for (let t = 200; t < 260; t += 5) offer(t);
    // its lease is on its own clock; the coordinator takes the VM back from it on the host's
    const lease = 240 + SKEW;
    for (const r of ag.extendLease(lease)) pub(host(r.frames));
    both(asg({ handoff_us: lease - told, epoch: 2 }));
    for (let t = 260; t < 300; t += 5) offer(t);
    return { counts: [...Array(60).keys()].map((k) => published.get(k * 5) ?? 0), stamps };
  };
  const told = run(SKEW);
  assert.deepEqual(told.counts, Array(60).fill(1), 'told its offset: every packet once');
  for (const [t, stamp] of told.stamps) assert.equal(stamp, t, `packet ${t} published stamped as the host stamped it`);
  const untold = run(0).counts;
  assert.deepEqual(
    untold.map((n, k) => [k * 5, n]).filter(([, n]) => n !== 1),
    [
      [125, 2],
      [130, 2],
      [135, 2],
      [140, 2],
      [145, 2],
      [240, 0],
      [245, 0],
      [250, 0],
      [255, 0],
      [260, 0],
    ],
    'not told: the 25 µs before the first boundary published by both, the 25 before the second by neither',
  );
});
