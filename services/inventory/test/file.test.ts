/**
 * The inventory file as a platform: its hosts and VMs on the inventory topic, its edits as
 * lifecycle events with ids derived from the file's content, each once — across a restart, an
 * edit made while the stage was down, and a crash between an event and its checkpoint.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { createEmbeddedBus, readAll, readTable, type Bus, type ConsumedRecord } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS, type InventoryRecord, type VmEvent } from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { waitFor } from '@cordon/testkit';
import { checkpointKey, eventsBetween, inventoryStage, stateOfFile } from '../src/index.js';
import { parseInventoryText } from '@cordon/policy';

const ctx = createContext({ log: silentLogger });

const yaml = (vms: Record<string, { host: string; power?: string }>) => {
  const byHost = new Map<string, string[]>();
  for (const [vm, { host, power }] of Object.entries(vms)) {
    const lines = byHost.get(host) ?? [];
    lines.push(`      ${vm}:`, `        ${power ? `power: ${power}` : 'nics: []'}`);
    byHost.set(host, lines);
  }
  return [
    'hosts:',
    ...['hv1', 'hv2'].flatMap((h) => [`  ${h}:`, '    vms:' + (byHost.has(h) ? '' : ' {}'), ...(byHost.get(h) ?? [])]),
    '',
  ].join('\n');
};

test('eventsBetween: created, deleted, migrated and power changes, with ids from the version hash', () => {
  const next = stateOfFile(
    parseInventoryText(yaml({ a: { host: 'hv2' }, b: { host: 'hv1', power: 'off' }, c: { host: 'hv1' } }), 'x.yaml'),
  );
  const evs = eventsBetween({ a: ['hv1', 'on'], b: ['hv1', 'on'], d: ['hv2', 'on'] }, next, 'f'.repeat(64), 1000);
  assert.deepEqual(
    evs.map((e) => [e.kind, e.vm, e.host, e.fromHost ?? null]),
    [
      ['powered_off', 'b', 'hv1', null],
      ['created', 'c', 'hv1', null],
      ['powered_on', 'c', 'hv1', null],
      ['migrated', 'a', 'hv2', 'hv1'],
      ['deleted', 'd', 'hv2', null],
    ],
  );
  assert.equal(evs[3]!.id, 'file:ffffffffffffffff:a:migrated');
  // the same version gives the same ids
  assert.deepEqual(
    eventsBetween({ a: ['hv1', 'on'] }, next, 'f'.repeat(64), 1).map((e) => e.id),
    eventsBetween({ a: ['hv1', 'on'] }, next, 'f'.repeat(64), 2).map((e) => e.id),
  );
});

async function world(t: TestContext): Promise<{ bus: Bus; file: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-inventory-file-'));
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
  await bus.admin.ensureTopics(allTopicSpecs());
  t.after(async () => {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { bus, file: join(dir, 'inventory.yaml') };
}

const eventsOf = async (bus: Bus): Promise<VmEvent[]> =>
  (await readAll(bus, TOPICS.vmEvents))
    .map((r) => codecFor(TOPICS.vmEvents).decode(r.value!))
    .sort((x, y) => x.ts_us - y.ts_us);
const inventoryOf = async (bus: Bus): Promise<Map<string, InventoryRecord>> => {
  const m = new Map<string, InventoryRecord>();
  for (const [, r] of await readTable(bus, TOPICS.inventory))
    if (r.value) m.set(r.key!.toString(), codecFor(TOPICS.inventory).decode(r.value));
  return m;
};

test(
  'the file as a platform: inventory, events once across a restart, an edit while down and a lost checkpoint',
  { timeout: 120_000 },
  async (t) => {
    const { bus, file } = await world(t);
    const config = { sources: [{ url: pathToFileURL(file).href, pollMs: 50 }] };
    writeFileSync(file, yaml({ web: { host: 'hv1' }, db: { host: 'hv1' }, old: { host: 'hv2' } }));
    let stage = await runStage(inventoryStage, { bus, ctx, config });
    t.after(() => stage.stop());
    await waitFor('the inventory', async () => (await inventoryOf(bus)).size === 5);
    assert.equal((await eventsOf(bus)).length, 0, 'the first look at a platform is its state, not events');

    // an edit while running: web migrates, db powers off
    writeFileSync(file, yaml({ web: { host: 'hv2' }, db: { host: 'hv1', power: 'off' }, old: { host: 'hv2' } }));
    await waitFor('two events', async () => (await eventsOf(bus)).length === 2);
    const cp1 = (await readTable(bus, TOPICS.state)).get(
      Buffer.from(checkpointKey(pathToFileURL(file).href)).toString('base64'),
    )!;

    // an edit while down: old is deleted, new appears
    await stage.stop();
    writeFileSync(file, yaml({ web: { host: 'hv2' }, db: { host: 'hv1', power: 'off' }, fresh: { host: 'hv1' } }));
    stage = await runStage(inventoryStage, { bus, ctx, config });
    await waitFor('the edit made while down', async () => (await eventsOf(bus)).length === 5);
    const inv = await inventoryOf(bus);
    assert.equal(inv.has('vm:old'), false, 'a tombstone for the deleted VM');
    assert.equal(inv.get('vm:web')!.host, 'hv2');
    assert.equal(inv.get('vm:db')!.power, 'off');
    assert.equal(inv.get('vm:fresh')!.connector, 'file');

    // a crash after events were sent but before their checkpoint: the old checkpoint comes back
    await stage.stop();
    await bus
      .producer()
      .send(TOPICS.state, [{ key: (cp1 as ConsumedRecord).key, value: (cp1 as ConsumedRecord).value }]);
    stage = await runStage(inventoryStage, { bus, ctx, config });
    await new Promise((r) => setTimeout(r, 500));
    const events = await eventsOf(bus);
    assert.deepEqual(
      events.map((e) => [e.kind, e.vm]),
      [
        ['migrated', 'web'],
        ['powered_off', 'db'],
        ['created', 'fresh'],
        ['powered_on', 'fresh'],
        // found by the resync, so timed then: after the edit itself
        ['deleted', 'old'],
      ],
      events.map((e) => `${e.kind}:${e.vm}`).join(' '),
    );
    assert.equal(new Set(events.map((e) => e.event_id)).size, events.length, 'every event once');
  },
);
