import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { test, type TestContext } from 'node:test';
import { pino } from 'pino';
import { createContext, silentLogger, type Context } from '@cordon/runtime';
import {
  ERR_VSPHERE_LOGIN_FAILED,
  ERR_VSPHERE_TLS,
  VsphereConnector,
  type ConnectorCursor,
  type PlatformEvent,
} from '../src/index.js';
import { dedup, Recorder, skipReason, startSim, until, type Sim } from './vcsim.js';

const skip = skipReason();
if (skip !== null) console.log(`# vsphere connector integration tests skipped: ${skip}`);

function connector(sim: Sim, ctx: Context = createContext({ log: silentLogger })): VsphereConnector {
  // Short polls and backoff: a loaded 2-core machine still reconnects within the deadlines.
  return new VsphereConnector({
    url: sim.url,
    username: sim.username,
    password: sim.password,
    caFile: sim.ca,
    ctx,
    pollSeconds: 5,
    backoff: { initialMs: 100, maxMs: 2000 },
  });
}

/** Run a connector for the rest of the test; stop it at the end. */
function follow(t: TestContext, c: VsphereConnector, rec: Recorder, from?: ConnectorCursor): { done: Promise<void> } {
  const done = c.run(rec, from);
  t.after(() => c.stop());
  return { done };
}

const power = { poweredOn: 'on', poweredOff: 'off', suspended: 'suspended' } as const;

