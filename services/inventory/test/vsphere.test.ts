/**
 * The inventory stage against the real vSphere simulator (infra/vcsim): every VM and host on
 * the inventory topic with its host placement; an administrator's sequence — power off, power
 * on, migrate, clone, snapshot + revert, destroy — as exactly the expected vm-events, in order,
 * each once, across a killed session and a restarted stage; the same on ESXi.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus, readAll, readTable, type Bus } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS, type InventoryRecord, type VmEvent } from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { skipReason, startSim, waitFor, type Sim } from '@cordon/testkit';
import { inventoryStage } from '../src/index.js';

const skip = skipReason();
if (skip) console.log(`# inventory stage vSphere tests skipped: ${skip}`);
const ctx = createContext({ log: silentLogger });

async function world(t: TestContext): Promise<Bus> {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-inventory-'));
  const bus = createEmbeddedBus({ dataDir: dir, ctx });
  await bus.admin.ensureTopics(allTopicSpecs());
  t.after(async () => {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return bus;
}

function sourceFor(sim: Sim, dir: string) {
  const cred = join(dir, 'vsphere.cred');
  writeFileSync(cred, `CORDON_VSPHERE_USERNAME=${sim.username}\nCORDON_VSPHERE_PASSWORD=${sim.password}\n`, {
    mode: 0o600,
  });
  return { sources: [{ url: `vsphere+${sim.url}`, credentialsFile: cred, caFile: sim.ca }] };
}

const inventoryOf = async (bus: Bus): Promise<Map<string, InventoryRecord>> => {
  const out = new Map<string, InventoryRecord>();
  for (const [, r] of await readTable(bus, TOPICS.inventory))
    if (r.value) out.set(r.key!.toString(), codecFor(TOPICS.inventory).decode(r.value));
  return out;
};
/** vm-events in platform time (the topic keeps order per VM, its partition; across VMs the time orders them). */
const eventsOf = async (bus: Bus): Promise<VmEvent[]> =>
  (await readAll(bus, TOPICS.vmEvents))
    .map((r) => codecFor(TOPICS.vmEvents).decode(r.value!))
    .sort((x, y) => x.ts_us - y.ts_us);

const POWER = { poweredOn: 'on', poweredOff: 'off', suspended: 'suspended' } as const;

async function assertInventoryMatches(bus: Bus, sim: Sim): Promise<void> {
  const [vms, hosts] = await Promise.all([sim.list(), sim.hosts()]);
  const server = new URL(sim.url).host;
  await waitFor(
    'every VM and host on the inventory topic',
    async () => {
      const inv = await inventoryOf(bus);
      return (
        vms.every((v) => inv.get(`vm:${v.instanceUuid}`)?.host === `${server}/${v.host}`) &&
        hosts.every((h) => inv.has(`host:${server}/${h.moref}`))
      );
    },
    60_000,
  );
  const inv = await inventoryOf(bus);
  const vmRecs = [...inv.values()].filter((r) => r.kind === 'vm');
  assert.equal(vmRecs.length, vms.length);
  for (const v of vms) {
    const r = inv.get(`vm:${v.instanceUuid}`)!;
    assert.equal(r.name, v.name);
    assert.equal(r.host, `${server}/${v.host}`, `${v.name} placed on its host`);
    assert.equal(r.power, POWER[v.power]);
    assert.equal(r.connector, 'vsphere');
    assert.ok(r.nics.length >= 1 && /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/.test(r.nics[0]!.mac));
  }
  for (const h of hosts) {
    const r = inv.get(`host:${server}/${h.moref}`)!;
    assert.equal(r.name, h.name);
    assert.equal(r.cluster !== null, h.parentType === 'ClusterComputeResource');
  }
}

