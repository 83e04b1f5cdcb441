import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ERR_LIBVIRT_CURSOR, EV, powerOfListed, Tracker, type Derived, type RawEvent } from '../src/index.js';

const A = 'aaaaaaaa-0000-4000-8000-000000000001';
const B = 'bbbbbbbb-0000-4000-8000-000000000002';
const running = { power: 'on' as const, state: 1, reason: 1, persistent: true, snapshot: null };
const off = { power: 'off' as const, state: 5, reason: 1, persistent: true, snapshot: null };
const paused = (reason: number) => ({
  power: 'suspended' as const,
  state: 3,
  reason,
  persistent: true,
  snapshot: null,
});

let clock = 1000;
function ev(
  uuid: string,
  event: number,
  detail: number,
  after: RawEvent['after'],
  name = uuid === A ? 'a' : 'b',
): RawEvent {
  return { ts: (clock += 1), uuid, name, event, detail, after };
}
const kinds = (ds: Derived[]) => ds.map((d) => d.event.kind);
function feed(t: Tracker, host: string, evs: RawEvent[]): Derived[] {
  return evs.flatMap((e) => t.apply(host, e));
}

test('the sequences libvirt 9 emits for virsh actions map to one event each', () => {
  const t = new Tracker();
  t.resync('h1', [], 1);
  // virsh define
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.DEFINED, 0, off)])), ['created']);
  // virsh start: RESUMED/UNPAUSED comes before STARTED/BOOTED (measured)
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.RESUMED, 0, running), ev(A, EV.STARTED, 0, running)])), [
    'powered_on',
  ]);
  // virsh snapshot-create-as on a running domain: a pause for the snapshot job, then resume
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.SUSPENDED, 0, paused(9)), ev(A, EV.RESUMED, 0, running)])), []);
  // virsh suspend / resume
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.SUSPENDED, 0, paused(1))])), ['suspended']);
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.RESUMED, 0, running)])), ['powered_on']);
  // virsh destroy: SHUTDOWN/FINISHED then STOPPED/DESTROYED
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.SHUTDOWN, 0, off), ev(A, EV.STOPPED, 1, off)])), ['powered_off']);
  // virsh snapshot-revert to a running snapshot while off: STARTED, RESUMED, DEFINED, all FROM_SNAPSHOT
  const revert = feed(t, 'h1', [
    ev(A, EV.STARTED, 3, { ...running, snapshot: 's1' }),
    ev(A, EV.RESUMED, 2, { ...running, snapshot: 's1' }),
    ev(A, EV.DEFINED, 3, { ...running, snapshot: 's1' }),
  ]);
  assert.deepEqual(kinds(revert), ['reverted', 'powered_on']);
  assert.equal(revert[0]?.event.snapshot, 's1');
  // virsh snapshot-revert to a shut-off snapshot while running: STOPPED then DEFINED, FROM_SNAPSHOT
  const back = feed(t, 'h1', [
    ev(A, EV.STOPPED, 6, { ...off, snapshot: 's0' }),
    ev(A, EV.DEFINED, 3, { ...off, snapshot: 's0' }),
  ]);
  assert.deepEqual(kinds(back), ['reverted', 'powered_off']);
  assert.equal(back[0]?.event.snapshot, 's0');
  // a running snapshot reverted while running: the process is replaced, the power does not change
  feed(t, 'h1', [ev(A, EV.RESUMED, 0, running), ev(A, EV.STARTED, 0, running)]);
  assert.deepEqual(
    kinds(
      feed(t, 'h1', [
        ev(A, EV.STOPPED, 6, running),
        ev(A, EV.STARTED, 3, running),
        ev(A, EV.RESUMED, 2, running),
        ev(A, EV.DEFINED, 3, { ...running, snapshot: 's1' }),
      ]),
    ),
    ['reverted'],
  );
  // crash, pm-suspend
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.PMSUSPENDED, 0, paused(0))])), ['suspended']);
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.CRASHED, 0, off)])), ['powered_off']);
  // virsh undefine
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.UNDEFINED, 0, null)])), ['deleted']);
  // a late event of the deleted domain changes nothing; an unknown event type is ignored
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.UNDEFINED, 0, null), ev(B, 42, 0, undefined)])), ['created']);
});

