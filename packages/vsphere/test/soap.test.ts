import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  decodeEvent,
  decodeRetrieveResult,
  decodeServiceContent,
  decodeTaskInfo,
  decodeUpdateSet,
  envelope,
  ERR_VSPHERE_BAD_RESPONSE,
  ERR_VSPHERE_INVALID_PROPERTY,
  ERR_VSPHERE_LOGIN_FAILED,
  ERR_VSPHERE_NOT_SUPPORTED,
  ERR_VSPHERE_OBJECT_GONE,
  ERR_VSPHERE_SESSION_EXPIRED,
  escapeXml,
  checkMissing,
  moref,
  parseXml,
  responseOf,
  SoapFault,
} from '../src/index.js';
import { fixture, recorded } from './fixtures.js';

const info = { source: 'https://vcsim.test/sdk', method: 'X', username: 'cordon' };

test('requests escape text and attributes, keep field order, and mark abstract types with xsi:type', () => {
  assert.equal(escapeXml(`a<b>&"c"'d'\u0001`), 'a&lt;b&gt;&amp;&quot;c&quot;&apos;d&apos;');
  const xml = envelope('Login', moref('SessionManager', 'SessionManager'), {
    userName: 'ad<min>',
    password: `p&ss"'<`,
  });
  assert.match(
    xml,
    /<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager<\/_this><userName>ad&lt;min&gt;<\/userName><password>p&amp;ss&quot;&apos;&lt;<\/password><\/Login>/,
  );
  // The password survives a round trip through a parser unchanged.
  const back = parseXml(xml).child('Body')?.child('Login')?.str('password');
  assert.equal(back, `p&ss"'<`);

  const spec = envelope('CreateFilter', moref('PropertyCollector', 'pc'), {
    spec: {
      propSet: [{ type: 'VirtualMachine', all: false, pathSet: ['name'] }],
      objectSet: [
        {
          obj: moref('ContainerView', 'session[1]view'),
          skip: true,
          selectSet: [{ $type: 'TraversalSpec', name: 'view', type: 'ContainerView', path: 'view', skip: false }],
        },
      ],
    },
    partialUpdates: false,
  });
  assert.match(
    spec,
    /<propSet><type>VirtualMachine<\/type><all>false<\/all><pathSet>name<\/pathSet><\/propSet><objectSet><obj type="ContainerView">session\[1\]view<\/obj><skip>true<\/skip><selectSet xsi:type="TraversalSpec"><name>view<\/name>/,
  );
});

test('faults become coded errors: InvalidLogin, NotAuthenticated, ManagedObjectNotFound, NotSupported', () => {
  assert.throws(
    () => recorded('fault-invalid-login.xml', 'Login'),
    (err: unknown) => {
      assert.ok(ERR_VSPHERE_LOGIN_FAILED.is(err));
      assert.match(err.message, /user "cordon"/);
      assert.ok(err.cause instanceof SoapFault && err.cause.faultType === 'InvalidLogin');
      return true;
    },
  );
  assert.throws(
    () => recorded('fault-not-authenticated.xml', 'CreateContainerView'),
    (err: unknown) => ERR_VSPHERE_SESSION_EXPIRED.is(err),
  );
  assert.throws(
    () => recorded('fault-object-gone.xml', 'RetrievePropertiesEx'),
    (err: unknown) => ERR_VSPHERE_OBJECT_GONE.is(err) && /VirtualMachine:vm-99999/.test(err.message),
  );
  assert.throws(
    () => recorded('fault-not-supported.xml', 'CreateCollectorForTasks'),
    (err: unknown) => ERR_VSPHERE_NOT_SUPPORTED.is(err) && /CreateCollectorForTasks/.test(err.message),
  );
  // A response for another method, or not SOAP at all, is not silently accepted.
  assert.throws(
    () => recorded('read-events-empty.xml', 'ReadNextTasks'),
    (err: unknown) => ERR_VSPHERE_BAD_RESPONSE.is(err),
  );
  assert.throws(
    () => responseOf('<html>proxy error</html>', info),
    (err: unknown) => ERR_VSPHERE_BAD_RESPONSE.is(err),
  );
  assert.throws(
    () => responseOf('not xml <<<', info),
    (err: unknown) => ERR_VSPHERE_BAD_RESPONSE.is(err),
  );
});

test('an unknown property path is InvalidProperty, whether a fault (vCenter) or a missingSet (vcsim)', () => {
  const res = decodeRetrieveResult(recorded('fault-invalid-property.xml', 'RetrievePropertiesEx'));
  assert.equal(res.objects.length, 2);
  assert.deepEqual(res.objects[0]?.missing, [{ path: 'config.noSuchProperty', fault: 'InvalidProperty' }]);
  assert.throws(
    () => checkMissing(res.objects, 'https://vcsim.test/sdk'),
    (err: unknown) => ERR_VSPHERE_INVALID_PROPERTY.is(err) && /config\.noSuchProperty/.test(err.message),
  );
});

