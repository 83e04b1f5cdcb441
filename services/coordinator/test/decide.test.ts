import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { agentIdFor, makeEnrollToken, readEnrollToken } from '@cordon/agent';
import type { AgentRecord, Assignment } from '@cordon/schemas';
import { AgentTrust, changed, decide, type AgentState, type Coordination, type VmState } from '../src/index.js';

const C: Coordination = {
  heartbeatTimeoutMs: 500,
  requiredAgentVersion: '0.1.0',
  handoffDelayMs: 300,
  gate: false,
  maxClockOffsetMs: 25,
};
const S = 1_000_000; // µs per second
const NOW = 1_800_000_000 * S;
const vm: VmState = { id: 'vm-1', host: 'hv1', power: 'on', hostSinceUs: NOW - 60 * S };
const trusted = { trusted: true, detail: 'ok', identity: { generation: 1, incarnation: 'aa', hw: 'bb'.repeat(8) } };
const agent = (o: Partial<AgentState> = {}): AgentState => ({
  id: 'agt-1',
  vm: 'vm-1',
  incarnation: 'aa',
  hw: 'bb'.repeat(8),
  firstSeenUs: NOW - 10 * S,
  verdict: trusted,
  version: '0.1.0',
  policyVersion: 3,
  heartbeatUs: NOW - 100_000,
  status: 'running',
  capture: { active: true, frames: 100, published: 100, inspected_until_us: NOW - 120_000 },
  inspectingUs: NOW - 100_000,
  clockOffsetUs: null,
  clockSamples: 32,
  ...o,
});
const asg = (o: Partial<Assignment>): Assignment => ({
  vm: 'vm-1',
  mode: 'watchdog',
  host: 'hv1',
  agent: null,
  policy_version: 3,
  reason: '',
  since_us: NOW - 10 * S,
  enforcer: 'watchdog:hv1',
  handoff_us: 0,
  epoch: 1,
  gated: false,
  recovery_of: null,
  recovery_from_us: 0,
  clock_offset_us: 0,
  incarnation: null,
  ...o,
});
/** agt-1 (incarnation aa) protecting vm-1 since a second ago. */
const protectingAgt1 = (): Assignment =>
  asg({ mode: 'agent', agent: 'agt-1', incarnation: 'aa', enforcer: 'agent:agt-1', handoff_us: NOW - S });

test("a VM that is not running is nobody's; a running one without an agent is its host's watchdog", () => {
  assert.equal(decide({ ...vm, power: 'off' }, [], undefined, C, 3, NOW).mode, 'none');
  assert.equal(decide(undefined, [], undefined, C, 3, NOW).mode, 'none');
  const d = decide(vm, [], undefined, C, 3, NOW);
  assert.deepEqual([d.mode, d.host, d.enforcer, d.handoffUs], ['watchdog', 'hv1', 'watchdog:hv1', 0]);
  // powered on after being nobody's: from when it became nobody's
  const on = decide(vm, [], asg({ mode: 'none', since_us: NOW - 2 * S }), C, 3, NOW);
  assert.equal(on.handoffUs, NOW - 2 * S);
});

test("a VM powered on whose agent is already inspecting goes to it from when it became nobody's: no frame left to nobody", () => {
  const off = asg({ mode: 'none', host: 'hv1', enforcer: null, since_us: NOW - 2 * S, handoff_us: NOW - 2 * S });
  const d = decide(vm, [agent()], off, C, 3, NOW);
  assert.deepEqual([d.mode, d.agent, d.handoffUs], ['agent', 'agt-1', NOW - 2 * S]);
  // with no assignment at all the watchdog inspects by default: the boundary stays ahead
  const fresh = decide(vm, [agent()], undefined, C, 3, NOW);
  assert.deepEqual([fresh.mode, fresh.handoffUs], ['agent', NOW + 300_000]);
});

