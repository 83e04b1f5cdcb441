// The protection gap: how much of a VM's traffic goes uninspected (or is inspected twice) while
// the VM's protection changes hands — in a real lab (network namespaces, two hosts' bridges on a
// fabric, nftables; needs root), with the inventory file connector as the platform driving the
// lifecycle (test/lib/coordination-lab.ts: the lab stamps the file with the instant of each
// power change and migration, as a platform stamps its events).
//
// An attacker on the fabric sends one UDP attack every --interval ms at each VM, each from its
// own source port (the attack's id); a receiver in the VM notes which arrive; the dpi stage has a
// rule matching them, and its alerts are matched to attacks by source port. Meanwhile the scenario
// runs cycles of transitions on vm1 — power-on, migration (watchdog to watchdog), agent start,
// agent loss (killed), agent start again, revert (killed, its state dir restored from an earlier
// copy, restarted), agent loss, migration back, power-off — and powers a gated vm2 on and off.
//
// Per transition type: attacks sent, delivered (the VM received them), detected, detected twice,
// missed (delivered but never detected), held by the gate (gated VM, not delivered), and the gap:
// for each transition, the time from its first missed attack to the next detected attack of that
// VM (0 when none was missed); p50/p99 over the transitions of the type. Then the gate: time from
// power-on (the lab bringing the port up) to release (nft's delete of the VM's MAC from the gate,
// seen by `nft monitor`). Last, one JSON line.
//
//   node bench/gap.mjs [--transitions 100] [--interval 100] [--heartbeat 100] [--timeout 500]
//                      [--handoff 300] [--bus embedded|kafka] [--verbose]
//                      [--agent-clock MS] [--max-clock-offset MS]
// --agent-clock runs the agents on a clock that far off (their capture stamps too: a guest
// without time sync); the coordinator measures it and corrects the hand-offs for it
// (Assignment.clock_offset_us), or refuses the agent past --max-clock-offset.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createInterface } from 'node:readline';

const { values: args } = parseArgs({
  options: {
    transitions: { type: 'string', default: '100' },
    interval: { type: 'string', default: '100' },
    heartbeat: { type: 'string', default: '100' },
    timeout: { type: 'string', default: '500' },
    handoff: { type: 'string', default: '300' },
    settle: { type: 'string', default: '700' },
    bus: { type: 'string', default: 'embedded' },
    verbose: { type: 'boolean', default: false },
    'agent-clock': { type: 'string', default: '0' },
    'max-clock-offset': { type: 'string', default: '0' },
    keep: { type: 'boolean', default: false },
  },
});

if (process.getuid?.() !== 0) {
  console.log('gap: skipped (needs root: network namespaces, bridges, nftables)');
  process.exit(0);
}
if (args.bus === 'kafka' && !process.env.KAFKA_BROKERS) {
  console.log('gap: skipped (--bus kafka needs KAFKA_BROKERS; scripts/bench.sh starts a broker)');
  process.exit(0);
}

const { CoordinationWorld } = await import('../test/dist/lib/coordination-lab.js');
const { wallUs } = await import('@cordon/testkit');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const settle = Number(args.settle);
const heartbeat = Number(args.heartbeat);
const timeout = Number(args.timeout);
const interval = Number(args.interval);
const wanted = Number(args.transitions);
const t0 = Date.now();
const say = (msg) => process.stderr.write(`[gap +${((Date.now() - t0) / 1000).toFixed(1)}s] ${msg}\n`);

