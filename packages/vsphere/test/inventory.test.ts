import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeEvent,
  decodeRetrieveResult,
  decodeTaskInfo,
  decodeUpdateSet,
  eventKind,
  fromCursor,
  Inventory,
  isRevertTask,
  parseXml,
  snapshotName,
  toCursor,
  unescapeName,
  type UpdateSet,
} from '../src/index.js';
import { recorded } from './fixtures.js';

function load(inv: Inventory, us: UpdateSet | null): void {
  assert.ok(us !== null);
  for (const fs of us.filterSet) for (const u of fs.objectSet) inv.apply(u);
}

test('the initial update of a vCenter becomes hosts with their clusters and VMs with NICs, IPs and snapshot', () => {
  const inv = new Inventory();
  load(inv, decodeUpdateSet(recorded('wait-initial-vpx.xml', 'WaitForUpdatesEx')));
  const state = inv.state();
  assert.deepEqual(state.hosts, [
    { id: 'host-21', name: 'DC0_H0', cluster: null, connection: 'connected' },
    { id: 'host-37', name: 'DC0_C0_H0', cluster: 'DC0_C0', connection: 'connected' },
    { id: 'host-47', name: 'DC0_C0_H1', cluster: 'DC0_C0', connection: 'connected' },
  ]);
  const vm = state.vms.find((v) => v.name === 'DC0_H0_VM0');
  assert.deepEqual(vm, {
    id: 'b170c191-7587-5f8e-9a15-08c6a0a11ca5',
    name: 'DC0_H0_VM0',
    host: 'host-21',
    power: 'on',
    guestOs: 'otherGuest',
    // The NIC's backing is a distributed port: its portgroup key resolves to the portgroup's name.
    nics: [{ mac: '00:0c:29:63:65:61', network: 'DC0_DVPG0', ips: ['10.0.0.7'] }],
    // s1 -> {s2, s3}, current s3: the name comes from the snapshot tree.
    snapshot: 's3',
    template: false,
  });
  assert.equal(state.vms.length, 2);
  assert.equal(inv.uuidOf('vm-52'), 'b170c191-7587-5f8e-9a15-08c6a0a11ca5');
});

test('ESXi: one host without cluster, NIC on a standard network', () => {
  const inv = new Inventory();
  load(inv, decodeUpdateSet(recorded('wait-initial-esx-one-vm.xml', 'WaitForUpdatesEx')));
  const state = inv.state();
  assert.deepEqual(state.hosts, [
    { id: 'ha-host', name: 'localhost.localdomain', cluster: null, connection: 'connected' },
  ]);
  assert.equal(state.vms.length, 1);
  assert.deepEqual(state.vms[0]?.nics, [{ mac: '00:0c:29:39:31:62', network: 'VM Network', ips: [] }]);
});

test('modify updates change only what they name; a full read gives the same VM as the update stream', () => {
  const inv = new Inventory();
  load(inv, decodeUpdateSet(recorded('wait-initial-vpx.xml', 'WaitForUpdatesEx')));
  const before = inv.vm('vm-52');
  const us = decodeUpdateSet(recorded('wait-power-off.xml', 'WaitForUpdatesEx'));
  assert.ok(us !== null);
  const ch = inv.apply(us.filterSet[0]!.objectSet.find((o) => o.obj.value === 'vm-52')!);
  assert.ok(ch.vms.has('vm-52'));
  assert.deepEqual(inv.vm('vm-52'), { ...before, power: 'off' });

  const full = new Inventory();
  for (const oc of decodeRetrieveResult(recorded('retrieve-vm-snapshots.xml', 'RetrievePropertiesEx')).objects)
    full.loadContent(oc);
  for (const oc of decodeRetrieveResult(recorded('retrieve-view-page1.xml', 'RetrievePropertiesEx')).objects)
    full.loadContent(oc);
  for (const oc of decodeRetrieveResult(recorded('retrieve-view-page2.xml', 'ContinueRetrievePropertiesEx')).objects)
    full.loadContent(oc);
  assert.equal(full.vm('vm-52')?.snapshot, 's3');
  assert.equal(full.state().hosts.length, 3);
});