test('watchdog → agent only for a current agent seen inspecting, with the boundary ahead (make before break)', () => {
  const d = decide(vm, [agent()], asg({}), C, 3, NOW);
  assert.deepEqual([d.mode, d.agent, d.enforcer, d.handoffUs], ['agent', 'agt-1', 'agent:agt-1', NOW + 300_000]);
  for (const [a, why] of [
    [agent({ verdict: { trusted: false, distrust: 'clone', detail: 'a clone', identity: null } }), /not trusted/],
    [agent({ heartbeatUs: NOW - 600_000 }), /silent/],
    [agent({ version: '0.0.9' }), /older than the required/],
    [agent({ policyVersion: 2 }), /policy version 2/],
    [agent({ capture: null }), /does not capture/],
    [agent({ inspectingUs: 0 }), /not been seen inspecting/],
  ] as const) {
    const x = decide(vm, [a], asg({}), C, 3, NOW);
    assert.equal(x.mode, 'watchdog');
    assert.match(x.reason, why);
  }
});

test('an agent keeps its VM while fresh; silent past the timeout, the watchdog takes over from the lease it announced last', () => {
  const cur = asg({
    mode: 'agent',
    agent: 'agt-1',
    incarnation: 'aa',
    enforcer: 'agent:agt-1',
    handoff_us: NOW - 5 * S,
    reason: 'r',
  });
  // retention does not need the counters to move (a new coordinator has not seen them move)
  const kept = decide(vm, [agent({ inspectingUs: 0 })], cur, C, 3, NOW);
  assert.deepEqual([kept.mode, kept.handoffUs, kept.incarnation], ['agent', NOW - 5 * S, 'aa']);
  assert.equal(changed(cur, kept), false);
  const lost = decide(vm, [agent({ heartbeatUs: NOW - 700_000 })], cur, C, 3, NOW);
  assert.deepEqual([lost.mode, lost.host, lost.handoffUs, lost.incarnation], ['watchdog', 'hv1', NOW - 120_000, null]);
  assert.ok(changed(cur, lost));
  // it died somewhere between its last heartbeat and its lease: the watchdog also publishes what
  // it holds from one interval (half the lease's lead: 290 ms) before that heartbeat, as this
  // agent's recovery, and the consumers drop what the agent delivered
  assert.deepEqual(lost.recovery, { of: 'agent:agt-1', fromUs: NOW - 990_000 });
  assert.equal(kept.recovery, undefined);
  // stopping: from the end it reported (the newest frame it published, plus one)
  const stopped = decide(
    vm,
    [
      agent({
        status: 'stopping',
        capture: { active: true, frames: 1, published: 1, inspected_until_us: NOW - 50_000 },
      }),
    ],
    cur,
    C,
    3,
    NOW,
  );
  assert.deepEqual([stopped.mode, stopped.handoffUs], ['watchdog', NOW - 50_000]);
  assert.equal(stopped.recovery, undefined, 'a stopped agent published everything before its end');
  // an agent that never published anything: from its own boundary
  const idle = decide(
    vm,
    [agent({ status: 'stopping', capture: { active: true, frames: 0, published: 0, inspected_until_us: 0 } })],
    cur,
    C,
    3,
    NOW,
  );
  assert.equal(idle.handoffUs, NOW - 5 * S);
});