test('service content of vCenter and of ESXi', () => {
  const vpx = decodeServiceContent(recorded('service-content-vpx.xml', 'RetrieveServiceContent'));
  assert.equal(vpx.about.apiType, 'VirtualCenter');
  assert.deepEqual(vpx.rootFolder, { type: 'Folder', value: 'group-d1' });
  assert.equal(vpx.taskManager?.type, 'TaskManager');
  assert.equal(vpx.eventManager?.type, 'EventManager');
  const esx = decodeServiceContent(recorded('service-content-esx.xml', 'RetrieveServiceContent'));
  assert.equal(esx.about.apiType, 'HostAgent');
  assert.equal(esx.rootFolder.value, 'ha-folder-root');
  assert.ok(esx.viewManager !== null && esx.sessionManager !== null);
});

test('empty results: no returnval at all is an empty list, not an error', () => {
  assert.deepEqual(decodeRetrieveResult(recorded('retrieve-empty.xml', 'RetrievePropertiesEx')), {
    token: null,
    objects: [],
  });
  assert.equal(decodeUpdateSet(recorded('wait-timeout.xml', 'WaitForUpdatesEx')), null);
  assert.deepEqual(recorded('read-events-empty.xml', 'ReadNextEvents').all('returnval'), []);
});

test('paged retrieval: each page carries the token of the next', () => {
  const p1 = decodeRetrieveResult(recorded('retrieve-view-page1.xml', 'RetrievePropertiesEx'));
  assert.equal(p1.objects.length, 3);
  assert.match(p1.token ?? '', /^[0-9a-f-]{36}$/);
  const p2 = decodeRetrieveResult(recorded('retrieve-view-page2.xml', 'ContinueRetrievePropertiesEx'));
  assert.equal(p2.objects.length, 3);
  assert.notEqual(p2.token, p1.token);
  assert.notDeepEqual(
    p2.objects.map((o) => o.obj.value),
    p1.objects.map((o) => o.obj.value),
  );
});

test('lists of one element stay lists (ESXi with one VM, one NIC, one event)', () => {
  const us = decodeUpdateSet(recorded('wait-initial-esx-one-vm.xml', 'WaitForUpdatesEx'));
  assert.ok(us !== null);
  assert.equal(us.filterSet.length, 1);
  const vms = us.filterSet[0]!.objectSet.filter((o) => o.obj.type === 'VirtualMachine');
  assert.equal(vms.length, 1);
  const devices = vms[0]!.changes.find((c) => c.name === 'config.hardware.device')!.val!;
  assert.equal(devices.type, 'ArrayOfVirtualDevice');
  assert.equal(devices.children.filter((d) => d.child('macAddress')).length, 1);
  const net = vms[0]!.changes.find((c) => c.name === 'guest.net')!.val!;
  assert.equal(net.all('GuestNicInfo').length, 1);

  const one = recorded('read-events-one.xml', 'ReadNextEvents').all('returnval').map(decodeEvent);
  assert.equal(one.length, 1);
  assert.equal(one[0]!.type, 'VmPoweredOffEvent');
});

test('events: xsi:type under any prefix, keys, times, VM and host arguments', () => {
  const events = recorded('read-events-sequence.xml', 'ReadNextEvents').all('returnval').map(decodeEvent);
  assert.deepEqual(
    events.map((e) => e.type),
    [
      'VmPoweredOnEvent',
      'VmMigratedEvent',
      'VmInstanceUuidAssignedEvent',
      'VmCreatedEvent',
      'VmClonedEvent',
      'VmSuspendedEvent',
      'VmRemovedEvent',
    ],
  );
  const keys = events.map((e) => e.key);
  assert.deepEqual(
    [...keys].sort((a, b) => a - b),
    keys,
    'keys ascend',
  );
  for (const e of events) assert.ok(Number.isInteger(e.key) && e.createdTime > 1.7e12 && e.vm !== null);
  const migrated = events[1]!;
  // Measured on vcsim: `host` names the source, like `sourceHost`.
  assert.deepEqual(migrated.host?.ref, migrated.sourceHost?.ref);
  const cloned = events[4]!;
  assert.equal(cloned.sourceVm?.ref.type, 'VirtualMachine');
  assert.notEqual(cloned.sourceVm?.ref.value, cloned.vm?.ref.value);
  assert.match(events[2]!.instanceUuid ?? '', /^[0-9a-f-]{36}$/);
});

test('tasks: revert tasks are told apart by descriptionId', () => {
  const tasks = recorded('read-tasks.xml', 'ReadNextTasks').all('returnval').map(decodeTaskInfo);
  assert.ok(tasks.length >= 9);
  const reverts = tasks.filter((t) => /revert/i.test(t.descriptionId));
  assert.deepEqual(
    reverts.map((t) => t.descriptionId),
    ['VirtualMachine.revertToSnapshot', 'VirtualMachine.revertSnapshot'],
  );
  for (const t of tasks) {
    assert.equal(t.state, 'success');
    assert.ok(t.queueTime > 1.7e12 && (t.completeTime ?? 0) >= t.queueTime);
    assert.match(t.key, /^task-\d+$/);
  }
});

test('a fault without detail still names its type', () => {
  const xml = fixture('fault-invalid-login.xml').replace(/<detail>.*<\/detail>/, '');
  assert.throws(
    () => responseOf(xml, { ...info, method: 'Login' }),
    (err: unknown) => /ServerFault: Login failure/.test(String((err as Error).message)),
  );
});
