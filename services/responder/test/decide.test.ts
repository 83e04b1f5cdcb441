import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AssignmentView, InventoryView, NOT_FROM_A_PLATFORM, PolicyView } from '@cordon/policy';
import {
  codecFor,
  complete,
  TOPICS,
  type Alert,
  type Assignment,
  type BlockDecision,
  type PolicyRecord,
} from '@cordon/schemas';
import { BlockHistory, blockIdFor, decide, readdress, type Views } from '../src/index.js';

const S = 1_000_000;
const T0 = 1_700_000_000 * S;

function views(policy: object | null): Views {
  const v: Views = {
    policy: new PolicyView(),
    inventory: new InventoryView(),
    assignments: new AssignmentView(),
    blocks: new BlockHistory(),
  };
  if (policy) {
    const rec: PolicyRecord = {
      kind: 'policy',
      id: 'default',
      version: 1,
      document: JSON.stringify({ rulesets: [], ...policy }),
      updated_us: 0,
      updated_by: 't',
    };
    v.policy.apply(Buffer.from('policy:default'), codecFor(TOPICS.policy).encode(rec));
  }
  v.inventory.put({
    kind: 'vm',
    id: 'web-1',
    name: 'web-1',
    host: 'hv1',
    power: null,
    guest_os: null,
    nics: [{ mac: '02:00:0a:d5:01:0a', ips: ['10.213.1.10'], network: null }],
    updated_us: 0,
    ...NOT_FROM_A_PLATFORM,
  });
  v.inventory.put({
    kind: 'vm',
    id: 'db-1',
    name: 'db-1',
    host: 'hv2',
    power: null,
    guest_os: null,
    nics: [{ mac: '02:00:0a:d5:01:0b', ips: ['10.213.1.11', 'fd00::11'], network: null }],
    updated_us: 0,
    ...NOT_FROM_A_PLATFORM,
  });
  return v;
}

const alert = (over: Partial<Alert> = {}): Alert =>
  complete(TOPICS.alerts, {
    alert_id: 'a-1',
    ts_us: T0,
    stage: 'dpi',
    vm: null,
    sensor: 'hv1',
    rule_id: 'sid:2010935',
    rule_rev: 1,
    signature: 'ET WEB_SERVER /etc/passwd',
    severity: 1,
    category: null,
    action: 'alert',
    src_ip: '203.0.113.7',
    src_port: 40000,
    dst_ip: '10.213.1.10',
    dst_port: 80,
    proto: 'TCP',
    flow_id: null,
    evidence: '{}',
    ...over,
  });

const blockOf = (d: ReturnType<typeof decide>) => {
  assert.equal(d.kind, 'block', d.kind === 'skip' ? d.detail : '');
  return d as Extract<typeof d, { kind: 'block' }>;
};

/** An enforcer's report on the block-status topic, as the bytes the responder follows (key: enforcer|target). */
function report(key: Buffer, blockId: string, status: 'applied' | 'failed'): Buffer {
  const [enforcer, target] = key.toString().split('|') as [string, string];
  return codecFor(TOPICS.blockStatus).encode({
    block_id: blockId,
    enforcer,
    target,
    status,
    ts_us: T0,
    expires_us: T0 + 600_000_000,
    error: status === 'failed' ? 'CORDON_ERR_BLOCK_NFT' : null,
  });
}

test('prevent mode: an alert becomes a block on the watchdog of the VM host, against the other side', () => {
  const v = views({ mode: 'prevent', blocks: { ttlS: 60 } });
  const d = blockOf(decide(alert(), v, 'default', T0));
  assert.equal(d.key.toString(), 'watchdog:hv1|203.0.113.7');
  assert.equal(d.decision.enforcer, 'watchdog:hv1');
  assert.equal(d.decision.target.ip, '203.0.113.7');
  assert.equal(d.decision.scope, 'web-1');
  assert.equal(d.decision.action, 'drop');
  assert.equal(d.decision.ttl_ms, 60_000);
  assert.equal(d.decision.expires_us, T0 + 60 * S);
  assert.equal(d.decision.block_id, blockIdFor('a-1'));
  assert.equal(d.decision.reason_alert, 'a-1');
  // the attacker on the destination side (a response rule): still the non-VM side
  const r = blockOf(
    decide(
      alert({ alert_id: 'a-2', src_ip: '10.213.1.11', dst_ip: '198.51.100.9', vm: 'db-1' }),
      views({ mode: 'prevent' }),
      'default',
      T0,
    ),
  );
  assert.equal(r.key.toString(), 'watchdog:hv2|198.51.100.9');
});