test(
  'vCenter: every VM and host appears with its placement; the admin sequence is exactly the expected events, once each, across a killed session and a restart',
  { skip: skip ?? false, timeout: 300_000 },
  async (t) => {
    const sim = await startSim(t, ['-cluster', '1', '-host', '3', '-standalone-host', '1', '-vm', '3']);
    const bus = await world(t);
    const dir = mkdtempSync(join(tmpdir(), 'cordon-inventory-cred-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const config = sourceFor(sim, dir);
    let stage = await runStage(inventoryStage, { bus, ctx, config });
    t.after(() => stage.stop());
    await assertInventoryMatches(bus, sim);

    const server = new URL(sim.url).host;
    const vms = await sim.list();
    const a = vms.find((v) => v.power === 'poweredOn')!;
    const sentinel = vms.find((v) => v.power === 'poweredOn' && v.moref !== a.moref)!;
    const hosts = await sim.hosts();
    const src = hosts.find((h) => h.moref === a.host)!;
    const dest =
      hosts.find((h) => h.parent === src.parent && h.moref !== a.host) ?? hosts.find((h) => h.moref !== a.host)!;
    const expected: Array<Partial<VmEvent>> = [];
    const at = (h: string) => `${server}/${h}`;

    await sim.driver('power-off', a.name);
    expected.push({ kind: 'powered_off', vm: a.instanceUuid, host: at(a.host) });
    await sim.driver('power-on', a.name);
    expected.push({ kind: 'powered_on', vm: a.instanceUuid, host: at(a.host) });
    await sim.driver('migrate', a.name, dest.name);
    expected.push({ kind: 'migrated', vm: a.instanceUuid, host: at(dest.moref), from_host: at(a.host) });
    // the platform ends the connector's session: it logs in again and resyncs
    await sim.driver('terminate-sessions');
    const clone = await sim.driver<{ instanceUuid: string; host: string; name: string }>(
      'clone',
      a.name,
      `${a.name}-clone`,
    );
    expected.push({ kind: 'created', vm: clone.instanceUuid, host: at(clone.host) });
    expected.push({ kind: 'cloned', vm: clone.instanceUuid, host: at(clone.host), source_vm: a.instanceUuid });
    await waitFor('the clone on the topic', async () => (await eventsOf(bus)).some((e) => e.kind === 'cloned'), 60_000);
    // the stage stops; what happens meanwhile is delivered after its restart, once
    await stage.stop();
    await sim.driver('snapshot', a.name, 'before-upgrade');
    await sim.driver('revert', a.name, 'before-upgrade');
    expected.push({ kind: 'reverted', vm: a.instanceUuid, host: at(dest.moref), snapshot: 'before-upgrade' });
    await sim.driver('destroy', clone.name);
    expected.push({ kind: 'deleted', vm: clone.instanceUuid });
    stage = await runStage(inventoryStage, { bus, ctx, config });
    // the clone was destroyed while nobody followed: the resync reports it
    await waitFor(
      'the clone reported deleted',
      async () => (await eventsOf(bus)).some((e) => e.kind === 'deleted'),
      60_000,
    );
    await sim.driver('power-off', sentinel.name);
    expected.push({ kind: 'powered_off', vm: sentinel.instanceUuid, host: at(sentinel.host) });
    await waitFor(
      'the sentinel event',
      async () => (await eventsOf(bus)).some((e) => e.kind === 'powered_off' && e.vm === sentinel.instanceUuid),
      60_000,
    );

    const events = await eventsOf(bus);
    assert.deepEqual(
      events.map((e, i) => Object.fromEntries(Object.keys(expected[i] ?? e).map((k) => [k, e[k as keyof VmEvent]]))),
      expected,
      events.map((e) => `${e.kind} ${e.vm_name}`).join(', '),
    );
    assert.equal(new Set(events.map((e) => e.event_id)).size, events.length, 'every event once');
    for (const e of events) {
      assert.equal(e.connector, 'vsphere');
      assert.match(e.event_id, /#(event:\d+|task:task-\d+|resync:deleted:[0-9a-f-]+)$/);
    }
    // the inventory follows: A on its new host with its snapshot, the clone gone (a tombstone)
    const inv = await waitFor('the inventory to settle', async () => {
      const m = await inventoryOf(bus);
      return m.get(`vm:${a.instanceUuid}`)?.snapshot === 'before-upgrade' && !m.has(`vm:${clone.instanceUuid}`)
        ? m
        : null;
    });
    assert.equal(inv.get(`vm:${a.instanceUuid}`)!.host, at(dest.moref));
    assert.equal(inv.get(`vm:${sentinel.instanceUuid}`)!.power, 'off');
  },
);

test('ESXi (no vCenter): the same inventory and events', { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  const sim = await startSim(t, ['-esx', '-vm', '3']);
  const bus = await world(t);
  const dir = mkdtempSync(join(tmpdir(), 'cordon-inventory-cred-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const stage = await runStage(inventoryStage, { bus, ctx, config: sourceFor(sim, dir) });
  t.after(() => stage.stop());
  await assertInventoryMatches(bus, sim);
  const vms = await sim.list();
  const a = vms.find((v) => v.power === 'poweredOn')!;
  await sim.driver('power-off', a.name);
  await sim.driver('power-on', a.name);
  await sim.driver('snapshot', a.name, 's1');
  await sim.driver('revert', a.name, 's1');
  await waitFor('the revert', async () => (await eventsOf(bus)).some((e) => e.kind === 'reverted'), 60_000);
  const events = await eventsOf(bus);
  assert.deepEqual(
    events.map((e) => [e.kind, e.vm]),
    [
      ['powered_off', a.instanceUuid],
      ['powered_on', a.instanceUuid],
      ['reverted', a.instanceUuid],
    ],
  );
  assert.equal(events[2]!.snapshot, 's1');
});