function percentile(values, p) {
  if (values.length === 0) return 0;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

const dir = mkdtempSync(join(tmpdir(), 'cordon-bench-gap-'));
const world = await CoordinationWorld.start({
  kind: args.bus,
  tag: 'bgap',
  subnet: 63,
  dir,
  vms: { vm1: 'hva', vm2: 'hva' },
  heartbeatIntervalMs: heartbeat,
  heartbeatTimeoutMs: timeout,
  handoffDelayMs: Number(args.handoff),
  gate: ['vm2'],
  verbose: args.verbose,
  ...(Number(args['agent-clock']) ? { agentClockMs: Number(args['agent-clock']) } : {}),
  ...(Number(args['max-clock-offset']) ? { maxClockOffsetMs: Number(args['max-clock-offset']) } : {}),
});
const monitors = [];
/** MAC → times (µs) nft deleted it from a gate set. */
const ungated = new Map();
/** @type {Array<{type: string, vm: string, atUs: number, ok: boolean, note?: string}>} */
const transitions = [];
const failures = [];

try {
  for (const h of Object.values(world.lab.hosts)) {
    const m = spawn('ip', ['netns', 'exec', h.ns, 'nft', 'monitor'], { stdio: ['ignore', 'pipe', 'ignore'] });
    monitors.push(m);
    createInterface({ input: m.stdout }).on('line', (line) => {
      const t = wallUs();
      const x = /^delete element bridge \S+ gate \{ ([0-9a-f:, ]+) \}/.exec(line);
      if (x) for (const mac of x[1].split(',').map((s) => s.trim())) ungated.set(mac, [...(ungated.get(mac) ?? []), t]);
    });
  }
  const until = async (what, cond, ms = 15_000) => {
    const end = Date.now() + ms;
    while (Date.now() < end) {
      if (cond()) return true;
      await sleep(10);
    }
    failures.push(`${what}: not within ${ms} ms`);
    say(`FAILED: ${what}`);
    return false;
  };
  const asg = (vm) => world.assignment(vm);
  const incarnationOf = (agent) => agent.stage.identity.incarnation;
  const begin = (type, vm, atUs = wallUs()) => {
    const t = { type, vm, atUs, ok: true };
    transitions.push(t);
    return t;
  };
  const done = async (t, what, cond) => {
    t.ok = await until(`${t.type} of ${t.vm} (${what})`, cond);
    await sleep(settle);
  };

  const stateDir = join(dir, 'agent-state');
  const snapDir = join(dir, 'agent-state.snapshot');
  const token = world.tokenFor('vm1');
  const sysRoot = world.sysRoot('vm1');
  const startAgent = () => world.startAgent({ vm: 'vm1', token, stateDir, sysRoot });

  // warm-up (not measured): rules compiled, captures open, code hot; the first state-dir snapshot
  say('warming up');
  world.powerOn('vm1');
  await until('warm-up watchdog', () => asg('vm1')?.mode === 'watchdog', 30_000);
  let agent = await startAgent();
  await until('warm-up agent', () => asg('vm1')?.mode === 'agent', 30_000);
  await world.killAgent(agent);
  CoordinationWorld.copyDir(stateDir, snapDir);
  agent = null;
  world.powerOff('vm1');
  await until('warm-up power-off', () => asg('vm1')?.mode === 'none', 30_000);
  world.startAttacks(interval, ['vm1', 'vm2']);
  await sleep(1000);

  let host = 'hva';
  const other = (h) => (h === 'hva' ? 'hvb' : 'hva');
  for (let cycle = 1; transitions.length < wanted; cycle++) {
    say(`cycle ${cycle}: ${transitions.length} transitions so far`);
    // vm2, gated: powered on (held until protected, then released)
    let t = begin('power-on (gated)', 'vm2', world.powerOn('vm2'));
    await done(
      t,
      'released, watchdog',
      () => asg('vm2')?.mode === 'watchdog' && (ungated.get(world.lab.vms.vm2.mac) ?? []).some((x) => x >= t.atUs),
    );

    t = begin('power-on', 'vm1', world.powerOn('vm1'));
    await done(t, 'watchdog', () => asg('vm1')?.mode === 'watchdog' && asg('vm1')?.host === host);

    host = other(host);
    t = begin('migration', 'vm1', world.migrate('vm1', host));
    await done(t, `watchdog of ${host}`, () => asg('vm1')?.mode === 'watchdog' && asg('vm1')?.host === host);

    t = begin('agent start', 'vm1');
    agent = await startAgent();
    const a1 = agent;
    await done(
      t,
      'agent',
      () =>
        asg('vm1')?.mode === 'agent' &&
        asg('vm1')?.incarnation === incarnationOf(a1) &&
        wallUs() > asg('vm1').handoff_us,
    );

    t = begin('agent loss', 'vm1');
    await world.killAgent(agent);
    await done(t, 'watchdog', () => asg('vm1')?.mode === 'watchdog');

    t = begin('agent start', 'vm1');
    agent = await startAgent();
    const a2 = agent;
    await done(
      t,
      'agent',
      () =>
        asg('vm1')?.mode === 'agent' &&
        asg('vm1')?.incarnation === incarnationOf(a2) &&
        wallUs() > asg('vm1').handoff_us,
    );

    // revert: the VM goes back to the snapshot of an earlier cycle (its agent's state dir with it)
    t = begin('revert', 'vm1');
    await world.killAgent(agent);
    const nextSnap = `${snapDir}.next`;
    CoordinationWorld.copyDir(stateDir, nextSnap);
    CoordinationWorld.copyDir(snapDir, stateDir);
    CoordinationWorld.copyDir(nextSnap, snapDir);
    agent = await startAgent();
    const a3 = agent;
    await done(
      t,
      'agent',
      () =>
        asg('vm1')?.mode === 'agent' &&
        asg('vm1')?.incarnation === incarnationOf(a3) &&
        wallUs() > asg('vm1').handoff_us,
    );

    t = begin('agent loss', 'vm1');
    await world.killAgent(agent);
    agent = null;
    await done(t, 'watchdog', () => asg('vm1')?.mode === 'watchdog');

    host = other(host);
    t = begin('migration', 'vm1', world.migrate('vm1', host));
    await done(t, `watchdog of ${host}`, () => asg('vm1')?.mode === 'watchdog' && asg('vm1')?.host === host);

    t = begin('power-off', 'vm1', world.powerOff('vm1'));
    await done(t, 'none', () => asg('vm1')?.mode === 'none');

    t = begin('power-off', 'vm2', world.powerOff('vm2'));
    await done(t, 'none', () => asg('vm2')?.mode === 'none');
  }
  world.stopAttacks();
  say('draining: the last alerts');
  await sleep(3000);

  // ---- figures
  const attacks = [...world.attacks.values()].filter((a) => a.sentUs > 0 && a.vm);
  const byVm = new Map();
  for (const a of attacks) byVm.set(a.vm, [...(byVm.get(a.vm) ?? []), a]);
  for (const list of byVm.values()) list.sort((x, y) => x.sentUs - y.sentUs);
  const rows = new Map();
  const row = (type) => {
    let r = rows.get(type);
    if (!r)
      rows.set(
        type,
        (r = { transitions: 0, sent: 0, delivered: 0, detected: 0, doubled: 0, missed: 0, held: 0, gaps: [] }),
      );
    return r;
  };
  const all = row('all');
  for (let i = 0; i < transitions.length; i++) {
    const t = transitions[i];
    const next = transitions.slice(i + 1).find((x) => x.vm === t.vm);
    const list = byVm.get(t.vm) ?? [];
    const mine = list.filter((a) => a.sentUs >= t.atUs && (!next || a.sentUs < next.atUs));
    let gap = 0;
    const firstMissed = mine.find((a) => a.receivedUs !== null && a.alerts.length === 0);
    if (firstMissed) {
      const nextDetected = list.find((a) => a.sentUs > firstMissed.sentUs && a.alerts.length > 0);
      gap = nextDetected
        ? (nextDetected.sentUs - firstMissed.sentUs) / 1000
        : (list[list.length - 1].sentUs - firstMissed.sentUs) / 1000;
    }
    if (args.verbose)
      for (const a of mine)
        if ((a.receivedUs !== null && a.alerts.length === 0) || a.alerts.length > 1)
          console.error(
            `[gap] ${t.type} of ${t.vm} at ${t.atUs}: attack sent ${a.sentUs} (+${((a.sentUs - t.atUs) / 1000).toFixed(0)} ms) ${a.alerts.length ? `detected ${a.alerts.length} times` : 'missed'}`,
          );
    for (const r of [row(t.type), all]) {
      r.transitions++;
      r.sent += mine.length;
      r.delivered += mine.filter((a) => a.receivedUs !== null).length;
      r.detected += mine.filter((a) => a.alerts.length > 0).length;
      r.doubled += mine.filter((a) => a.alerts.length > 1).length;
      r.missed += mine.filter((a) => a.receivedUs !== null && a.alerts.length === 0).length;
      if (t.type === 'power-on (gated)') {
        const releasedAt = (ungated.get(world.lab.vms[t.vm].mac) ?? []).find((x) => x >= t.atUs) ?? Infinity;
        r.held += mine.filter((a) => a.receivedUs === null && a.sentUs < releasedAt).length;
      }
      r.gaps.push(gap);
    }
  }
  const releases = [];
  for (const t of transitions.filter((x) => x.type === 'power-on (gated)')) {
    const at = (ungated.get(world.lab.vms[t.vm].mac) ?? []).find((x) => x >= t.atUs);
    if (at !== undefined) releases.push((at - t.atUs) / 1000);
  }

  const fmt = (v) => v.toFixed(0).padStart(7);
  console.log(
    `gap: ${transitions.length} transitions, one attack per ${interval} ms per VM, heartbeat ${heartbeat} ms, timeout ${timeout} ms, hand-off delay ${args.handoff} ms, ${args.bus} bus${Number(args['agent-clock']) ? `, agents' clocks ${args['agent-clock']} ms off` : ''}`,
  );
  console.log('type                 trans   sent  deliv  detect  twice  missed  gated  gap p50  gap p99 (ms)');
  for (const [type, r] of [...rows].filter(([k]) => k !== 'all').concat([['all', all]])) {
    console.log(
      `${type.padEnd(20)} ${String(r.transitions).padStart(5)} ${String(r.sent).padStart(6)} ${String(r.delivered).padStart(6)} ${String(r.detected).padStart(7)} ${String(r.doubled).padStart(6)} ${String(r.missed).padStart(7)} ${String(r.held).padStart(6)} ${fmt(percentile(r.gaps, 50))}  ${fmt(percentile(r.gaps, 99))}`,
    );
  }
  console.log(
    `gate: power-on to release of the gated VM (nft monitor), ${releases.length} power-ons: p50 ${percentile(releases, 50).toFixed(1)} ms, p99 ${percentile(releases, 99).toFixed(1)} ms, max ${Math.max(0, ...releases).toFixed(1)} ms; ${all.held} attacks held by the gate`,
  );
  const reverts = transitions.filter((t) => t.type === 'revert').length;
  const revertedAlerts = world.seen.alerts.filter((x) => x.alert.rule_id === 'coordinator:agent-reverted').length;
  const rebaselines = world.seen.commands.filter((x) => x.c.kind === 'rebaseline').length;
  console.log(
    `revert: ${reverts} reverts, ${revertedAlerts} reverted alerts, ${rebaselines} rebaseline commands (the agent's state dir back to an earlier cycle's copy)`,
  );
  if (failures.length) console.log(`not reached in time: ${failures.join('; ')}`);
  const byType = Object.fromEntries(
    [...rows]
      .filter(([k]) => k !== 'all')
      .map(([k, r]) => [
        k,
        {
          transitions: r.transitions,
          attacks: r.sent,
          missed: r.missed,
          doubled: r.doubled,
          gap_p50_ms: Math.round(percentile(r.gaps, 50)),
          gap_p99_ms: Math.round(percentile(r.gaps, 99)),
        },
      ]),
  );
  console.log(
    JSON.stringify({
      bench: 'gap',
      agent_clock_ms: Number(args['agent-clock']),
      transitions: transitions.length,
      attacks: all.sent,
      missed: all.missed,
      doubled: all.doubled,
      gap_p50_ms: Math.round(percentile(all.gaps, 50)),
      gap_p99_ms: Math.round(percentile(all.gaps, 99)),
      by_type: byType,
      gate_release_p50_ms: Math.round(percentile(releases, 50)),
      gate_release_p99_ms: Math.round(percentile(releases, 99)),
    }),
  );
} finally {
  for (const m of monitors) m.kill('SIGTERM');
  await world.stop();
  if (args.keep) console.error(`kept ${dir}`);
  else rmSync(dir, { recursive: true, force: true });
}