test('every VM and host of the simulator appears, on the host it runs on', { skip: skip ?? false }, async (t) => {
  const sim = await startSim(t, ['-dc', '1', '-cluster', '2', '-host', '3', '-standalone-host', '2', '-vm', '3']);
  const [vms, hosts] = await Promise.all([sim.list(), sim.hosts()]);
  assert.equal(vms.length, 2 * 3 + 2 * 3, 'the model: 3 VMs per cluster pool and per standalone host');
  const c = connector(sim);
  const snap = await c.snapshot();

  assert.deepEqual(
    snap.hosts.map((h) => ({ id: h.id, name: h.name, clustered: h.cluster !== null, connection: h.connection })),
    hosts
      .map((h) => ({
        id: h.moref,
        name: h.name,
        clustered: h.parentType === 'ClusterComputeResource',
        connection: 'connected',
      }))
      .sort((a, b) => a.id.localeCompare(b.id)),
  );
  assert.deepEqual(
    snap.vms.map((v) => ({ id: v.id, name: v.name, host: v.host, power: v.power, template: v.template })),
    vms
      .map((v) => ({ id: v.instanceUuid, name: v.name, host: v.host, power: power[v.power], template: v.template }))
      .sort((a, b) => a.id.localeCompare(b.id)),
  );
  for (const vm of snap.vms) {
    assert.equal(vm.nics.length, 1, `${vm.name} has its one NIC`);
    assert.match(vm.nics[0]!.mac, /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
    assert.match(vm.nics[0]!.network ?? '', /^DC0_DVPG0$/);
  }

  // run() delivers the same state through onSync.
  const rec = new Recorder();
  follow(t, c, rec);
  const first = await until('the first onSync', () => rec.syncs[0]);
  assert.deepEqual(first, snap);
  assert.deepEqual(rec.statuses[0], { connected: true });
});

/** power off, power on, migrate, clone, snapshot + revert, destroy: the events each yields. */
async function scriptedSequence(sim: Sim, rec: Recorder, opts: { migrate: boolean }) {
  const vms = await sim.list();
  const a = vms.find((v) => v.power === 'poweredOn')!;
  const sentinel = vms.find((v) => v.power === 'poweredOn' && v.moref !== a.moref)!;
  const expected: Array<Partial<PlatformEvent> & { kind: PlatformEvent['kind'] }> = [];

  await sim.driver('power-off', a.name);
  expected.push({ kind: 'powered_off', vm: a.instanceUuid, host: a.host });
  await sim.driver('power-on', a.name);
  expected.push({ kind: 'powered_on', vm: a.instanceUuid, host: a.host });
  let host = a.host;
  if (opts.migrate) {
    const hosts = await sim.hosts();
    const src = hosts.find((h) => h.moref === a.host)!;
    const dest =
      hosts.find((h) => h.parent === src.parent && h.moref !== a.host) ?? hosts.find((h) => h.moref !== a.host)!;
    await sim.driver('migrate', a.name, dest.name);
    expected.push({ kind: 'migrated', vm: a.instanceUuid, host: dest.moref, fromHost: a.host });
    host = dest.moref;
  }
  const clone = await sim.driver<{ instanceUuid: string; host: string; name: string }>(
    'clone',
    a.name,
    `${a.name}-clone`,
  );
  expected.push({ kind: 'created', vm: clone.instanceUuid, host: clone.host });
  expected.push({ kind: 'cloned', vm: clone.instanceUuid, host: clone.host, sourceVm: a.instanceUuid });
  await sim.driver('snapshot', a.name, 'before-upgrade');
  await sim.driver('revert', a.name, 'before-upgrade');
  expected.push({ kind: 'reverted', vm: a.instanceUuid, host, snapshot: 'before-upgrade' });
  await sim.driver('destroy', clone.name); // a clone of a running VM is created powered off
  expected.push({ kind: 'deleted', vm: clone.instanceUuid, host: clone.host });
  // A last, known event: once it has arrived, everything before it has too.
  await sim.driver('power-off', sentinel.name);
  expected.push({ kind: 'powered_off', vm: sentinel.instanceUuid, host: sentinel.host });
  await until('the sentinel event', () => rec.find('powered_off', sentinel.instanceUuid));
  return { a, clone, expected };
}

function assertEvents(events: PlatformEvent[], expected: Array<Partial<PlatformEvent>>): void {
  assert.deepEqual(
    events.map((e) =>
      Object.fromEntries(Object.keys(expected[events.indexOf(e)] ?? e).map((k) => [k, e[k as keyof PlatformEvent]])),
    ),
    expected,
  );
  const ids = events.map((e) => e.id);
  assert.equal(new Set(ids).size, ids.length, 'every id once');
  for (const e of events) {
    assert.match(e.id, /^(event:\d+|task:task-\d+)$/);
    assert.ok(e.ts > 1.7e12);
  }
  for (let i = 1; i < events.length; i++) assert.ok(events[i]!.ts >= events[i - 1]!.ts, 'in the platform time order');
}

test(
  'a scripted sequence yields exactly the expected events, in order, each once (vCenter)',
  { skip: skip ?? false },
  async (t) => {
    const sim = await startSim(t, ['-cluster', '1', '-host', '3', '-standalone-host', '0', '-vm', '3']);
    const c = connector(sim);
    const rec = new Recorder();
    follow(t, c, rec);
    await until('the first onSync', () => rec.syncs[0]);
    const { a, clone, expected } = await scriptedSequence(sim, rec, { migrate: true });
    assertEvents(rec.events, expected);
    assert.equal(rec.syncs.length, 1, 'no reconnect happened');
    assert.equal(rec.overlapped, false, 'handlers never overlap');
    // The state followed too: A on its new host with its snapshot, the clone gone again. The
    // state comes from property updates, a channel of its own: the sentinel *event* says every
    // event has arrived, not that every property change has (a CI run read A's snapshot as
    // null here), so the state is waited for.
    const movedTo = expected.find((e) => e.kind === 'migrated')!.host;
    await until(
      "A's host and snapshot, the clone gone",
      () => {
        const v = rec.vms.get(a.instanceUuid);
        return v?.host === movedTo && v?.snapshot === 'before-upgrade' && !rec.vms.has(clone.instanceUuid);
      },
      30_000,
    ).catch(() => undefined);
    const now = rec.vms.get(a.instanceUuid)!;
    assert.equal(now.host, movedTo);
    assert.equal(now.snapshot, 'before-upgrade');
    assert.equal(rec.vms.has(clone.instanceUuid), false);
    assert.deepEqual(rec.removed, [clone.instanceUuid]);
    // The cursor handed with each event moves forward.
    const keys = rec.cursors.map((cur) => Number(cur.event_key));
    assert.deepEqual(
      [...keys].sort((x, y) => x - y),
      keys,
    );
    const list = await sim.list();
    const want = list.map((v) => `${v.instanceUuid} ${v.host} ${power[v.power]}`).sort();
    const have = () => [...rec.vms.values()].map((v) => `${v.id} ${v.host} ${v.power}`).sort();
    await until(
      'the followed state to match the driver',
      () => JSON.stringify(have()) === JSON.stringify(want),
      30_000,
    ).catch(() => undefined);
    assert.deepEqual(have(), want);
  },
);

test(
  'session killed mid-sequence, connector restarted from its cursor: no event lost, none doubled (vCenter)',
  { skip: skip ?? false },
  async (t) => {
    const sim = await startSim(t, ['-cluster', '1', '-host', '3', '-standalone-host', '0', '-vm', '3']);
    const vms = await sim.list();
    const [a, b] = vms;
    const hosts = await sim.hosts();
    const dest = hosts.find((h) => h.moref !== a!.host)!;

    const c1 = connector(sim);
    const r1 = new Recorder();
    const run1 = follow(t, c1, r1);
    await until('the first onSync', () => r1.syncs[0]);

    await sim.driver('power-off', a!.name);
    await until('powered_off before the kill', () => r1.find('powered_off', a!.instanceUuid));
    const killed = await sim.driver<{ terminated: number }>('terminate-sessions');
    assert.ok(killed.terminated >= 1);
    // While the connector's session is dead: these must arrive after it logs in again.
    await sim.driver('power-on', a!.name);
    await sim.driver('migrate', a!.name, dest.name);
    await until(
      'powered_on and migrated after the reconnect',
      () => r1.find('powered_on', a!.instanceUuid) && r1.find('migrated', a!.instanceUuid),
    );
    assert.ok(r1.syncs.length >= 2, 'a resync after the reconnect');
    assert.ok(
      r1.statuses.some((s) => !s.connected && s.error?.code === 'CORDON_ERR_VSPHERE_SESSION_EXPIRED'),
      JSON.stringify(r1.statuses),
    );

    // Stop, act while nobody watches, start a new connector from the last cursor.
    await c1.stop();
    await run1.done;
    const cursor = r1.cursors.at(-1)!;
    await sim.driver('suspend', b!.name);
    const clone = await sim.driver<{ instanceUuid: string }>('clone', a!.name, 'a-clone');
    await sim.driver('snapshot', a!.name, 's1');
    await sim.driver('revert', a!.name);

    const c2 = connector(sim);
    const r2 = new Recorder();
    follow(t, c2, r2, cursor);
    await until(
      'the events that happened while stopped',
      () =>
        r2.find('reverted', a!.instanceUuid) &&
        r2.find('cloned', clone.instanceUuid) &&
        r2.find('suspended', b!.instanceUuid),
    );
    await sim.driver('power-off', b!.name); // suspended -> off: the sentinel
    await until('the sentinel', () => r2.find('powered_off', b!.instanceUuid));

    const all = dedup([...r1.events, ...r2.events]);
    assert.deepEqual(
      all.map((e) => `${e.kind} ${e.vm}`),
      [
        `powered_off ${a!.instanceUuid}`,
        `powered_on ${a!.instanceUuid}`,
        `migrated ${a!.instanceUuid}`,
        `suspended ${b!.instanceUuid}`,
        `created ${clone.instanceUuid}`,
        `cloned ${clone.instanceUuid}`,
        `reverted ${a!.instanceUuid}`,
        `powered_off ${b!.instanceUuid}`,
      ],
    );
    // Nothing the first connector delivered comes again from the cursor on; ids are distinct.
    const firstIds = new Set(r1.events.map((e) => e.id));
    assert.deepEqual(
      r2.events.filter((e) => firstIds.has(e.id)),
      [],
    );
    assert.equal(new Set(r1.events.map((e) => e.id)).size, r1.events.length);
    assert.equal(new Set(r2.events.map((e) => e.id)).size, r2.events.length);
    const lastKey = Number(cursor.event_key);
    for (const e of r2.events)
      if (e.id.startsWith('event:'))
        assert.ok(Number(e.id.slice(6)) > lastKey, `${e.id} is after the cursor ${lastKey}`);
    assert.equal(all.find((e) => e.kind === 'migrated')!.host, dest.moref);
    assert.equal(r2.syncs.length, 1);
    assert.equal(r2.syncs[0]!.vms.find((v) => v.id === b!.instanceUuid)!.power, 'suspended');
  },
);

test(
  'ESXi: the same sequence (no migration: one host), with a session kill, yields the same events',
  { skip: skip ?? false },
  async (t) => {
    const sim = await startSim(t, ['-esx', '-vm', '3']);
    const c = connector(sim);
    const snap = await c.snapshot();
    assert.equal(snap.hosts.length, 1);
    assert.equal(snap.hosts[0]!.cluster, null);
    assert.deepEqual(
      snap.vms.map((v) => v.host),
      snap.vms.map(() => snap.hosts[0]!.id),
    );

    const rec = new Recorder();
    follow(t, c, rec);
    await until('the first onSync', () => rec.syncs[0]);
    const vms = await sim.list();
    const a = vms[0]!;
    await sim.driver('power-off', a.name);
    await until('powered_off', () => rec.find('powered_off', a.instanceUuid));
    await sim.driver('terminate-sessions');
    const { expected } = await scriptedSequence(sim, rec, { migrate: false });
    assertEvents(rec.events.slice(1), expected.slice(0));
    assert.ok(rec.syncs.length >= 2, 'resynced after the kill');
  },
);

test('a login failure is a coded error and no log line holds the password', { skip: skip ?? false }, async (t) => {
  const sim = await startSim(t, ['-esx', '-vm', '1']);
  const lines: string[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  const log = pino({ level: 'trace' }, sink);
  const ctx = createContext({ log });
  const wrong = `${sim.password}-not-it`;
  const c = new VsphereConnector({
    url: sim.url,
    username: sim.username,
    password: wrong,
    caFile: sim.ca,
    ctx,
    backoff: { initialMs: 50, maxMs: 200 },
  });
  await assert.rejects(c.snapshot(), (err: unknown) => {
    assert.ok(ERR_VSPHERE_LOGIN_FAILED.is(err), String(err));
    assert.doesNotMatch(err.message, new RegExp(sim.password));
    return true;
  });
  const rec = new Recorder();
  const done = c.run(rec);
  await until(
    'three failed logins',
    () => rec.statuses.filter((s) => s.error?.code === 'CORDON_ERR_VSPHERE_LOGIN_FAILED').length >= 3,
  );
  await c.stop();
  await done;
  assert.equal(rec.syncs.length, 0);
  const text = lines.join('');
  assert.match(text, /Lost the vSphere connection/);
  assert.match(text, /CORDON_ERR_VSPHERE_LOGIN_FAILED/);
  assert.ok(!text.includes(wrong) && !text.includes(sim.password), 'the password is not in the logs');

  // Without the CA the certificate is refused; insecure accepts it and says so.
  const noCa = new VsphereConnector({ url: sim.url, username: sim.username, password: sim.password, ctx });
  await assert.rejects(noCa.snapshot(), (err: unknown) => ERR_VSPHERE_TLS.is(err));
  const insecure = new VsphereConnector({
    url: sim.url,
    username: sim.username,
    password: sim.password,
    insecure: true,
    ctx,
  });
  assert.equal((await insecure.snapshot()).vms.length, 1);
  assert.match(lines.join(''), /certificate verification is off/);
  assert.ok(!lines.join('').includes(sim.password));
});