test('ids are uuid/generation/kind, unique per domain, and the generation survives deletion', () => {
  const t = new Tracker();
  t.resync('h1', [], 1);
  const ds = feed(t, 'h1', [
    ev(A, EV.DEFINED, 0, off),
    ev(A, EV.STARTED, 0, running),
    ev(A, EV.STOPPED, 1, null),
    ev(A, EV.UNDEFINED, 0, null),
    ev(A, EV.DEFINED, 0, off),
  ]);
  assert.deepEqual(
    ds.map((d) => d.event.id),
    [
      `libvirt/${A}/1/created`,
      `libvirt/${A}/2/powered_on`,
      `libvirt/${A}/3/powered_off`,
      `libvirt/${A}/4/deleted`,
      `libvirt/${A}/5/created`,
    ],
  );
  assert.equal(ds[0]?.event.vmName, 'a');
  assert.equal(ds[0]?.event.host, 'h1');
});

test('undefining a running domain deletes it when it stops, not before', () => {
  const t = new Tracker();
  t.resync('h1', [{ uuid: A, name: 'a', power: 'on' }], 1);
  t.resync('h1', [{ uuid: A, name: 'a', power: 'on' }], 2);
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.UNDEFINED, 0, { ...running, persistent: false })])), []);
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.STOPPED, 1, null)])), ['powered_off', 'deleted']);
  // A transient domain (virsh create): it starts without DEFINED and is gone when it stops.
  assert.deepEqual(
    kinds(feed(t, 'h1', [ev(B, EV.RESUMED, 0, running), ev(B, EV.STARTED, 0, running), ev(B, EV.STOPPED, 1, null)])),
    ['created', 'powered_on', 'powered_off', 'deleted'],
  );
});

test('the first listing of a host is the baseline; later listings synthesize what the diff implies', () => {
  const t = new Tracker();
  assert.deepEqual(
    t.resync(
      'h1',
      [
        { uuid: A, name: 'a', power: 'on' },
        { uuid: B, name: 'b', power: 'off' },
      ],
      1,
    ),
    [],
  );
  const C = 'cccccccc-0000-4000-8000-000000000003';
  const ds = t.resync(
    'h1',
    [
      { uuid: B, name: 'b', power: 'suspended' },
      { uuid: C, name: 'c', power: 'on' },
    ],
    50,
  );
  assert.deepEqual(
    ds.map((d) => `${d.event.vmName}:${d.event.kind}`),
    ['b:suspended', 'c:created', 'c:powered_on', 'a:deleted'],
  );
  assert.ok(ds.every((d) => d.event.ts === 50));
  // The same listing again: nothing.
  assert.deepEqual(
    t.resync(
      'h1',
      [
        { uuid: B, name: 'b', power: 'suspended' },
        { uuid: C, name: 'c', power: 'on' },
      ],
      60,
    ),
    [],
  );
});

test('a change seen both in the listing and as a buffered event is delivered once', () => {
  const t = new Tracker();
  t.resync('h1', [{ uuid: A, name: 'a', power: 'off' }], 1);
  // Started while the sidecar was between registering for events and listing.
  assert.deepEqual(kinds(t.resync('h1', [{ uuid: A, name: 'a', power: 'on' }], 2)), ['powered_on']);
  assert.deepEqual(kinds(feed(t, 'h1', [ev(A, EV.RESUMED, 0, running), ev(A, EV.STARTED, 0, running)])), []);
  // Started, stopped and started again around the listing: every transition once.
  const t2 = new Tracker();
  t2.resync('h1', [{ uuid: A, name: 'a', power: 'off' }], 1);
  const ds = [
    ...t2.resync('h1', [{ uuid: A, name: 'a', power: 'on' }], 2),
    ...feed(t2, 'h1', [ev(A, EV.STARTED, 0, running), ev(A, EV.STOPPED, 1, running), ev(A, EV.STARTED, 0, running)]),
  ];
  assert.deepEqual(kinds(ds), ['powered_on', 'powered_off', 'powered_on']);
});