test('a live agent that must hand over does so ahead, after its lease; never straight to another agent', () => {
  const cur = asg({
    mode: 'agent',
    agent: 'agt-1',
    incarnation: 'aa',
    enforcer: 'agent:agt-1',
    handoff_us: NOW - 5 * S,
    reason: 'r',
  });
  const lease = NOW + 150_000;
  const stale = decide(
    vm,
    [agent({ policyVersion: 2, capture: { active: true, frames: 1, published: 1, inspected_until_us: lease } })],
    cur,
    C,
    3,
    NOW,
  );
  assert.deepEqual([stale.mode, stale.handoffUs], ['watchdog', NOW + 300_000]);
  const longLease = decide(
    vm,
    [
      agent({
        policyVersion: 2,
        capture: { active: true, frames: 1, published: 1, inspected_until_us: NOW + 400_000 },
      }),
    ],
    cur,
    C,
    3,
    NOW,
  );
  assert.equal(longLease.handoffUs, NOW + 400_000);
  // another fit agent for the VM does not take it straight from the unfit one
  const other = agent({ id: 'agt-2', incarnation: 'cc' });
  const d = decide(vm, [agent({ policyVersion: 2 }), other], cur, C, 3, NOW);
  assert.equal(d.mode, 'watchdog');
  // …but once the watchdog has it, it is promoted with the boundary ahead
  const next = decide(vm, [agent({ policyVersion: 2 }), other], asg({ handoff_us: d.handoffUs }), C, 3, NOW + 10_000);
  assert.deepEqual([next.mode, next.agent, next.incarnation], ['agent', 'agt-2', 'cc']);
  assert.ok(next.handoffUs >= d.handoffUs);
});

test('a restarted agent: the watchdog takes the VM back from the dead incarnation at once, then the new one is promoted', () => {
  const cur = asg({
    mode: 'agent',
    agent: 'agt-1',
    incarnation: 'aa',
    enforcer: 'agent:agt-1',
    handoff_us: NOW - 5 * S,
    reason: 'r',
  });
  const old = agent({
    heartbeatUs: NOW - 200_000,
    capture: { active: true, frames: 9, published: 9, inspected_until_us: NOW - 100_000 },
  });
  // the new start heartbeats before the old one's timeout: the old one is gone all the same
  const fresh = agent({ incarnation: 'dd', firstSeenUs: NOW - 50_000, heartbeatUs: NOW - 10_000, inspectingUs: 0 });
  const d = decide(vm, [old, fresh], cur, C, 3, NOW);
  assert.deepEqual([d.mode, d.handoffUs], ['watchdog', NOW - 100_000]);
  assert.match(d.reason, /restarted/);
  assert.deepEqual(d.recovery, { of: 'agent:agt-1', fromUs: NOW - 250_000 }, 'the dead start may have left frames');
  // when the new one started before the old lease ended, from when it started
  const early = decide(
    vm,
    [
      agent({ capture: { active: true, frames: 9, published: 9, inspected_until_us: NOW + 100_000 } }),
      agent({ incarnation: 'dd', firstSeenUs: NOW - 20_000 }),
    ],
    cur,
    C,
    3,
    NOW,
  );
  assert.equal(early.handoffUs, NOW - 20_000);
  // the old incarnation is never promoted again; the new one is, once seen inspecting
  const w = asg({ handoff_us: d.handoffUs });
  assert.equal(decide(vm, [old, fresh], w, C, 3, NOW).mode, 'watchdog');
  const p = decide(vm, [old, { ...fresh, inspectingUs: NOW - 5_000 }], w, C, 3, NOW);
  assert.deepEqual([p.mode, p.incarnation], ['agent', 'dd']);
});

test('an assigned agent start the coordinator has not heard of yet is kept while it is learning, then taken back', () => {
  const cur = asg({
    mode: 'agent',
    agent: 'agt-1',
    incarnation: 'zz',
    enforcer: 'agent:agt-1',
    handoff_us: NOW - 5 * S,
    reason: 'r',
  });
  const other = agent({
    incarnation: 'c1',
    hw: 'cd'.repeat(8),
    verdict: { trusted: false, distrust: 'clone', detail: 'a clone', identity: null },
  });
  assert.equal(decide(vm, [other], cur, { ...C, learningUntilUs: NOW + 1 }, 3, NOW).mode, 'agent');
  const d = decide(vm, [other], cur, { ...C, learningUntilUs: NOW - 1 }, 3, NOW);
  assert.deepEqual([d.mode, d.handoffUs], ['watchdog', NOW]);
  assert.match(d.reason, /not known/);
});

