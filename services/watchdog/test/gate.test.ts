import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { AgentRecord, Assignment, InventoryRecord } from '@cordon/schemas';
import { GateBook, whyNotCurrent } from '../src/gate.js';

const NOW = 1_800_000_000_000_000;
const rec = (o: Partial<InventoryRecord>): InventoryRecord => ({
  kind: 'vm',
  id: 'vm-1',
  name: 'vm-1',
  host: 'hv1',
  power: 'off',
  guest_os: null,
  nics: [{ mac: '52:54:00:00:00:01', ips: [], network: null }],
  updated_us: NOW,
  cluster: null,
  connection: null,
  snapshot: null,
  template: false,
  connector: 'file',
  source: 'test',
  ...o,
});
const asg = (o: Partial<Assignment>): Assignment => ({
  vm: 'vm-1',
  mode: 'watchdog',
  host: 'hv1',
  agent: null,
  incarnation: null,
  policy_version: 2,
  reason: '',
  since_us: NOW,
  enforcer: null,
  handoff_us: 0,
  epoch: 3,
  gated: true,
  recovery_of: null,
  recovery_from_us: 0,
  clock_offset_us: 0,
  ...o,
});
const beat = (o: Partial<AgentRecord> = {}): AgentRecord =>
  ({
    agent: 'agt-1',
    vm: 'vm-1',
    version: '0.1.0',
    config_hash: 'h',
    identity: JSON.stringify({ generation: 1, incarnation: 'i1', hw: 'ab'.repeat(16) }),
    heartbeat_us: NOW - 50_000,
    status: 'running',
    kind: 'agent',
    host: null,
    policy_version: 2,
    capture: { active: true, frames: 1, published: 1, inspected_until_us: NOW },
    acks: { 'vm-1': 3 },
    heartbeat_interval_ms: 100,
    public_key: null,
    ...o,
  }) as AgentRecord;

test('a gated VM is held while off and from power-on until its protection is current, then released once', () => {
  let gated = true;
  const book = new GateBook('hv1', () => gated);
  book.inventory('vm-1', rec({ power: 'off' }), NOW);
  assert.deepEqual([...book.macs()], ['52:54:00:00:00:01'], 'held before its first frame');
  book.inventory('vm-1', rec({ power: 'on', updated_us: NOW + 1000 }), NOW + 2000);
  assert.deepEqual(
    book.release(() => false, NOW + 3000),
    [],
  );
  assert.equal(book.held.has('vm-1'), true);
  const r = book.release(() => true, NOW + 251_000);
  assert.deepEqual(r, [{ vm: 'vm-1', ms: 250 }]);
  assert.equal(book.macs().size, 0);
  // released stays released while it runs; powered off, it is held again
  book.inventory('vm-1', rec({ power: 'on', updated_us: NOW + 1000 }), NOW + 300_000);
  assert.equal(book.macs().size, 0);
  book.inventory('vm-1', rec({ power: 'off' }), NOW + 400_000);
  assert.equal(book.held.has('vm-1'), true);
  // the policy stops gating it: let go
  gated = false;
  book.policyChanged(NOW + 500_000);
  assert.equal(book.held.size, 0);
});

test("a running VM migrating in is not held; one created running is; another host's VMs are not this watchdog's", () => {
  const book = new GateBook('hv1', () => true);
  book.inventory('vm-1', rec({ host: 'hv2', power: 'on' }), NOW);
  assert.equal(book.held.size, 0);
  book.inventory('vm-1', rec({ host: 'hv1', power: 'on' }), NOW + 1);
  assert.equal(book.held.size, 0, 'migrated in running');
  book.inventory(
    'vm-2',
    rec({ id: 'vm-2', power: 'on', nics: [{ mac: '52:54:00:00:00:02', ips: [], network: null }] }),
    NOW,
  );
  assert.deepEqual([...book.held.keys()], ['vm-2']);
  book.inventory('vm-2', null, NOW);
  assert.equal(book.held.size, 0);
});

test('after a restart, the table it left says which running VMs were still held', () => {
  const book = new GateBook('hv1', () => true);
  book.inventory('vm-1', rec({ power: 'on' }), NOW, true, (macs) => macs.includes('52:54:00:00:00:01'));
  book.inventory(
    'vm-2',
    rec({ id: 'vm-2', power: 'on', nics: [{ mac: '52:54:00:00:00:02', ips: [], network: null }] }),
    NOW,
    true,
    () => false,
  );
  assert.deepEqual([...book.held.keys()], ['vm-1']);
});

test('protection is current when the assigned protector applies the assignment', () => {
  const base = { vm: 'vm-1', me: 'hv1', heartbeatTimeoutMs: 500, nowUs: NOW, watchdogEpoch: 3, agent: undefined };
  assert.match(whyNotCurrent({ ...base, assignment: undefined })!, /no assignment/);
  assert.match(whyNotCurrent({ ...base, assignment: asg({ mode: 'none' }) })!, /no protector/);
  assert.equal(whyNotCurrent({ ...base, assignment: asg({}) }), null);
  assert.match(whyNotCurrent({ ...base, watchdogEpoch: 2, assignment: asg({}) })!, /not applied assignment 3/);
  assert.match(whyNotCurrent({ ...base, assignment: asg({ host: 'hv2' }) })!, /watchdog of hv2/);
  const toAgent = asg({ mode: 'agent', agent: 'agt-1', incarnation: 'i1' });
  assert.equal(whyNotCurrent({ ...base, assignment: toAgent, agent: beat() }), null);
  assert.match(
    whyNotCurrent({ ...base, assignment: toAgent, agent: beat({ acks: { 'vm-1': 2 } }) })!,
    /not applied assignment 3/,
  );
  assert.match(whyNotCurrent({ ...base, assignment: toAgent, agent: beat({ policy_version: 1 }) })!, /policy 1/);
  assert.match(
    whyNotCurrent({ ...base, assignment: toAgent, agent: beat({ heartbeat_us: NOW - 600_000 }) })!,
    /silent/,
  );
  assert.match(
    whyNotCurrent({
      ...base,
      assignment: asg({ mode: 'agent', agent: 'agt-1', incarnation: 'other' }),
      agent: beat(),
    })!,
    /assigned start/,
  );
});