test('detect mode, pass rules and alert-only rules without a mode do not block; drop rules do', () => {
  assert.equal(decide(alert(), views({ mode: 'detect' }), 'default', T0).kind, 'skip');
  assert.equal(decide(alert({ action: 'drop' }), views({ mode: 'detect' }), 'default', T0).kind, 'skip');
  assert.equal(decide(alert(), views(null), 'default', T0).kind, 'skip');
  assert.equal(decide(alert({ action: 'pass' }), views({ mode: 'prevent' }), 'default', T0).kind, 'skip');
  assert.equal(blockOf(decide(alert({ action: 'reject' }), views(null), 'default', T0)).decision.action, 'reject');
  // per VM and per rule
  assert.equal(
    decide(alert(), views({ mode: 'prevent', vms: { 'web-1': { mode: 'detect' } } }), 'default', T0).kind,
    'skip',
  );
  assert.equal(
    blockOf(decide(alert(), views({ mode: 'detect', rules: { '2010935': 'prevent' } }), 'default', T0)).decision.action,
    'drop',
  );
});

test('an agent-protected VM gets its block from its agent', () => {
  const v = views({ mode: 'prevent' });
  const a: Assignment = {
    vm: 'web-1',
    mode: 'agent',
    host: 'hv1',
    agent: 'agt-9',
    policy_version: 1,
    reason: 'agent current',
    since_us: 0,
    enforcer: null,
    handoff_us: 0,
    epoch: 1,
    gated: false,
    recovery_of: null,
    recovery_from_us: 0,
    clock_offset_us: 0,
    incarnation: null,
  };
  v.assignments.apply(Buffer.from('web-1'), codecFor(TOPICS.assignments).encode(a));
  assert.equal(blockOf(decide(alert(), v, 'default', T0)).key.toString(), 'agent:agt-9|203.0.113.7');
  v.assignments.apply(
    Buffer.from('web-1'),
    codecFor(TOPICS.assignments).encode({ ...a, mode: 'watchdog', agent: null }),
  );
  assert.equal(blockOf(decide(alert(), v, 'default', T0)).key.toString(), 'watchdog:hv1|203.0.113.7');
});

test('replays neither duplicate nor extend a block; a stale alert is ignored', () => {
  const v = views({ mode: 'prevent', blocks: { ttlS: 60 } });
  const first = blockOf(decide(alert(), v, 'default', T0));
  v.blocks.put(first.key.toString(), first.decision);
  // the same alert again, later: same block id → nothing
  const again = decide(alert(), v, 'default', T0 + 30 * S);
  assert.deepEqual([again.kind, again.kind === 'skip' && again.reason], ['skip', 'duplicate']);
  // the enforcer's applied report (block-status topic) does not change that
  v.blocks.applyStatus(first.key, report(first.key, first.decision.block_id, 'applied'));
  assert.equal(decide(alert(), v, 'default', T0 + 120 * S).kind, 'skip');
  // another alert while blocked: not extended
  const other = decide(alert({ alert_id: 'a-3', ts_us: T0 + 10 * S }), v, 'default', T0 + 10 * S);
  assert.deepEqual([other.kind, other.kind === 'skip' && other.reason], ['skip', 'active']);
  // an old alert replayed after the block expired: it predates the block, nothing new
  const old = decide(alert({ alert_id: 'a-0', ts_us: T0 - 5 * S }), v, 'default', T0 + 120 * S);
  assert.deepEqual([old.kind, old.kind === 'skip' && old.reason], ['skip', 'stale']);
});

test('a block its enforcer reported failed is decided again by the next alert; a report on an older decision, or under another key than it names, changes nothing', () => {
  const v = views({ mode: 'prevent', blocks: { ttlS: 600 } });
  const first = blockOf(decide(alert(), v, 'default', T0));
  v.blocks.put(first.key.toString(), first.decision);
  const next = () => decide(alert({ alert_id: 'a-9', ts_us: T0 + 10 * S }), v, 'default', T0 + 10 * S);
  const reason = () => {
    const d = next();
    return d.kind === 'skip' ? d.reason : d.kind;
  };
  assert.equal(reason(), 'active');
  // a failure reported on an earlier decision for the target is not this one's
  v.blocks.applyStatus(first.key, report(first.key, 'blk-earlier', 'failed'));
  assert.equal(reason(), 'active');
  // a report whose value names another enforcer than its key (a forgery) is ignored
  const forged = report(Buffer.from('agent:evil|203.0.113.7'), first.decision.block_id, 'failed');
  v.blocks.applyStatus(first.key, forged);
  assert.equal(reason(), 'active');
  // the enforcer's own failure on this decision: the next alert decides again (it tries once more)
  v.blocks.applyStatus(first.key, report(first.key, first.decision.block_id, 'failed'));
  const again = blockOf(next());
  assert.equal(again.key.toString(), first.key.toString());
  assert.notEqual(again.decision.block_id, first.decision.block_id);
  // its report taken back (a tombstone: lifted) → the decision stands again
  v.blocks.applyStatus(first.key, null);
  assert.equal(reason(), 'active');
});