test('a clone (same agent, another machine, not trusted) neither takes the VM nor costs the original its assignment', () => {
  const cur = asg({
    mode: 'agent',
    agent: 'agt-1',
    incarnation: 'aa',
    enforcer: 'agent:agt-1',
    handoff_us: NOW - 5 * S,
    reason: 'r',
  });
  const clone = agent({
    incarnation: 'c1',
    hw: 'cd'.repeat(8),
    firstSeenUs: NOW - 1000,
    heartbeatUs: NOW,
    verdict: { trusted: false, distrust: 'clone', detail: 'a clone', identity: null },
  });
  const d = decide(vm, [agent(), clone], cur, C, 3, NOW);
  assert.deepEqual([d.mode, d.incarnation, changed(cur, d)], ['agent', 'aa', false]);
});

test('a migration moves the watchdog assignment with the boundary at the move', () => {
  const moved = decide({ ...vm, host: 'hv2', hostSinceUs: NOW - 200_000 }, [], asg({}), C, 3, NOW);
  assert.deepEqual(
    [moved.mode, moved.host, moved.enforcer, moved.handoffUs],
    ['watchdog', 'hv2', 'watchdog:hv2', NOW - 200_000],
  );
});

const secret = randomBytes(32);
const hw = 'ab'.repeat(16);
function record(
  token: string,
  o: Partial<AgentRecord> & { generation?: number; hw?: string; incarnation?: string } = {},
): AgentRecord {
  const claims = readEnrollToken(token);
  return {
    agent: agentIdFor(claims),
    vm: claims.vm,
    version: '0.1.0',
    config_hash: 'h',
    identity: JSON.stringify({ generation: o.generation ?? 1, incarnation: o.incarnation ?? 'a1b2', hw: o.hw ?? hw }),
    heartbeat_us: NOW,
    status: 'running',
    kind: 'agent',
    host: null,
    policy_version: 1,
    capture: null,
    acks: {},
    heartbeat_interval_ms: 100,
    public_key: null,
    ...o,
  } as AgentRecord;
}

test('trust: a verified token binds the agent to its VM and machine; forged, wrong-VM, clone and revert are told apart', () => {
  const t = new AgentTrust(secret);
  const tok = makeEnrollToken(secret, 'vm-1', 3_600_000, NOW / 1000);
  const first = t.judge(record(tok), tok, NOW / 1000);
  assert.equal(first.verdict.trusted, true);
  assert.equal(first.effects.binding?.vm, 'vm-1');
  assert.deepEqual(
    first.effects.commands.map((c) => c.kind),
    ['enrolled'],
  );
  // later heartbeats without the token: still trusted
  assert.equal(t.judge(record(tok), null, NOW / 1000).verdict.trusted, true);

  // unenrolled: a record with no verified token
  const stranger = makeEnrollToken(randomBytes(32), 'vm-1', 3_600_000, NOW / 1000);
  assert.equal(t.judge(record(stranger), null, NOW / 1000).verdict.distrust, 'unenrolled');
  // forged: a token of another cluster's secret
  const forged = t.judge(record(stranger), stranger, NOW / 1000);
  assert.equal(forged.verdict.distrust, 'forged');
  assert.equal(forged.effects.alerts[0]!.rule, 'forged');
  // wrong VM: the bound agent claims another VM
  const wrong = t.judge({ ...record(tok), vm: 'vm-2' }, null, NOW / 1000);
  assert.equal(wrong.verdict.distrust, 'wrong-vm');
  // clone: same agent, another machine
  const clone = t.judge(record(tok, { hw: 'cd'.repeat(16), incarnation: 'c10e' }), null, NOW / 1000);
  assert.equal(clone.verdict.distrust, 'clone');
  assert.deepEqual(
    clone.effects.commands.map((c) => [c.kind, c.args.incarnation]),
    [['reenroll', 'c10e']],
  );
  // revert: a higher generation first, then an older one
  t.judge(record(tok, { generation: 5 }), null, NOW / 1000);
  const rev = t.judge(record(tok, { generation: 3, incarnation: 'beef' }), null, NOW / 1000);
  assert.equal(rev.verdict.trusted, true);
  assert.deepEqual(
    rev.effects.alerts.map((a) => a.rule),
    ['reverted'],
  );
  assert.deepEqual(
    rev.effects.commands.map((c) => [c.kind, c.args.generation]),
    [['rebaseline', '6']],
  );
  // it goes on from there: its next start is a restart, not the revert again
  const after = t.judge(record(tok, { generation: 7, incarnation: 'f00d' }), null, NOW / 1000);
  assert.deepEqual([after.verdict.trusted, after.effects.alerts.length], [true, 0]);
  // a token for VM A presented in a record claiming VM B
  const other = makeEnrollToken(secret, 'vm-a', 3_600_000, NOW / 1000);
  const mixed = t.judge({ ...record(other), vm: 'vm-b' }, other, NOW / 1000);
  assert.equal(mixed.verdict.distrust, 'forged');
  assert.match(mixed.verdict.detail, /token is for VM vm-a/);
});

