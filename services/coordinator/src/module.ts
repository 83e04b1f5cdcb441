import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { partitionForKey, type ConsumedRecord, type ProduceRecord } from '@cordon/bus';
import { describeError } from '@cordon/runtime';
import { PolicyView } from '@cordon/policy';
import { RecordChecker, defineStage, PRODUCER_HEADER, SIGNATURE_HEADER, type Stage } from '@cordon/stage';
import {
  alertId,
  codecFor,
  NO_FLOW,
  TOPICS,
  watchdogEnforcer,
  watchdogSensor,
  type AgentRecord,
  type AlertInput,
  type Assignment,
  type ProducerKey,
  type StageState,
  type VmEvent,
} from '@cordon/schemas';
import { ClockOffsets } from './clock.js';
import {
  changed,
  CLOCK_SAMPLES_TO_JUDGE,
  againstHostUs,
  decide,
  heardUs,
  versionAtLeast,
  type AgentState,
  type Coordination,
  type Desired,
  type VmState,
} from './decide.js';
import { ERR_COORDINATOR_BINDING, ERR_COORDINATOR_SECRET } from './errors.js';
import {
  AgentTrust,
  WatchdogTrust,
  type Binding,
  type HostBinding,
  type Revocation,
  type TrustEffects,
  type WatchdogEffects,
} from './trust.js';

const STAGE = 'coordinator';
export const TOKEN_HEADER = 'cordon-enroll-token';
export const bindingKey = (agent: string): string => `${STAGE}|agent|${agent}`;
export const hostBindingKey = (host: string): string => `${STAGE}|watchdog|${host}`;

export const coordinatorConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-coordinator'),
    /** The policy whose coordination settings apply. */
    policyId: z.string().min(1).default('default'),
    /** How often owned VMs are looked at again (silent agents are noticed within this). */
    tickMs: z.number().int().min(10).max(10_000).default(100),
    /**
     * When the inventory shows a running VM on another host, wait this long for the platform's
     * event of the migration: its time (the switchover) is the hand-off's boundary, not when
     * the new placement was read. Frames meanwhile are held by the destination's watchdog.
     */
    migrationWaitMs: z.number().int().min(0).max(60_000).default(1000),
    /** A file with the enrollment secret in hex (64+ digits); else CORDON_ENROLL_SECRET, else <data dir>/secrets/enroll.key (made when missing). */
    enrollSecretFile: z.string().min(1).optional(),
  })
  .strict();

export type CoordinatorConfig = z.infer<typeof coordinatorConfigSchema>;

const DEFAULT_COORDINATION: Coordination & { heartbeatIntervalMs: number } = {
  heartbeatIntervalMs: 1000,
  heartbeatTimeoutMs: 5000,
  requiredAgentVersion: '0.1.0',
  handoffDelayMs: 300,
  gate: false,
  maxClockOffsetMs: 50,
};

function loadSecret(config: CoordinatorConfig, dataDir: string, env: NodeJS.ProcessEnv): Buffer | null {
  const fromHex = (hex: string, where: string) => {
    const h = hex.trim();
    if (!/^([0-9a-fA-F]{2}){32,}$/.test(h) || /^0+$/.test(h))
      throw ERR_COORDINATOR_SECRET(`${where} is not 64 or more hex digits (an even number, not all zero)`);
    return Buffer.from(h, 'hex');
  };
  if (config.enrollSecretFile) return fromHex(readFileSync(config.enrollSecretFile, 'utf8'), config.enrollSecretFile);
  if (env.CORDON_ENROLL_SECRET) return fromHex(env.CORDON_ENROLL_SECRET, 'CORDON_ENROLL_SECRET');
  // the data dir's key, as `cordon agents token` makes it: made here when missing, so the tokens
  // made on this data dir later verify
  const file = join(dataDir, 'secrets', 'enroll.key');
  if (!existsSync(file)) {
    try {
      mkdirSync(join(dataDir, 'secrets'), { recursive: true, mode: 0o700 });
      writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') return null;
    }
  }
  return fromHex(readFileSync(file, 'utf8'), file);
}

/**
 * The coordinator: every running VM protected by exactly one of its host's watchdog or its
 * agent. It follows the inventory (where each VM runs, its power), the agents' heartbeats
 * (judged by AgentTrust), the policy (coordination settings) and its own assignments, and
 * writes `assignments` (compacted, per VM: mode, host, agent, enforcer, the hand-off's time
 * boundary, an epoch) whenever who protects a VM changes, plus `agent-commands` and alerts.
 *
 * Several instances may run: each decides only for the VMs whose key falls in the partitions
 * of `vm-events` it owns in the consumer group, so exactly one decides for any VM, and a
 * survivor takes the partitions of one that died. All its state is on topics (assignments,
 * the enrollment bindings on the state topic): a new owner reads it and goes on from there.
 */