test('repeat offenders: TTL × multiplier within the window, capped; a fresh start after it', () => {
  const v = views({ mode: 'prevent', blocks: { ttlS: 60, repeatMultiplier: 3, repeatWindowS: 3600, maxTtlS: 400 } });
  const ttls: number[] = [];
  let now = T0;
  for (let i = 0; i < 4; i++) {
    const d = blockOf(decide(alert({ alert_id: `r-${i}`, ts_us: now }), v, 'default', now));
    assert.equal(d.repeat, i > 0);
    ttls.push(d.decision.ttl_ms / 1000);
    v.blocks.put(d.key.toString(), d.decision);
    now = d.decision.expires_us + S; // the next attack right after the block ended
  }
  assert.deepEqual(ttls, [60, 180, 400, 400]);
  // the same attacker on another host's VM counts as a repeat too
  const onDb = blockOf(
    decide(alert({ alert_id: 'r-db', vm: 'db-1', dst_ip: '10.213.1.11', ts_us: now }), v, 'default', now),
  );
  assert.equal(onDb.decision.ttl_ms, 400_000);
  const later = now + 7200 * S;
  assert.equal(
    blockOf(decide(alert({ alert_id: 'r-late', ts_us: later }), v, 'default', later)).decision.ttl_ms,
    60_000,
  );
});

test('hostile or unresolvable alerts: typed error for bad addresses, skip when no side is outside the VM', () => {
  const v = views({ mode: 'prevent' });
  for (const ip of ['1.2.3.4; flush ruleset', 'fe80::1%eth0', '10.0.0.256', '']) {
    assert.throws(
      () => decide(alert({ src_ip: ip }), v, 'default', T0),
      (e: { code?: string }) => e.code === 'CORDON_ERR_RESPONDER_ALERT',
    );
  }
  const self = decide(alert({ src_ip: '10.213.1.10', vm: 'web-1' }), v, 'default', T0);
  assert.deepEqual(
    [self.kind, self.kind === 'skip' && self.reason],
    ['skip', 'unresolved'],
    'never blocks the VM itself',
  );
  assert.equal(decide(alert({ dst_ip: '192.0.2.1' }), v, 'default', T0).kind, 'skip', 'no VM in the inventory');
  assert.equal(decide(alert({ vm: 'ghost' }), v, 'default', T0).kind, 'skip', 'an unknown VM id');
  assert.equal(decide(alert({ src_ip: null }), v, 'default', T0).kind, 'skip', 'one-sided alert');
});

test("a VM whose enforcer changes takes its blocks along, failed ones too (the new enforcer tries itself); expired and other VMs' blocks stay", () => {
  const h = new BlockHistory();
  const d = (ip: string, o: Partial<BlockDecision> = {}): BlockDecision => ({
    block_id: `b-${ip}`,
    enforcer: 'watchdog:hv1',
    target: { kind: 'ip', ip, proto: null, src_ip: null, src_port: null, dst_ip: null, dst_port: null, vm: null },
    scope: 'web-1',
    action: 'drop',
    ttl_ms: 60_000,
    created_us: T0,
    expires_us: T0 + 60_000_000,
    reason_alert: 'a',
    status: 'applied',
    ...o,
  });
  h.put('watchdog:hv1|198.51.100.1', d('198.51.100.1'));
  h.put('watchdog:hv1|198.51.100.2', d('198.51.100.2', { expires_us: T0 - 1 }));
  h.put('watchdog:hv1|198.51.100.3', d('198.51.100.3'));
  const k3 = Buffer.from('watchdog:hv1|198.51.100.3');
  h.applyStatus(k3, report(k3, 'b-198.51.100.3', 'failed'));
  assert.equal(h.failed(k3.toString()), true);
  h.put('watchdog:hv1|198.51.100.4', d('198.51.100.4', { scope: 'db-1' }));
  const moves = readdress('web-1', 'watchdog:hv2', h, T0 + 1);
  assert.deepEqual(
    moves.map((m) => [m.from, m.key.toString(), m.decision.enforcer, m.decision.status, m.decision.expires_us]),
    [
      ['watchdog:hv1|198.51.100.1', 'watchdog:hv2|198.51.100.1', 'watchdog:hv2', 'requested', T0 + 60_000_000],
      ['watchdog:hv1|198.51.100.3', 'watchdog:hv2|198.51.100.3', 'watchdog:hv2', 'requested', T0 + 60_000_000],
    ],
  );
});