test('trust: the signing key comes with the enrollment proof, first key wins, and heartbeats must be signed by it', () => {
  const t = new AgentTrust(secret);
  const tok = makeEnrollToken(secret, 'vm-1', 3_600_000, NOW / 1000);
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);
  /** The record is signed by the holder of `key` (what the coordinator's verify says). */
  const by = (key: Buffer) => (pub: Buffer) => pub.equals(key);
  const unsigned = () => false;

  // a key that the record is not signed with is not registered: forged
  const notSigned = t.judge(record(tok, { public_key: k1 }), tok, NOW / 1000, unsigned);
  assert.equal(notSigned.verdict.distrust, 'forged');
  assert.match(notSigned.verdict.detail, /not signed by the public key it registers/);
  // with the token and signed by it: registered
  const first = t.judge(record(tok, { public_key: k1 }), tok, NOW / 1000, by(k1));
  assert.equal(first.verdict.trusted, true);
  assert.equal(first.effects.keyRegistered, true);
  assert.equal(first.effects.binding?.publicKey, k1.toString('base64'));
  // later heartbeats signed by it: trusted; unsigned or signed by another key: not
  assert.equal(t.judge(record(tok, { public_key: k1 }), null, NOW / 1000, by(k1)).verdict.trusted, true);
  const forgedBeat = t.judge(record(tok), null, NOW / 1000, unsigned);
  assert.deepEqual([forgedBeat.verdict.distrust, forgedBeat.effects.alerts[0]?.rule], ['unsigned', 'unsigned']);
  // another key for the same agent: refused, with or without the (spent) token
  for (const token of [null, tok]) {
    const replaced = t.judge(record(tok, { public_key: k2 }), token, NOW / 1000, by(k2));
    assert.deepEqual(
      [
        replaced.verdict.trusted,
        replaced.verdict.distrust,
        replaced.effects.alerts[0]?.rule,
        replaced.effects.keyRegistered,
      ],
      [false, 'key-replaced', 'key-replaced', undefined],
    );
  }
  assert.equal(t.bindings.get(record(tok).agent)?.publicKey, k1.toString('base64'));

  // an agent bound before it had a key: a key without the token is not registered (and alerted)
  const legacy = new AgentTrust(secret);
  const ltok = makeEnrollToken(secret, 'vm-2', 3_600_000, NOW / 1000);
  legacy.judge(record(ltok), ltok, NOW / 1000);
  const unproven = legacy.judge(record(ltok, { public_key: k2 }), null, NOW / 1000, by(k2));
  assert.deepEqual([unproven.effects.keyRegistered, unproven.effects.alerts[0]?.rule], [undefined, 'key-unproven']);
  assert.equal(legacy.bindings.get(record(ltok).agent)?.publicKey, undefined);
  // …with its token: registered
  const proven = legacy.judge(record(ltok, { public_key: k2 }), ltok, NOW / 1000, by(k2));
  assert.deepEqual([proven.verdict.trusted, proven.effects.keyRegistered], [true, true]);
});