test('a connector restarted from a cursor gives a re-derived event the same id, and a new one a new id', () => {
  const t = new Tracker();
  t.resync('h1', [{ uuid: A, name: 'a', power: 'off' }], 1);
  const [created] = feed(t, 'h1', [ev(B, EV.DEFINED, 0, off)]);
  const committed = created!.cursor;
  // Delivered after the cursor the caller committed, then the caller crashed.
  const [on] = feed(t, 'h1', [ev(A, EV.STARTED, 0, running)]);
  const again = Tracker.fromCursor(JSON.parse(JSON.stringify(committed)) as typeof committed);
  const redone = again.resync(
    'h1',
    [
      { uuid: A, name: 'a', power: 'on' },
      { uuid: B, name: 'b', power: 'off' },
    ],
    99,
  );
  assert.deepEqual(
    redone.map((d) => d.event.id),
    [on!.event.id],
  );
  // From the newest cursor instead: nothing to re-derive; the next transition is new.
  const latest = Tracker.fromCursor(on!.cursor);
  assert.deepEqual(
    latest.resync(
      'h1',
      [
        { uuid: A, name: 'a', power: 'on' },
        { uuid: B, name: 'b', power: 'off' },
      ],
      99,
    ),
    [],
  );
  const [stopped] = feed(latest, 'h1', [ev(A, EV.STOPPED, 1, off)]);
  assert.equal(stopped?.event.id, `libvirt/${A}/2/powered_off`);
  assert.notEqual(stopped?.event.id, on?.event.id);
});

test('a domain moving between two followed hosts is migrated, from either side of the race', () => {
  for (const order of ['source first', 'destination first', 'source done before destination'] as const) {
    const t = new Tracker(true);
    t.resync('h1', [{ uuid: A, name: 'a', power: 'on' }], 1);
    t.resync('h2', [], 1);
    const leave = [ev(A, EV.SUSPENDED, 1, paused(2)), ev(A, EV.STOPPED, 3, null), ev(A, EV.UNDEFINED, 0, null)];
    const arrive = [ev(A, EV.DEFINED, 0, running), ev(A, EV.STARTED, 1, running), ev(A, EV.RESUMED, 1, running)];
    const ds =
      order === 'source first'
        ? [...feed(t, 'h1', leave.slice(0, 2)), ...feed(t, 'h2', arrive), ...feed(t, 'h1', leave.slice(2))]
        : order === 'destination first'
          ? [...feed(t, 'h2', arrive), ...feed(t, 'h1', leave)]
          : [...feed(t, 'h1', leave), ...feed(t, 'h2', arrive)];
    const relevant = ds.map((d) => `${d.event.kind}:${d.event.host}:${d.event.fromHost ?? ''}`);
    assert.ok(relevant.includes('migrated:h2:h1'), `${order}: ${relevant.join(' ')}`);
    assert.ok(
      !relevant.some((k) => k.startsWith('deleted') || k.startsWith('powered_off')),
      `${order}: ${relevant.join(' ')}`,
    );
    assert.equal(t.hostOf(A), 'h2');
  }
  // Migrated while the connector was away: the destination's listing has it running.
  const t = new Tracker(true);
  t.resync('h1', [{ uuid: A, name: 'a', power: 'on' }], 1);
  t.resync('h2', [], 1);
  const ds = t.resync('h2', [{ uuid: A, name: 'a', power: 'on' }], 5);
  assert.deepEqual(
    ds.map((d) => `${d.event.kind}:${d.event.fromHost}`),
    ['migrated:h1'],
  );
  assert.deepEqual(
    t.resync('h1', [], 6, (u) => u === A),
    [],
  );
});

test('a cursor is validated: what this connector did not write is refused with a coded error', () => {
  const good = new Tracker();
  good.resync('h1', [{ uuid: A, name: 'a b', power: 'suspended' }], 1);
  assert.deepEqual(Tracker.fromCursor(good.toCursor()).toCursor(), good.toCursor());
  const bad: Array<[unknown, RegExp]> = [
    [{}, /version undefined/],
    [{ v: 2 }, /version 2/],
    [[], /not an object/],
    [{ v: 1, x: 1 }, /unknown entry x/],
    [{ v: 1, [`d:${A}`]: 'nope' }, /not JSON/],
    [{ v: 1, [`d:${A}`]: '[1,"sideways","h","a",0]' }, /not \[generation/],
    [{ v: 1, [`d:${A}`]: '[-1,"on","h","a",0]' }, /not \[generation/],
  ];
  for (const [cursor, expected] of bad) {
    assert.throws(
      () => Tracker.fromCursor(cursor as never),
      (e: unknown) => ERR_LIBVIRT_CURSOR.is(e) && expected.test(e.message),
      JSON.stringify(cursor),
    );
  }
});

test('a listing taken while a domain starts (paused, reason starting-up) reads as running, not suspended', () => {
  assert.equal(powerOfListed(3, 11), 'on');
  assert.equal(powerOfListed(3, 9), 'on', 'a snapshot job');
  assert.equal(powerOfListed(3, 1), 'suspended', 'paused by a user');
  assert.equal(powerOfListed(1, 0), 'on');
  assert.equal(powerOfListed(5, 1), 'off');
});
