import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetSnapshot } from '@cordon/schemas';
import { diffSnapshots } from '../src/index.js';

const base: NetSnapshot = {
  agent: 'a',
  vm: 'vm1',
  ts_us: 1,
  interfaces: [{ name: 'eth0', mac: '52:54:00:00:00:01', addresses: ['10.0.0.5/24'], up: true, promiscuous: false }],
  listening: [{ proto: 'tcp', address: '0.0.0.0', port: 22, process: 'sshd' }],
  routes: [
    { destination: '0.0.0.0/0', gateway: '10.0.0.1', dev: 'eth0' },
    { destination: '10.0.0.0/24', gateway: null, dev: 'eth0' },
  ],
};

test('the first snapshot is a baseline; an unchanged one raises nothing', () => {
  assert.deepEqual(diffSnapshots(null, base), []);
  assert.deepEqual(diffSnapshots(base, { ...base, ts_us: 2 }), []);
});

test('a bind shell, a sniffer and a diverted default route are each an alert', () => {
  const next: NetSnapshot = {
    ...base,
    ts_us: 2,
    listening: [...base.listening, { proto: 'tcp', address: '0.0.0.0', port: 4444, process: 'nc' }],
    interfaces: [{ ...base.interfaces[0]!, promiscuous: true }],
    routes: [{ destination: '0.0.0.0/0', gateway: '10.0.0.66', dev: 'eth0' }, base.routes[1]!],
  };
  const changes = diffSnapshots(base, next);
  assert.deepEqual(changes.map((c) => c.rule).sort(), [
    'netconf:new-listening-socket',
    'netconf:promiscuous-interface',
    'netconf:route-changed',
  ]);
  assert.match(changes.find((c) => c.rule === 'netconf:new-listening-socket')!.signature, /tcp 0\.0\.0\.0:4444 \(nc\)/);
  assert.equal(changes.find((c) => c.rule === 'netconf:route-changed')!.severity, 1, 'the default route matters most');
});