export const coordinatorStage = defineStage({
  name: STAGE,
  summary: 'assignments: every running VM protected by exactly one of its watchdog or its agent',
  config: coordinatorConfigSchema,
  inputs: (c) => [{ group: c.groupId, topic: TOPICS.vmEvents }],
  outputs: () => [TOPICS.assignments, TOPICS.agentCommands, TOPICS.alerts, TOPICS.state, TOPICS.dlq, TOPICS.producers],
  reads: () => [TOPICS.state, TOPICS.policy, TOPICS.inventory, TOPICS.assignments, TOPICS.agents, TOPICS.producers],
  start: (stage) => startCoordinator(stage),
});

interface Known {
  vms: Map<string, VmState>;
  /** Per agent incarnation (`<agent>|<incarnation>`): an agent's restarts and clones are told apart. */
  agents: Map<string, AgentState>;
  assignments: Map<string, Assignment>;
  /** VMs seen on a new host whose migration event has not come yet: until when it is waited for (µs). */
  moving: Map<string, number>;
}

async function startCoordinator(stage: Stage<CoordinatorConfig>) {
  const { config, ctx, bus } = stage;
  const { log, metrics, clock } = ctx;
  const nowUs = () => clock.now() * 1000;
  const secret = loadSecret(config, stage.env.dataDir, process.env);
  const trust = new AgentTrust(secret);
  const hosts = new WatchdogTrust(secret);
  if (!trust.canVerify) log.warn('No enrollment secret: no agent can be verified, so the watchdogs protect every VM.');
  const known: Known = { vms: new Map(), agents: new Map(), assignments: new Map(), moving: new Map() };
  // senders' clocks against this coordinator's (agents by `id|incarnation`, watchdogs by `watchdog:<host>`)
  const clocks = new ClockOffsets();
  /** Agent incarnations whose clock is further off than coordination.maxClockOffsetMs. */
  const clockOff = new Set<string>();
  const clockAlerts = new Map<string, number>();
  /** Records handled closer together than half a heartbeat interval are one moment of measuring a clock. */
  const momentGapUs = (): number => (coordination().heartbeatIntervalMs * 1000) / 2;
  /** Its host's watchdog's clock less this coordinator's (µs), if measured. */
  const hostClockUs = (host: string | null | undefined): number | null =>
    host ? clocks.get(watchdogSensor(host)) : null;
  /**
   * Say so when an agent's clock goes further off than the limit (from its host's watchdog's,
   * as decide measures it, else the coordinator's), and when it comes back.
   */
  async function noteClock(agent: string, vm: string, key: string, offsetUs: number, owner: boolean): Promise<void> {
    const limitMs = coordination().maxClockOffsetMs;
    const host = known.vms.get(vm)?.host;
    const hostUs = hostClockUs(host);
    const offMs = Math.round(againstHostUs(offsetUs, hostUs) / 1000);
    const off = Math.abs(offMs) > limitMs;
    if (off === clockOff.has(key)) return;
    const against = hostUs === null ? 'coordinator' : watchdogSensor(host!);
    if (off) {
      clockOff.add(key);
      log.warn(
        { agent, vm, offsetMs: offMs, against, limitMs },
        "An agent's clock is off: it does not protect its VM's traffic until it is back within the limit (synchronize the guest's clock: NTP, or the hypervisor's time sync).",
      );
      // one alert each time it goes off, from the VM's owner (a SIEM sees it beside the rest)
      if (owner) {
        const n = (clockAlerts.get(key) ?? 0) + 1;
        clockAlerts.set(key, n);
        const alert: AlertInput = {
          alert_id: alertId(STAGE, 'clock-off', key, String(n), String(nowUs())),
          ts_us: nowUs(),
          stage: STAGE,
          vm,
          sensor: `agent:${agent}`,
          rule_id: 'coordinator:agent-clock-off',
          rule_rev: 1,
          signature: `Agent clock ${Math.abs(offMs)} ms ${offMs > 0 ? 'ahead of' : 'behind'} ${against}: the watchdog protects the VM instead`,
          severity: 3,
          category: 'sensor-health',
          action: 'alert',
          ...NO_FLOW,
          evidence: JSON.stringify({ agent, offset_ms: offMs, against, limit_ms: limitMs }),
        };
        await stage.send(TOPICS.alerts, [{ key: Buffer.from(vm), value: codec.alerts.encode(alert) }]);
      }
    } else {
      clockOff.delete(key);
      log.info({ agent, vm, offsetMs: offMs, against, limitMs }, "An agent's clock is back within the limit.");
    }
    metrics.set('agents_clock_off', clockOff.size);
  }
  const policy = new PolicyView();
  const codec = {
    inventory: codecFor(TOPICS.inventory),
    agents: codecFor(TOPICS.agents),
    assignments: codecFor(TOPICS.assignments),
    commands: codecFor(TOPICS.agentCommands),
    alerts: codecFor(TOPICS.alerts),
    state: codecFor(TOPICS.state),
    producers: codecFor(TOPICS.producers),
  };
  const owned = new Set<number>();
  const topicInfo = (await bus.admin.listTopics()).find((t) => t.name === TOPICS.vmEvents);
  const partitions = topicInfo?.partitions ?? 1;
  const mine = (vm: string) => owned.has(partitionForKey(Buffer.from(vm), partitions, () => 0));
  /** Effects already carried out (alert and command keys), so a heartbeat repeating does not repeat them. */
  const done = new Set<string>();
  /** Per agent, the public key this instance published on the producers topic. */
  const published = new Map<string, string>();

  const coordination = (): Coordination & { heartbeatIntervalMs: number } => ({
    ...DEFAULT_COORDINATION,
    ...(policy.policies.get(config.policyId)?.doc.coordination ?? {}),
  });
  const policyVersion = () => policy.policies.get(config.policyId)?.version ?? 0;
  const gateFor = (vm: string) => policy.policies.get(config.policyId)?.doc.vms[vm]?.gate ?? coordination().gate;

  // ---- what is known: enrollment bindings, policy, inventory, assignments, then heartbeats
  await stage.follow(TOPICS.state, (r) => {
    const k = r.key?.toString() ?? '';
    if (k.startsWith(`${STAGE}|watchdog|`) && r.value) {
      try {
        const b = JSON.parse(codec.state.decode(r.value).state.toString('utf8')) as HostBinding;
        // first key wins: a later record never replaces a host's key
        if (!hosts.bindings.has(b.host)) hosts.bindings.set(b.host, b);
      } catch (err) {
        log.warn(
          { err: ERR_COORDINATOR_BINDING.withCause(err, k, describeError(err).message) },
          "A host's enrollment binding is unreadable; that host's watchdog must enroll again.",
        );
      }
      return;
    }
    if (!k.startsWith(`${STAGE}|agent|`) || !r.value) return;
    const agent = k.slice(`${STAGE}|agent|`.length);
    try {
      const b = JSON.parse(codec.state.decode(r.value).state.toString('utf8')) as Binding;
      const have = trust.bindings.get(agent);
      if (!have || b.maxGeneration >= have.maxGeneration) trust.bindings.set(agent, b);
    } catch (err) {
      log.warn(
        { err: ERR_COORDINATOR_BINDING.withCause(err, agent, describeError(err).message) },
        'An enrollment binding is unreadable; that agent must enroll again.',
      );
    }
  });
  await stage.follow(TOPICS.policy, async (r, restoring) => {
    const k = r.key?.toString() ?? '';
    const agent = k.startsWith('agent:') ? k.slice('agent:'.length) : null;
    const wasRevoked = agent !== null && policy.revokedAgents.has(agent);
    try {
      policy.apply(r.key, r.value);
    } catch (err) {
      log.warn({ err: describeError(err) }, 'A policy record is unusable; it was skipped.');
    }
    if (agent === null || restoring) return;
    const revocation = policy.revokedAgents.get(agent);
    if (revocation && !wasRevoked) await onRevoked(agent, revocation);
    // lifted: its next heartbeat is judged afresh, and its key registered again by the VM's owner
    if (!revocation && wasRevoked) {
      published.delete(agent);
      done.delete(`withdrawn|${agent}`);
    }
  });
  await stage.follow(TOPICS.inventory, (r, restoring) => {
    const k = r.key?.toString() ?? '';
    if (!k.startsWith('vm:')) return;
    const id = k.slice(3);
    if (!r.value) {
      known.vms.delete(id);
      if (!restoring) evaluate(id);
      return;
    }
    try {
      const rec = codec.inventory.decode(r.value);
      const before = known.vms.get(id);
      const moved = !!before && before.host !== rec.host;
      known.vms.set(id, {
        id,
        host: rec.host,
        power: rec.power,
        hostSinceUs: moved ? rec.updated_us : (before?.hostSinceUs ?? rec.updated_us),
      });
      // a running VM on another host: its migration event carries when it moved
      if (
        moved &&
        !restoring &&
        before.host !== null &&
        rec.host !== null &&
        rec.power === 'on' &&
        config.migrationWaitMs > 0
      )
        known.moving.set(id, nowUs() + config.migrationWaitMs * 1000);
      if (!restoring) evaluate(id);
    } catch (err) {
      log.warn({ err: describeError(err), key: k }, 'An inventory record is unusable; it was skipped.');
    }
  });
  await stage.follow(TOPICS.assignments, (r) => {
    const vm = r.key?.toString() ?? '';
    if (!r.value) known.assignments.delete(vm);
    else {
      try {
        const a = codec.assignments.decode(r.value);
        const have = known.assignments.get(vm);
        if (!have || a.epoch >= have.epoch) known.assignments.set(vm, a);
      } catch (err) {
        log.warn({ err: describeError(err), vm }, 'An assignment record is unusable; it was skipped.');
      }
    }
  });
  await stage.follow(TOPICS.agents, async (r, restoring) => onAgentRecord(r, restoring));

  async function onAgentRecord(r: ConsumedRecord, restoring: boolean): Promise<void> {
    if (!r.value) {
      const agent = r.key?.toString() ?? '';
      for (const [k, a] of known.agents) if (a.id === agent) known.agents.delete(k);
      return;
    }
    let rec: AgentRecord;
    try {
      rec = codec.agents.decode(r.value);
    } catch (err) {
      metrics.inc('agent_records_bad');
      if (!restoring) await stage.send(TOPICS.dlq, [stage.deadLetter(r, r, err)]);
      return;
    }
    const token = r.headers[TOKEN_HEADER]?.toString() ?? null;
    const producer = r.headers[PRODUCER_HEADER]?.toString();
    const signedBy = (pub: Buffer): boolean => {
      if (producer !== rec.agent || !r.headers[SIGNATURE_HEADER]) return false;
      try {
        // the native check refuses a weak key, which OpenSSL would let anyone sign for
        return new RecordChecker(pub).check(producer, [r])[0]!;
      } catch {
        return false;
      }
    };
    if (rec.kind === 'watchdog') {
      // its host's clock, which the hand-offs of its VMs meet (measured by every instance: the
      // owner of a VM may not own its host): the bound watchdog's records, or any while the host
      // has none (an unenrolled watchdog, whose packets count unsigned too). Agents are compared
      // with it, not with this coordinator, so a coordinator slowed for a whole window (every
      // record late) shifts both estimates alike instead of making every agent look behind.
      const hostKey = rec.host ? hosts.bindings.get(rec.host)?.publicKey : undefined;
      if (!restoring && rec.host && (hostKey === undefined || signedBy(Buffer.from(hostKey, 'base64'))))
        clocks.add(watchdogSensor(rec.host), rec.heartbeat_us, nowUs(), momentGapUs());
      // a watchdog's status is not an agent's; only its signing key is the coordinator's
      // business, decided by the owner of the host's partition
      if (restoring || !mine(rec.host ?? '')) return;
      // revoked (a compromised host): its key stays withdrawn, whatever it presents
      const revoked = policy.revokedAgents.get(rec.agent);
      if (revoked) {
        await onRevoked(rec.agent, revoked);
        return;
      }
      const { effects } = hosts.judge(rec, token, clock.now(), signedBy);
      const bound = hosts.bindings.get(rec.host ?? '');
      if (
        !effects.binding &&
        bound &&
        published.get(rec.agent) !== bound.publicKey &&
        signedBy(Buffer.from(bound.publicKey, 'base64'))
      ) {
        // bound before this instance owned the host (or before a restart): published by the owner
        effects.binding = bound;
      }
      await carryOutWatchdog(rec, effects);
      return;
    }
    const revocation = policy.revokedAgents.get(rec.agent);
    const { verdict, effects } = trust.judge(rec, token, clock.now(), signedBy, revocation);
    const incarnation = verdict.identity?.incarnation ?? '?';
    const key = `${rec.agent}|${incarnation}`;
    const before = known.agents.get(key);
    // its clock against ours, from heartbeats handled as they come (not those read back at start)
    const clockOffsetUs =
      restoring || !verdict.trusted ? clocks.get(key) : clocks.add(key, rec.heartbeat_us, nowUs(), momentGapUs());
    // said (and alerted) only once measured at enough moments: a reader catching up makes clocks look behind
    if (!restoring && clockOffsetUs !== null && clocks.samples(key) >= CLOCK_SAMPLES_TO_JUDGE)
      await noteClock(rec.agent, rec.vm, key, clockOffsetUs, mine(rec.vm));
    const frames = rec.capture?.frames ?? 0;
    const moved = before?.capture && frames > before.capture.frames;
    known.agents.set(key, {
      id: rec.agent,
      vm: rec.vm,
      incarnation,
      hw: verdict.identity?.hw ?? '',
      verdict,
      version: rec.version,
      policyVersion: rec.policy_version,
      heartbeatUs: rec.heartbeat_us,
      firstSeenUs: before?.firstSeenUs ?? rec.heartbeat_us,
      status: rec.status,
      capture: rec.capture,
      inspectingUs: moved ? rec.heartbeat_us : (before?.inspectingUs ?? 0),
      clockOffsetUs,
      clockSamples: clocks.samples(key),
    });
    // a key bound while this instance did not own the VM (or before a restart) is published by the owner
    const bound = trust.bindings.get(rec.agent);
    if (!restoring && !revocation && mine(rec.vm) && bound?.publicKey && published.get(rec.agent) !== bound.publicKey) {
      effects.binding = bound;
      effects.keyRegistered = true;
    }
    // a revocation that came while no instance owned the VM (or before a restart) is carried
    // out by the owner when the revoked agent speaks: its key withdrawn, once per instance
    if (!restoring && revocation && mine(rec.vm)) await withdrawKey(rec.agent, { vm: rec.vm });
    if (!restoring && mine(rec.vm)) await carryOut(rec, effects);
    else if (effects.binding) trust.bindings.set(rec.agent, effects.binding);
    if (!restoring && mine(rec.vm)) {
      await commandIfStale(rec, known.agents.get(key)!);
      evaluate(rec.vm);
    }
  }

  /**
   * The manager revoked an agent: its VM's owner withdraws the agent's signing key (a tombstone
   * on the producers topic, so every stage refuses its records from now on), raises an alert,
   * and hands the VM to its watchdog at once rather than at the agent's next heartbeat.
   */
  async function onRevoked(agent: string, revocation: Revocation): Promise<void> {
    if (agent.startsWith('watchdog:')) return onWatchdogRevoked(agent, revocation);
    const vms = new Set<string>();
    const bound = trust.bindings.get(agent);
    if (bound) vms.add(bound.vm);
    for (const a of known.agents.values()) {
      if (a.id !== agent) continue;
      vms.add(a.vm);
      a.verdict = {
        trusted: false,
        distrust: 'revoked',
        detail: `revoked by the manager${revocation.reason ? `: ${revocation.reason}` : ''}`,
        identity: a.verdict.identity,
      };
    }
    for (const vm of vms) {
      if (!mine(vm)) continue;
      await withdrawKey(agent, { vm });
      const key = `revoked|${agent}|${revocation.atUs}`;
      if (!done.has(key)) {
        done.add(key);
        await sendRevoked(key, vm, `agent:${agent}`, 'agent', revocation, {
          signature: `Agent ${agent} was revoked: its VM goes to the watchdog and its records are refused`,
          evidence: { agent, vm },
        });
      }
      evaluate(vm);
    }
  }

  /**
   * A watchdog revoked (`agent:watchdog:<host>` on the policy topic: its host is compromised):
   * the owner of the host's partition withdraws its key — every stage then refuses what it signs
   * (packets, block status, alerts) as forged — and raises one alert. Its heartbeats register
   * nothing until the revocation is lifted, which registers the host's bound key again.
   */
  async function onWatchdogRevoked(watchdog: string, revocation: Revocation): Promise<void> {
    const host = watchdog.slice('watchdog:'.length);
    if (!host || !mine(host)) return;
    await withdrawKey(watchdog, { host });
    const key = `revoked|${watchdog}|${revocation.atUs}`;
    if (done.has(key)) return;
    done.add(key);
    await sendRevoked(key, null, watchdog, 'watchdog', revocation, {
      signature: `Watchdog ${watchdog} was revoked: its packets, block reports and alerts are refused`,
      evidence: { watchdog, host },
      partitionKey: host,
    });
  }

  /** The one alert of a revocation (no addresses: it can never become a block). */
  async function sendRevoked(
    key: string,
    vm: string | null,
    sensor: string,
    kind: 'agent' | 'watchdog',
    revocation: Revocation,
    o: { signature: string; evidence: Record<string, unknown>; partitionKey?: string },
  ): Promise<void> {
    const detail = `revoked by the manager${revocation.reason ? `: ${revocation.reason}` : ''}`;
    const alert: AlertInput = {
      alert_id: alertId(STAGE, key),
      ts_us: nowUs(),
      stage: STAGE,
      vm,
      sensor,
      rule_id: `coordinator:${kind}-revoked`,
      rule_rev: 1,
      signature: o.signature,
      severity: 3,
      category: 'agent-trust',
      action: 'alert',
      ...NO_FLOW,
      evidence: JSON.stringify({ ...o.evidence, detail, revoked_us: revocation.atUs }),
    };
    const k = o.partitionKey ?? vm ?? sensor;
    await stage.send(TOPICS.alerts, [{ key: Buffer.from(k), value: codec.alerts.encode(alert) }]);
  }

  async function withdrawKey(producer: string, boundTo: { vm: string } | { host: string }): Promise<void> {
    const key = `withdrawn|${producer}`;
    if (done.has(key)) return;
    done.add(key);
    await stage.send(TOPICS.producers, [{ key: Buffer.from(producer), value: null }]);
    published.delete(producer);
    metrics.inc('producer_keys_withdrawn');
    log.warn(
      { producer, ...boundTo },
      "A revoked producer's signing key was withdrawn; its records are refused from now on.",
    );
  }

  async function carryOut(rec: AgentRecord, effects: TrustEffects): Promise<void> {
    if (effects.binding) {
      const st: StageState = {
        stage: STAGE,
        input_topic: TOPICS.agents,
        input_partition: 0,
        input_offset: 0,
        ts_us: nowUs(),
        state: Buffer.from(JSON.stringify(effects.binding)),
        output_offsets: {},
        emitted_ids: [],
      };
      await stage.send(TOPICS.state, [{ key: Buffer.from(bindingKey(rec.agent)), value: codec.state.encode(st) }]);
      // the stages check the agent's records against this (before its `enrolled` verdict goes out)
      if (effects.keyRegistered && effects.binding.publicKey) {
        const pk: ProducerKey = {
          producer: rec.agent,
          kind: 'agent',
          vm: effects.binding.vm,
          host: null,
          public_key: Buffer.from(effects.binding.publicKey, 'base64'),
          registered_us: nowUs(),
          registered_by: `enroll-token:${effects.binding.tokenId ?? '?'}`,
        };
        await stage.send(TOPICS.producers, [{ key: Buffer.from(rec.agent), value: codec.producers.encode(pk) }]);
        published.set(rec.agent, effects.binding.publicKey);
        metrics.inc('producer_keys_registered');
        log.info({ agent: rec.agent, vm: pk.vm }, "An agent's signing key was registered.");
      }
    }
    const alerts: ProduceRecord[] = [];
    for (const a of effects.alerts) {
      if (done.has(a.key)) continue;
      done.add(a.key);
      alerts.push({
        key: Buffer.from(rec.vm),
        value: codec.alerts.encode(alertOf(rec, a.rule, a.severity, a.signature, a.detail, a.key)),
      });
      log.warn({ agent: rec.agent, vm: rec.vm, rule: a.rule, detail: a.detail }, a.signature);
    }
    await stage.send(TOPICS.alerts, alerts);
    for (const c of effects.commands) await command(rec.agent, c.kind, c.args, c.key);
  }

  async function carryOutWatchdog(rec: AgentRecord, effects: WatchdogEffects): Promise<void> {
    const host = rec.host ?? '';
    if (effects.binding) {
      const b = effects.binding;
      const st: StageState = {
        stage: STAGE,
        input_topic: TOPICS.agents,
        input_partition: 0,
        input_offset: 0,
        ts_us: nowUs(),
        state: Buffer.from(JSON.stringify(b)),
        output_offsets: {},
        emitted_ids: [],
      };
      await stage.send(TOPICS.state, [{ key: Buffer.from(hostBindingKey(host)), value: codec.state.encode(st) }]);
      const pk: ProducerKey = {
        producer: watchdogEnforcer(host),
        kind: 'watchdog',
        vm: null,
        host,
        public_key: Buffer.from(b.publicKey, 'base64'),
        registered_us: nowUs(),
        registered_by: `host-token:${b.tokenId}`,
      };
      await stage.send(TOPICS.producers, [{ key: Buffer.from(pk.producer), value: codec.producers.encode(pk) }]);
      published.set(pk.producer, b.publicKey);
      metrics.inc('producer_keys_registered');
      log.info({ host }, "A watchdog's signing key was registered.");
    }
    const alerts: ProduceRecord[] = [];
    for (const a of effects.alerts) {
      if (done.has(a.key)) continue;
      done.add(a.key);
      const alert: AlertInput = {
        alert_id: alertId(STAGE, a.key),
        ts_us: nowUs(),
        stage: STAGE,
        vm: null,
        sensor: `claimed:${watchdogEnforcer(host)}`,
        rule_id: `coordinator:watchdog-${a.rule}`,
        rule_rev: 1,
        signature: a.signature,
        severity: a.severity,
        category: 'agent-trust',
        action: 'alert',
        ...NO_FLOW,
        evidence: JSON.stringify({
          watchdog: rec.agent,
          claimed_host: host,
          detail: a.detail,
          heartbeat_us: rec.heartbeat_us,
        }),
      };
      alerts.push({ key: Buffer.from(host), value: codec.alerts.encode(alert) });
      log.warn({ host, rule: a.rule, detail: a.detail }, a.signature);
    }
    await stage.send(TOPICS.alerts, alerts);
  }

  function alertOf(
    rec: AgentRecord,
    rule: string,
    severity: number,
    signature: string,
    detail: string,
    key: string,
  ): AlertInput {
    return {
      alert_id: alertId(STAGE, key),
      ts_us: nowUs(),
      stage: STAGE,
      vm: rec.vm,
      sensor: `agent:${rec.agent}`,
      rule_id: `coordinator:agent-${rule}`,
      rule_rev: 1,
      signature,
      severity,
      category: 'agent-trust',
      action: 'alert',
      ...NO_FLOW,
      evidence: JSON.stringify({
        agent: rec.agent,
        claimed_vm: rec.vm,
        detail,
        identity: rec.identity,
        heartbeat_us: rec.heartbeat_us,
      }),
    };
  }

  async function command(
    agent: string,
    kind: 'upgrade' | 'reconfigure' | 'rescan' | 'rebaseline' | 'reenroll' | 'enrolled',
    args: Record<string, string>,
    key: string,
  ): Promise<void> {
    if (done.has(key)) return;
    done.add(key);
    await stage.send(TOPICS.agentCommands, [
      {
        key: Buffer.from(agent),
        value: codec.commands.encode({
          command_id: alertId(STAGE, 'command', key),
          agent,
          kind,
          args,
          issued_us: nowUs(),
        }),
      },
    ]);
    metrics.inc(`commands_${kind}`);
    log.info({ agent, command: kind, args }, 'Agent command sent.');
  }

  /** A trusted, live agent that is behind is told to catch up (it does not protect its VM meanwhile). */
  async function commandIfStale(rec: AgentRecord, a: AgentState): Promise<void> {
    if (!a.verdict.trusted || rec.status === 'stopping') return;
    const c = coordination();
    if ((nowUs() - heardUs(a)) / 1000 > c.heartbeatTimeoutMs) return;
    if (!versionAtLeast(rec.version, c.requiredAgentVersion))
      await command(
        rec.agent,
        'upgrade',
        { to: c.requiredAgentVersion },
        `upgrade|${rec.agent}|${rec.version}|${c.requiredAgentVersion}`,
      );
    else if (rec.policy_version < policyVersion())
      await command(
        rec.agent,
        'reconfigure',
        { policy_version: String(policyVersion()) },
        `reconfigure|${rec.agent}|${policyVersion()}`,
      );
  }

  // ---- deciding: on every change of an owned VM's inputs, and on every tick (silences)
  /** When the partitions owned now were taken: the agents' heartbeats since then are known. */
  let ownedSinceUs = nowUs();
  const pending = new Set<string>();
  let flushing: Promise<void> | null = null;
  function evaluate(vm: string): void {
    if (!mine(vm)) return;
    pending.add(vm);
    flushing ??= Promise.resolve()
      .then(flush)
      .catch((err: unknown) =>
        log.error({ err: describeError(err) }, 'Assignments could not be written; the next tick tries again.'),
      )
      .finally(() => {
        flushing = null;
      });
  }

  async function flush(): Promise<void> {
    while (pending.size) {
      const vms = [...pending];
      pending.clear();
      const out: ProduceRecord[] = [];
      const now = nowUs();
      const c = coordination();
      const pv = policyVersion();
      for (const vm of vms) {
        const cur = known.assignments.get(vm);
        const inv = known.vms.get(vm);
        const wait = known.moving.get(vm);
        if (wait !== undefined && now < wait) continue; // the tick looks again
        known.moving.delete(vm);
        if (!inv) {
          if (cur) {
            out.push({ key: Buffer.from(vm), value: null });
            known.assignments.delete(vm);
          }
          continue;
        }
        const agents = [...known.agents.values()].filter((a) => a.vm === vm);
        const d: Desired = decide(
          {
            ...inv,
            hostClockOffsetUs: hostClockUs(inv.host),
            hostClockSamples: inv.host ? clocks.samples(watchdogSensor(inv.host)) : 0,
          },
          agents,
          cur,
          { ...c, gate: gateFor(vm), learningUntilUs: ownedSinceUs + c.heartbeatTimeoutMs * 1000 },
          pv,
          now,
        );
        if (!changed(cur, d)) continue;
        const next: Assignment = {
          vm,
          mode: d.mode,
          host: d.host,
          agent: d.agent,
          incarnation: d.incarnation,
          policy_version: pv,
          reason: d.reason,
          since_us: now,
          enforcer: d.enforcer,
          handoff_us: d.handoffUs,
          epoch: (cur?.epoch ?? 0) + 1,
          gated: d.gated,
          recovery_of: d.recovery?.of ?? null,
          recovery_from_us: d.recovery?.fromUs ?? 0,
          clock_offset_us: d.clockOffsetUs,
        };
        known.assignments.set(vm, next);
        out.push({ key: Buffer.from(vm), value: codec.assignments.encode(next) });
        metrics.inc(`assignments_${d.mode}`);
        log.info(
          {
            vm,
            mode: d.mode,
            host: d.host,
            agent: d.agent,
            incarnation: d.incarnation,
            epoch: next.epoch,
            handoffUs: d.handoffUs,
            recovery: d.recovery ?? null,
            reason: d.reason,
          },
          'Assignment changed.',
        );
      }
      await stage.send(TOPICS.assignments, out);
    }
  }

  stage.consume<VmEvent>({
    group: config.groupId,
    topics: [TOPICS.vmEvents],
    onAssign(tps) {
      for (const tp of tps) owned.add(tp.partition);
      ownedSinceUs = nowUs();
      for (const vm of known.vms.keys()) evaluate(vm);
      for (const vm of known.assignments.keys()) evaluate(vm);
      log.info({ partitions: [...owned].sort((a, b) => a - b) }, 'Coordinating the VMs of these partitions.');
    },
    onRevoke(tps) {
      for (const tp of tps) owned.delete(tp.partition);
    },
    async handle(batch) {
      for (const { value: ev } of batch.records) {
        const vm = known.vms.get(ev.vm);
        // the event's time is the platform's: a migration's boundary is when it happened
        if (vm && ev.kind === 'migrated' && ev.host && vm.host !== ev.host)
          known.vms.set(ev.vm, { ...vm, host: ev.host, hostSinceUs: ev.ts_us });
        else if (vm && ev.kind === 'migrated') known.vms.set(ev.vm, { ...vm, hostSinceUs: ev.ts_us });
        if (ev.kind === 'migrated') known.moving.delete(ev.vm);
        evaluate(ev.vm);
      }
      await flushing;
    },
  });
  stage.every(config.tickMs, 'Looking at the owned VMs', async () => {
    forgetGone();
    for (const vm of new Set([...known.vms.keys(), ...known.assignments.keys()])) evaluate(vm);
    await flushing;
  });

  /** Incarnations silent for long (restarted, stopped, clones gone) that no assignment names are forgotten. */
  function forgetGone(): void {
    const oldUs = nowUs() - Math.max(60_000, 10 * coordination().heartbeatTimeoutMs) * 1000;
    for (const [k, a] of known.agents) {
      if (heardUs(a) >= oldUs) continue;
      const cur = known.assignments.get(a.vm);
      if (
        cur?.mode === 'agent' &&
        cur.agent === a.id &&
        (cur.incarnation === null || cur.incarnation === a.incarnation)
      )
        continue;
      known.agents.delete(k);
      clocks.forget(k);
      clockOff.delete(k);
      clockAlerts.delete(k);
    }
  }
  stage.onStop(async () => {
    await flushing;
  });
  return { known, trust, owned };
}
