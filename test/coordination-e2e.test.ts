/**
 * Coordination end to end, on the embedded bus and on real Kafka, in the coordination lab
 * (test/lib/coordination-lab.ts: two hosts' bridges on a fabric, the inventory file as the
 * platform, every stage that protects a VM, an attacker; root and network namespaces):
 *
 * - gating: a gated VM powered on before anyone can protect it is held (its first packets are
 *   dropped), and released once its protection is current (after it, packets pass);
 * - power-on of a VM with an agent → the agent protects it;
 * - forged heartbeats (a token of another cluster, a token for another VM) → refused, alerted;
 * - a clone (same token and state dir, another machine) → not trusted, alerted, told to enroll
 *   again, publishes nothing; the original keeps its VM;
 * - the coordinator owning the VM is killed → the other takes over; no assignment is lost or
 *   rewritten;
 * - the agent is killed → the watchdog protects the VM within the heartbeat timeout;
 * - a migration → the VM's blocks are enforced on the destination's bridge within 1 s;
 * - a revert (state dir and files back to an earlier copy) → one `reverted` alert, the agent's
 *   file baseline re-based, no file-change alerts from the revert — and a later restart is a
 *   restart, not the revert again.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { agentIdFor, makeEnrollToken, readEnrollToken } from '@cordon/agent';
import { partitionForKey } from '@cordon/bus';
import { TOKEN_HEADER } from '@cordon/coordinator';
import { codecFor, TOPICS, type AgentRecord } from '@cordon/schemas';
import { canUseNetns, waitFor, wallUs } from '@cordon/testkit';
import type { GatingHandle } from '@cordon/watchdog';
import { CoordinationWorld, type AgentHandle } from './lib/coordination-lab.js';

const skip = canUseNetns();
const HEARTBEAT_MS = 100;
const TIMEOUT_MS = 500;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function scenario(t: TestContext, kind: 'embedded' | 'kafka', tag: string, subnet: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), `cordon-coord-e2e-${kind}-`));
  const world = await CoordinationWorld.start({
    kind,
    tag,
    subnet,
    dir,
    vms: { vm1: 'hva', vm2: 'hva' },
    heartbeatIntervalMs: HEARTBEAT_MS,
    heartbeatTimeoutMs: TIMEOUT_MS,
    handoffDelayMs: 300,
    gate: ['vm1'],
    coordinators: 0,
    coordinatorProcesses: kind === 'kafka',
    verbose: !!process.env.CORDON_TEST_LOG,
  });
  const note = (msg: string) => t.diagnostic(`${kind}: ${msg}`);
  try {
    world.tapPackets();
    const asg = (vm: string) => world.assignment(vm);
    const vm1 = world.lab.vms.vm1!;
    const vm2 = world.lab.vms.vm2!;
    const token = world.tokenFor('vm1');
    const agentId = agentIdFor(readEnrollToken(token));
    const stateDir = join(dir, 'vm1-agent');
    const files = join(dir, 'vm1-files');
    mkdirSync(files);
    for (let i = 0; i < 20; i++) writeFileSync(join(files, `f${i}.conf`), `setting ${i}\n`);
    const machineA = world.sysRoot('machine-a');
    const startA = () =>
      world.startAgent({ vm: 'vm1', token, stateDir, sysRoot: machineA, fimPaths: [files], checkpointS: 0.5 });
    const incarnation = (a: AgentHandle) =>
      (a.stage as unknown as { identity: { incarnation: string } }).identity.incarnation;
    const alertsOf = (rule: string) => world.seen.alerts.filter((x) => x.alert.rule_id === rule);
    const vm1Attacks = (from: number, to = Infinity) =>
      [...world.attacks.values()].filter((a) => a.vm === 'vm1' && a.sentUs >= from && a.sentUs < to);

    // ---- gating: vm1 powers on while no coordinator runs — nobody can protect it, it is held
    world.startAttacks(50, ['vm1', 'vm2']);
    world.powerOn('vm2');
    const onAt = world.powerOn('vm1');
    let agent = await startA();
    const gating = (world.watchdogs.get('hva')!.stage as unknown as { gating: GatingHandle }).gating;
    await sleep(1500);
    assert.deepEqual(gating.held(), ['vm1'], 'the gated VM is held');
    assert.ok(vm1Attacks(onAt).length >= 20, 'attacks were sent while it was held');
    assert.equal(vm1Attacks(onAt).filter((a) => a.receivedUs !== null).length, 0, 'none reached it');
    assert.ok(
      vm2Attacks(world, onAt).some((a) => a.receivedUs !== null),
      'the ungated VM beside it was reachable',
    );
    const coordinatorsAt = wallUs();
    await world.startCoordinator();
    await world.startCoordinator();
    const release = await waitFor(
      'the gated VM to be released',
      () => gating.releases.find((r) => r.vm === 'vm1'),
      60_000,
    );
    note(
      `gate: released ${((release.atUs - coordinatorsAt) / 1000).toFixed(0)} ms after the coordinators started (${((release.atUs - onAt) / 1000).toFixed(0)} ms after power-on; the watchdog counts ${release.ms.toFixed(0)} ms from the platform's record)`,
    );
    // the first protection the coordinators give it may be the watchdog's or — when they have
    // already seen the agent inspecting — the agent's; either way an assignment they wrote, at once
    const by = await waitFor(
      `the releasing assignment (epoch ${release.epoch}) on the bus`,
      () => world.seen.assignments.find((x) => x.a.vm === 'vm1' && x.a.epoch === release.epoch)?.a,
      10_000,
    );
    assert.ok(by.mode === 'watchdog' || by.mode === 'agent', `released once protected: ${by.mode}`);
    assert.equal(release.enforcer, by.enforcer, 'the release names the enforcer of that assignment');
    note(`gate: released under ${by.mode} protection (${by.enforcer}, epoch ${by.epoch})`);
    await waitFor(
      'attacks reaching it after the release',
      () => vm1Attacks(release.atUs + 50_000).filter((a) => a.receivedUs !== null).length >= 5,
    );
    assert.equal(
      vm1Attacks(onAt, release.atUs - 20_000).filter((a) => a.receivedUs !== null).length,
      0,
      'before the release: dropped',
    );
    const after = vm1Attacks(release.atUs + 50_000, wallUs() - 200_000);
    assert.ok(after.length > 0 && after.every((a) => a.receivedUs !== null), 'after it: passed');

    // ---- power-on of a VM with an agent → the agent
    const a0 = await waitFor(
      'the agent to protect vm1',
      () => (asg('vm1')?.mode === 'agent' && asg('vm1')?.incarnation === incarnation(agent) ? asg('vm1') : null),
      30_000,
    );
    assert.equal(a0.agent, agentId);
    assert.equal(a0.enforcer, `agent:${agentId}`);
    // the copy a revert will go back to (below)
    CoordinationWorld.copyDir(stateDir, join(dir, 'snapshot-state'));
    CoordinationWorld.copyDir(files, join(dir, 'snapshot-files'));

    // ---- forged heartbeats: another cluster's token; a token for vm2 claiming vm1
    const forge = async (tok: string, claims: string) => {
      const rec: AgentRecord = {
        agent: agentIdFor(readEnrollToken(tok)),
        vm: claims,
        version: '0.1.0',
        config_hash: 'h',
        identity: JSON.stringify({
          generation: 1,
          incarnation: randomBytes(4).toString('hex'),
          hw: randomBytes(16).toString('hex'),
        }),
        heartbeat_us: wallUs(),
        status: 'running',
        kind: 'agent',
        host: null,
        policy_version: world.policyVersion,
        capture: { active: true, frames: 100, published: 100, inspected_until_us: wallUs() },
        acks: {},
        heartbeat_interval_ms: HEARTBEAT_MS,
        public_key: null,
        processes: null,
        malware: null,
      };
      await world.bus.producer().send(TOPICS.agents, [
        {
          key: Buffer.from(rec.agent),
          value: codecFor(TOPICS.agents).encode(rec),
          headers: { [TOKEN_HEADER]: Buffer.from(tok) },
        },
      ]);
    };
    await forge(makeEnrollToken(randomBytes(32), 'vm1', 3_600_000, Date.now()), 'vm1');
    await forge(world.tokenFor('vm2'), 'vm1');
    const forged = await waitFor(
      'two refusals',
      () => (alertsOf('coordinator:agent-forged').length >= 2 ? alertsOf('coordinator:agent-forged') : null),
      30_000,
    );
    assert.ok(forged.some((x) => /signature does not match/.test(JSON.parse(x.alert.evidence).detail)));
    assert.ok(forged.some((x) => /token is for VM vm2/.test(JSON.parse(x.alert.evidence).detail)));
    assert.equal(asg('vm1')?.epoch, a0.epoch, 'the forged agents took nothing');

    // ---- a clone: vm1's agent, state dir and token copied into vm2 (another machine)
    const cloneState = join(dir, 'clone-agent');
    CoordinationWorld.copyDir(stateDir, cloneState);
    const clone = await world.startAgent({
      vm: 'vm1',
      token,
      stateDir: cloneState,
      sysRoot: world.sysRoot('machine-b'),
      inVm: 'vm2',
    });
    const cloneInc = incarnation(clone);
    const cloneAlert = await waitFor('the clone alert', () => alertsOf('coordinator:agent-clone')[0], 30_000);
    assert.equal(JSON.parse(cloneAlert.alert.evidence).agent, agentId);
    await waitFor(
      'reenroll to the clone',
      () => world.seen.commands.find((c) => c.c.kind === 'reenroll' && c.c.args.incarnation === cloneInc),
      30_000,
    );
    await sleep(1000);
    const fromClone = world.packets.filter(
      (b) => b.sensor === `agent:${agentId}` && b.frames.some((f) => f.src === vm2.ip || f.dst === vm2.ip),
    );
    assert.equal(fromClone.length, 0, "the clone published none of its VM's frames");
    assert.equal(asg('vm1')?.epoch, a0.epoch, 'the original keeps its VM');
    await world.killAgent(clone);

    // ---- kill the coordinator that decides for vm1; the other takes over, nothing is rewritten
    const p = partitionForKey(Buffer.from('vm1'), 3, () => 0);
    await waitFor(
      'both coordinators sharing the partitions',
      () =>
        new Set([...world.owned(0), ...world.owned(1)]).size === 3 &&
        world.owned(0).size > 0 &&
        world.owned(1).size > 0,
      60_000,
    );
    const owner = world.owned(0).has(p) ? 0 : 1;
    const survivor = 1 - owner;
    const epochs = { vm1: asg('vm1')!.epoch, vm2: asg('vm2')!.epoch };
    const killedAt = wallUs();
    await world.killCoordinator(owner);
    await waitFor('the survivor owning every partition', () => world.owned(survivor).size === 3, 60_000);
    note(`coordinator take-over: ${((wallUs() - killedAt) / 1000).toFixed(0)} ms after the kill`);
    await sleep(1000);
    assert.deepEqual(
      { vm1: asg('vm1')!.epoch, vm2: asg('vm2')!.epoch },
      epochs,
      'no assignment rewritten by the take-over',
    );
    assert.equal(world.seen.assignments.filter((x) => x.at > killedAt).length, 0, 'no assignment written at all');

    // ---- kill the agent: the watchdog within the timeout
    const killAt = wallUs();
    await world.killAgent(agent);
    const back = await waitFor(
      'the watchdog taking vm1 back',
      () => world.seen.assignments.find((x) => x.at > killAt && x.a.vm === 'vm1'),
      30_000,
    );
    const tookMs = (back.at - killAt) / 1000;
    note(
      `agent killed → watchdog assignment seen after ${tookMs.toFixed(0)} ms (timeout ${TIMEOUT_MS} ms); boundary ${((back.a.handoff_us - killAt) / 1000).toFixed(0)} ms after the kill`,
    );
    assert.equal(back.a.mode, 'watchdog');
    assert.ok(tookMs <= TIMEOUT_MS + 250, `within the timeout (+ a tick and the bus): ${tookMs} ms`);

    // ---- a migration: the VM's blocks follow it to the destination's bridge
    const blocker = `10.213.${subnet}.201`;
    world.addAttackerAddress(blocker);
    world.sendOne('vm1', blocker, 'CORDON-BLOCK-ME please');
    await waitFor("the block on hva's bridge", () => world.nftSet('hva', 'drop4').includes(blocker), 30_000);
    const migratedAt = world.migrate('vm1', 'hvb');
    await waitFor("the block on hvb's bridge", () => world.nftSet('hvb', 'drop4').includes(blocker), 5_000, 10);
    const blockMs = (wallUs() - migratedAt) / 1000;
    note(`migration → block enforced on the destination's bridge after ${blockMs.toFixed(0)} ms`);
    assert.ok(blockMs < 1000, `within 1 s: ${blockMs} ms`);
    assert.equal(asg('vm1')?.host, 'hvb');
    await waitFor("the block lifted from hva's bridge", () => !world.nftSet('hva', 'drop4').includes(blocker), 10_000);

    // ---- revert: the agent runs on; its state dir and files go back to the copy made above
    agent = await startA();
    await waitFor(
      'the agent protecting vm1 on hvb',
      () => asg('vm1')?.mode === 'agent' && asg('vm1')?.incarnation === incarnation(agent),
      30_000,
    );
    for (let i = 0; i < 10; i++) writeFileSync(join(files, `f${i}.conf`), `setting ${i} changed\n`);
    await waitFor(
      'the changes reported',
      () => world.seen.fim.filter((x) => x.e.agent === agentId && x.e.op === 'changed').length >= 10,
      30_000,
    );
    await sleep(1200); // checkpoints since the copy
    await world.killAgent(agent);
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(files, { recursive: true, force: true });
    cpSync(join(dir, 'snapshot-state'), stateDir, { recursive: true });
    cpSync(join(dir, 'snapshot-files'), files, { recursive: true });
    const revertedAt = wallUs();
    agent = await startA();
    const revInc = incarnation(agent);
    await waitFor('the reverted alert', () => alertsOf('coordinator:agent-reverted')[0], 30_000);
    const rebase = await waitFor(
      'the rebaseline command',
      () => world.seen.commands.find((c) => c.c.kind === 'rebaseline' && c.c.args.incarnation === revInc),
      30_000,
    );
    assert.ok(Number(rebase.c.args.generation) > 1);
    await waitFor(
      'the new baseline',
      () => world.seen.fim.some((x) => x.at > revertedAt && x.e.agent === agentId && x.e.op === 'baseline'),
      30_000,
    );
    await waitFor(
      'the reverted agent protecting vm1',
      () => asg('vm1')?.mode === 'agent' && asg('vm1')?.incarnation === revInc,
      30_000,
    );
    // one more restart: a restart, not the revert again
    await world.killAgent(agent);
    agent = await startA();
    await waitFor(
      'the restarted agent protecting vm1',
      () => asg('vm1')?.mode === 'agent' && asg('vm1')?.incarnation === incarnation(agent),
      30_000,
    );
    await sleep(1000);
    assert.equal(alertsOf('coordinator:agent-reverted').length, 1, 'one reverted alert');
    const storm = world.seen.fim.filter(
      (x) => x.at > revertedAt && x.e.agent === agentId && x.e.op !== 'baseline' && x.e.op !== 'scan',
    );
    assert.deepEqual(
      storm.map((x) => `${x.e.op} ${x.e.path}`),
      [],
      'no file changes reported from the revert',
    );
    assert.equal(
      world.seen.alerts.filter((x) => x.at > revertedAt && x.alert.stage === 'fim').length,
      0,
      'no file-change alerts',
    );
    note(
      `revert: reverted alert, rebaseline to generation ${rebase.c.args.generation}, ${world.seen.fim.filter((x) => x.at > revertedAt && x.e.op === 'baseline').length} baseline event(s), 0 file changes`,
    );
  } finally {
    world.stopAttacks();
    await world.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

function vm2Attacks(world: CoordinationWorld, from: number) {
  return [...world.attacks.values()].filter((a) => a.vm === 'vm2' && a.sentUs >= from);
}

test('coordination end to end on the embedded bus', { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  await scenario(t, 'embedded', 'ce', 44);
});

test('coordination end to end on Kafka', { skip: skip ?? false, timeout: 300_000 }, async (t) => {
  await scenario(t, 'kafka', 'ck', 45);
});