test('an agent whose clock is off does not take its VM over, nor keep it; its own stamps do not make it look alive', () => {
  const ms = 1000;
  // 40 ms ahead of the coordinator: more than half the limit, so no promotion
  const ahead = agent({ clockOffsetUs: 40 * ms, heartbeatUs: NOW - 100_000 + 40 * ms });
  const d = decide(vm, [ahead], asg({}), C, 3, NOW);
  assert.equal(d.mode, 'watchdog');
  assert.match(d.reason, /agt-1's clock is 40 ms ahead of the coordinator's \(to take a VM over, within 12.5 ms/);
  // within half the limit it takes over; a protecting agent keeps its VM up to the limit itself
  assert.equal(decide(vm, [agent({ clockOffsetUs: 12 * ms })], asg({}), C, 3, NOW).mode, 'agent');
  const protecting = protectingAgt1();
  assert.equal(decide(vm, [agent({ clockOffsetUs: -20 * ms })], protecting, C, 3, NOW).mode, 'agent');
  const lost = decide(
    vm,
    [agent({ clockOffsetUs: -30 * ms, heartbeatUs: NOW - 100_000 - 30 * ms })],
    protecting,
    C,
    3,
    NOW,
  );
  assert.equal(lost.mode, 'watchdog');
  assert.match(lost.reason, /30 ms behind the coordinator's \(at most 25 ms/);
  // measured against the VM's host's watchdog when its clock is known: both 40 ms ahead is in step
  const both = decide({ ...vm, hostClockOffsetUs: 38 * ms }, [ahead], asg({}), C, 3, NOW);
  assert.equal(both.mode, 'agent');
  const host = decide({ ...vm, hostClockOffsetUs: -10 * ms }, [agent({ clockOffsetUs: 5 * ms })], asg({}), C, 3, NOW);
  assert.match(host.reason, /15 ms ahead of its host's watchdog's/);
  // not measured yet (read back at start): its stamps are taken as they are while it keeps a VM,
  // but taking one over waits for four heartbeats measured (the offset it is told then is fixed)
  assert.equal(decide(vm, [agent({ clockOffsetUs: null, clockSamples: 0 })], protecting, C, 3, NOW).mode, 'agent');
  const early = decide(vm, [agent({ clockOffsetUs: 1_000, clockSamples: 3 })], asg({}), C, 3, NOW);
  assert.equal(early.mode, 'watchdog');
  assert.match(early.reason, /clock is being measured \(3 of 4 heartbeats\)/);
  assert.equal(decide(vm, [agent({ clockOffsetUs: 1_000, clockSamples: 4 })], asg({}), C, 3, NOW).mode, 'agent');
  // a dead agent whose clock ran 2 s ahead: its last heartbeat is stamped 1.4 s "from now", but
  // the coordinator heard it 600 ms ago, past the 500 ms timeout
  const dead = agent({ clockOffsetUs: 2 * S, heartbeatUs: NOW - 600_000 + 2 * S });
  const gone = decide(vm, [dead], protecting, { ...C, maxClockOffsetMs: 5_000 }, 3, NOW);
  assert.equal(gone.mode, 'watchdog');
  assert.match(gone.reason, /silent for 0.6 s/);
});

test('a protecting agent is not judged on a clock measured at too few moments (a coordinator that just took it over)', () => {
  const ms = 1000;
  const protecting = protectingAgt1();
  // the records a new reader caught up on were all late: the agent looks 300 ms behind
  const caughtUp = { clockOffsetUs: -300 * ms, heartbeatUs: NOW - 100_000 - 300 * ms };
  assert.equal(decide(vm, [agent({ ...caughtUp, clockSamples: 3 })], protecting, C, 3, NOW).mode, 'agent');
  // measured at four moments, the estimate stands
  const off = decide(vm, [agent({ ...caughtUp, clockSamples: 4 })], protecting, C, 3, NOW);
  assert.equal(off.mode, 'watchdog');
  assert.match(off.reason, /300 ms behind the coordinator's/);
  // the same holds for the host's watchdog's clock the agent is measured against
  const hostEarly = { ...vm, hostClockOffsetUs: 300 * ms, hostClockSamples: 1 };
  assert.equal(decide(hostEarly, [agent({ clockOffsetUs: 0 })], protecting, C, 3, NOW).mode, 'agent');
  const hostMeasured = decide(
    { ...hostEarly, hostClockSamples: 4 },
    [agent({ clockOffsetUs: 0 })],
    protecting,
    C,
    3,
    NOW,
  );
  assert.match(hostMeasured.reason, /300 ms behind its host's watchdog's/);
  // an unsettled estimate never lets an agent take a VM over, nor keeps a silent one
  assert.equal(decide(vm, [agent({ clockOffsetUs: 0, clockSamples: 2 })], asg({}), C, 3, NOW).mode, 'watchdog');
  const silent = decide(
    vm,
    [agent({ clockOffsetUs: 0, clockSamples: 2, heartbeatUs: NOW - 600_000 })],
    protecting,
    C,
    3,
    NOW,
  );
  assert.match(silent.reason, /silent for 0.6 s/);
});

test("the assignment tells an agent its clock's offset from its host's, and its lease is read back on the host's clock", () => {
  const ms = 1000;
  // promoted 10 ms ahead of the coordinator, its host's watchdog 3 ms ahead: 7 ms to apply
  const up = decide({ ...vm, hostClockOffsetUs: 3 * ms }, [agent({ clockOffsetUs: 10 * ms })], asg({}), C, 3, NOW);
  assert.deepEqual([up.mode, up.clockOffsetUs], ['agent', 7 * ms]);
  // unmeasured, or within the noise of two transits (2 ms): nothing to apply
  assert.equal(decide(vm, [agent({ clockOffsetUs: null })], asg({}), C, 3, NOW).clockOffsetUs, 0);
  assert.equal(decide(vm, [agent({ clockOffsetUs: -1_500 })], asg({}), C, 3, NOW).clockOffsetUs, 0);
  // kept: the offset it was told stays (however the estimate moves), so its boundary does not
  const cur = asg({
    mode: 'agent',
    agent: 'agt-1',
    incarnation: 'aa',
    enforcer: 'agent:agt-1',
    handoff_us: NOW - 5 * S,
    clock_offset_us: 7 * ms,
  });
  assert.equal(decide(vm, [agent({ clockOffsetUs: 9 * ms })], cur, C, 3, NOW).clockOffsetUs, 7 * ms);
  // silent: taken back from its lease on the host's clock; its recovery from its last heartbeat
  // (less one interval) on the host's clock too; the watchdog's assignment carries no offset
  const dead = agent({
    clockOffsetUs: 7 * ms,
    heartbeatUs: NOW - 700_000 + 7 * ms,
    capture: { active: true, frames: 1, published: 1, inspected_until_us: NOW - 120_000 + 7 * ms },
  });
  const back = decide(vm, [dead], cur, C, 3, NOW);
  assert.deepEqual([back.mode, back.handoffUs, back.clockOffsetUs], ['watchdog', NOW - 120_000, 0]);
  assert.deepEqual(back.recovery, { of: 'agent:agt-1', fromUs: NOW - 990_000 });
  // a live agent that must hand over does so after its lease, read on the host's clock
  const stale = agent({
    clockOffsetUs: 7 * ms,
    policyVersion: 2,
    heartbeatUs: NOW - 50_000 + 7 * ms,
    capture: { active: true, frames: 1, published: 1, inspected_until_us: NOW + 2 * S + 7 * ms },
  });
  assert.equal(decide(vm, [stale], cur, C, 3, NOW).handoffUs, NOW + 2 * S);
});