test('the sequence update: a leave forgets the VM but keeps its uuid; sub-path changes ask for a re-read', () => {
  const inv = new Inventory();
  load(inv, decodeUpdateSet(recorded('wait-initial-vpx.xml', 'WaitForUpdatesEx')));
  const us = decodeUpdateSet(recorded('wait-sequence.xml', 'WaitForUpdatesEx'));
  assert.ok(us !== null);
  const kinds = us.filterSet.flatMap((f) => f.objectSet.map((o) => `${o.kind}:${o.obj.type}`));
  assert.ok(kinds.includes('modify:VirtualMachine'));
  load(inv, us);
  assert.equal(inv.vm('vm-55')?.power, 'suspended');

  const leave = inv.apply({ kind: 'leave', obj: { type: 'VirtualMachine', value: 'vm-52' }, changes: [], missing: [] });
  assert.deepEqual([...leave.removedVms], ['vm-52']);
  assert.equal(inv.vm('vm-52'), null);
  assert.equal(inv.uuidOf('vm-52'), 'b170c191-7587-5f8e-9a15-08c6a0a11ca5');

  const partial = inv.apply({
    kind: 'modify',
    obj: { type: 'VirtualMachine', value: 'vm-55' },
    changes: [{ name: 'config.hardware.device["4000"]', op: 'assign', val: null }],
    missing: [],
  });
  assert.deepEqual(partial.refetch, [{ type: 'VirtualMachine', value: 'vm-55' }]);
});

test('event kinds and revert tasks', () => {
  const events = recorded('read-events-sequence.xml', 'ReadNextEvents').all('returnval').map(decodeEvent);
  assert.deepEqual(events.map(eventKind), [
    'powered_on',
    'migrated',
    null,
    'created',
    'cloned',
    'suspended',
    'deleted',
  ]);
  const tasks = recorded('read-tasks.xml', 'ReadNextTasks').all('returnval').map(decodeTaskInfo);
  assert.deepEqual(
    tasks.filter(isRevertTask).map((t) => t.name),
    ['RevertToSnapshot', 'RevertSnapshot'],
  );
});

test('cursors round-trip through JSON; a foreign cursor is not ours', () => {
  const pos = { eventKey: 67, eventTime: 1796432099224, taskKey: 'task-72', taskQueued: 1796432099200 };
  assert.deepEqual(fromCursor(JSON.parse(JSON.stringify(toCursor(pos))) as Record<string, string | number>), pos);
  assert.equal(fromCursor({ offset: 'x' }), null);
  assert.equal(fromCursor(undefined), null);
});

test('names are unescaped; a snapshot tree without the current snapshot gives null', () => {
  assert.equal(unescapeName('a%2fb%25c%5cd'), 'a/b%c\\d');
  const info = parseXml(
    '<val><currentSnapshot type="VirtualMachineSnapshot">snapshot-9</currentSnapshot><rootSnapshotList><snapshot type="VirtualMachineSnapshot">snapshot-1</snapshot><name>x</name></rootSnapshotList></val>',
  );
  assert.equal(snapshotName(info), null);
  assert.equal(snapshotName(undefined), null);
});

test('a VM forgotten on its VmRemovedEvent is not brought back by a modify still on its way, nor removed again by the late leave', () => {
  const inv = new Inventory();
  load(inv, decodeUpdateSet(recorded('wait-initial-vpx.xml', 'WaitForUpdatesEx')));
  assert.ok(inv.vm('vm-52'));
  assert.equal(inv.removeVm('vm-52'), true); // the event came first
  const late = inv.apply({
    kind: 'modify',
    obj: { type: 'VirtualMachine', value: 'vm-52' },
    changes: [{ name: 'runtime.powerState', op: 'assign', val: { text: 'poweredOff', type: null } }],
    missing: [],
  } as never);
  assert.equal(late.vms.size, 0, 'not reported again');
  assert.equal(inv.vm('vm-52'), null);
  const leave = inv.apply({ kind: 'leave', obj: { type: 'VirtualMachine', value: 'vm-52' }, changes: [], missing: [] });
  assert.deepEqual([...leave.removedVms], [], 'not removed a second time');
  // after its leave the ref is an ordinary unknown one again: an enter is a VM
  const again = inv.apply({ kind: 'enter', obj: { type: 'VirtualMachine', value: 'vm-52' }, changes: [], missing: [] });
  assert.ok(again.vms.has('vm-52'));
});
