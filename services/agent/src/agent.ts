import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { clockOffsetUs, describeError } from '@cordon/runtime';
import { followBlocks } from '@cordon/enforce';
import { createRecordSigner, defineStage, type Stage } from '@cordon/stage';
import {
  agentEnforcer,
  agentSensor,
  codecFor,
  TOPICS,
  type AgentCommand,
  type AgentRecord,
  type Assignment,
  type LogBatch,
} from '@cordon/schemas';
import { ProtectionWindows, startSensorCapture, type SensorCapture, type SensorFrame } from '@cordon/sensor';
import { createFimWatcher, type FimWatcher } from '@cordon/fim-scan';
import { agentPolicyFor, assembleRuleset, PolicyView, type AgentPolicy } from '@cordon/policy';
import { agentConfigSchema, isBelowAny, type AgentConfig } from './config.js';
import { ERR_AGENT_POLICY_REFUSED } from './errors.js';
import { NftEnforcer } from './enforce.js';
import { adoptGeneration, checkpointGeneration, startIdentity, type AgentIdentity } from './identity.js';
import { loadSigningKey } from './signing-key.js';
import { readState, writeState } from './state.js';
import { LogTailer } from './logtail.js';
import { AgentMalware } from './malware.js';
import { collectNetSnapshot } from './netconf.js';
import { ProcessMonitor } from './procmon.js';
import { agentIdFor, readEnrollToken } from './token.js';

export const AGENT_VERSION = '0.1.0';

/** The heartbeat's process monitoring part when it does not run. */
const PROCESSES_OFF = {
  mode: 'off',
  events: 0,
  published: 0,
  excluded: 0,
  dropped: 0,
  dropped_queue: 0,
  dropped_kernel: 0,
  incomplete: 0,
  table_size: 0,
} as const;

export interface AgentHandle {
  readonly agentId: string;
  readonly vm: string;
  readonly identity: AgentIdentity;
  readonly enforcer: NftEnforcer | null;
  /** The file integrity watcher now (replaced when the policy changes it). */
  readonly fim: FimWatcher | null;
  /** Anti-malware scanning now (replaced when the policy changes it). */
  readonly malware: AgentMalware | null;
  /** What the agent watches now: its file's settings with the policy's over them. */
  readonly watching: Watching;
  /** Of `watching` and enforcement, as the heartbeats report it. */
  readonly configHash: string;
  /** The process monitor now (null while the policy leaves it off). */
  readonly processes: ProcessMonitor | null;
}

/** The parts of the agent's configuration the policy topic may set (see @cordon/policy's agentPolicySchema). */
export type Watching = Pick<AgentConfig, 'logs' | 'logStartAt' | 'fim' | 'netconf' | 'processes' | 'malware'>;

/**
 * The agent file's settings with the policy's fields over them, within the file's limits: a
 * log or file integrity path outside `logRoots` / `fimRoots` is dropped (and named in
 * `refused`), and hashing threads are cut to `fimMaxHashThreads`. Whoever can write the policy
 * topic can change what the agent watches, not make it read anything on the machine.
 */
export function watchingFor(config: AgentConfig, policy: AgentPolicy | null, refused: string[] = []): Watching {
  const own: Watching = {
    logs: config.logs,
    logStartAt: config.logStartAt,
    fim: config.fim,
    netconf: config.netconf,
    processes: config.processes,
    malware: config.malware,
  };
  if (!policy) return own;
  const set = Object.fromEntries(Object.entries(policy).filter(([, v]) => v !== undefined)) as Partial<Watching>;
  const w = { ...own, ...set };
  const within = (path: string, key: 'logRoots' | 'fimRoots') => {
    if (isBelowAny(path, config[key])) return true;
    refused.push(`${path} is not below ${key} (${config[key].join(', ')})`);
    return false;
  };
  const logs = w.logs.filter((l) => within(l.path, 'logRoots'));
  let fim = w.fim;
  if (fim) {
    const paths = fim.paths.filter((p) => within(p, 'fimRoots'));
    if (fim.hashConcurrency > config.fimMaxHashThreads)
      refused.push(`${fim.hashConcurrency} hashing threads are cut to fimMaxHashThreads (${config.fimMaxHashThreads})`);
    fim = paths.length
      ? { ...fim, paths, hashConcurrency: Math.min(fim.hashConcurrency, config.fimMaxHashThreads) }
      : undefined;
  }
  // scheduled malware scans read whole files: only below fimRoots, like file integrity
  const malware = w.malware ? { ...w.malware, paths: w.malware.paths.filter((p) => within(p, 'fimRoots')) } : undefined;
  return { ...w, logs, fim, malware };
}

/**
 * The in-guest agent: registers and heartbeats on `agents`, ships log lines to `logs`, file
 * events to `fim` and network snapshots to `netconf` — watching what its policy (on the
 * `policy` topic, followed live) or else its file says — and enforces the blocks addressed to
 * it with nftables in its own namespace, restoring every active one from the compacted
 * `blocks` topic when it starts, and reporting each on `block-status` (it never writes `blocks`).
 */
export const agentStage = defineStage({
  name: 'agent',
  summary: 'in a guest: ships logs, file and network changes; enforces its blocks with nftables',
  config: agentConfigSchema,
  when: 'configured',
  inputs: () => [],
  outputs: () => [
    TOPICS.agents,
    TOPICS.logs,
    TOPICS.fim,
    TOPICS.netconf,
    TOPICS.blockStatus,
    TOPICS.processes,
    TOPICS.packets,
    TOPICS.alerts,
    TOPICS.dlq,
  ],
  reads: () => [TOPICS.policy, TOPICS.assignments, TOPICS.blocks, TOPICS.blockStatus, TOPICS.agentCommands],
  start: (stage) => startAgent(stage),
});

async function startAgent(stage: Stage<AgentConfig>): Promise<AgentHandle> {
  const { config, ctx } = stage;
  const claims = readEnrollToken(config.token);
  const agentId = agentIdFor(claims);
  const vm = claims.vm;
  const stateDir = resolve(config.stateDir);
  const identity = startIdentity(stateDir, agentId, ctx.log, config.sysRoot);
  // everything this agent sends is signed with its own key (consumers refuse its telemetry
  // unsigned); the public key goes with its heartbeats, registered with the token below
  const signer = createRecordSigner(agentId, loadSigningKey(stateDir, agentId, ctx.log));
  stage.signRecords(signer);
  const keyId = signer.publicKey.toString('base64');
  // the token goes with every record until the coordinator says it verified it (`enrolled`)
  // with this key: a coordinator that starts later must still see it once, and an agent
  // enrolled before it had a key registers the key with it
  const enrolledFile = join(stateDir, 'enrolled.json');
  const wasEnrolled = readState<{ agent?: string; key?: string }>(enrolledFile, {}, ctx.log);
  let enrolled = wasEnrolled.agent === agentId && wasEnrolled.key === keyId;
  let policyVersion = 0;
  let heartbeatMs = config.heartbeatS * 1000;
  let net: SensorCapture | null = null;
  /** Process monitoring (procmon.ts), when the policy enables it: declared before the first heartbeat reads it. */
  let procmon: ProcessMonitor | null = null;
  let windows: ProtectionWindows | null = null;
  let reenroll = false;
  // anti-malware scanning (malware.ts): declared before the first heartbeat, which reports it
  let malware: AgentMalware | null = null;
  const agentCodec = codecFor(TOPICS.agents);
  const logsCodec = codecFor(TOPICS.logs);
  const enforcer = config.enforce.enabled
    ? new NftEnforcer({
        table: config.enforce.table,
        ctx,
        ...(config.enforce.netns ? { netns: config.enforce.netns } : {}),
      })
    : null;
  let watching = watchingFor(config, null);
  const hashOf = (w: Watching) =>
    createHash('sha256')
      .update(JSON.stringify({ w, enforce: config.enforce, heartbeatS: config.heartbeatS }))
      .digest('hex')
      .slice(0, 16);
  let configHash = hashOf(watching);

  // Heartbeats one at a time, in order: each announces the capture's lease (the coordinator
  // hands the VM back from the last one it saw), and the lease is used only once the record
  // announcing it is on the bus.
  let beats: Promise<void> = Promise.resolve();
  const heartbeat = (status: AgentRecord['status']): Promise<void> => {
    const p = beats.then(() => beat(status));
    beats = p.catch(() => undefined);
    return p;
  };
  const beat = async (status: AgentRecord['status']) => {
    const s = net && !reenroll ? net.stats() : null;
    // running: frames stamped up to two heartbeats ahead are published as they come, so frames
    // never wait for a heartbeat; if this agent dies, the watchdog recovers what it left (decide.ts
    // takeBackFrom). Stopping:
    // its capture has stopped, so the lease ends at the newest frame it published. A lease is
    // on this agent's clock (its frames are published on the host's: less the offset its
    // assignment gave), and the coordinator reads it back the same way.
    const until =
      status === 'stopping'
        ? s && s.newestUs > 0
          ? s.newestUs + (windows?.offsetUs(vm) ?? 0) + 1
          : 0
        : ctx.clock.now() * 1000 + 2 * heartbeatMs * 1000;
    const rec: AgentRecord = {
      agent: agentId,
      vm,
      version: AGENT_VERSION,
      config_hash: configHash,
      identity: JSON.stringify({ generation: identity.generation, incarnation: identity.incarnation, hw: identity.hw }),
      heartbeat_us: ctx.clock.now() * 1000,
      status,
      kind: 'agent',
      host: null,
      policy_version: policyVersion,
      capture: s ? { active: true, frames: s.captured, published: s.published, inspected_until_us: until } : null,
      acks: windows?.acks() ?? {},
      heartbeat_interval_ms: heartbeatMs,
      public_key: signer.publicKey,
      processes: procmon?.status() ?? PROCESSES_OFF,
      malware: malware?.status() ?? null,
    };
    const headers = enrolled ? undefined : { 'cordon-enroll-token': Buffer.from(config.token) };
    await stage.send(TOPICS.agents, [
      { key: Buffer.from(agentId), value: agentCodec.encode(rec), ...(headers ? { headers } : {}) },
    ]);
    lastBeat = ctx.clock.now();
    if (s && status !== 'stopping') net?.extendLease(until);
  };
  // ---- orders from agent-commands (addressed by key): the coordinator's verdict on this start
  // (enrolled, rebaseline for a reverted VM, reenroll for a clone), rescan, reconfigure. Joined
  // before the first heartbeat, so the reply to it is not missed; a group per agent and machine,
  // so a clone (same id, another machine) gets its own commands.
  let verdictKind: AgentCommand['kind'] | null = null;
  let onVerdict: (k: AgentCommand['kind']) => void = () => undefined;
  const verdict = new Promise<AgentCommand['kind']>((resolve) => (onVerdict = resolve));
  let markReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve) => (markReady = resolve));
  let onJoined: () => void = () => undefined;
  const joined = new Promise<void>((resolve) => (onJoined = resolve));
  stage.consume<AgentCommand | null>({
    group: `cordon-agent-${agentId}-${identity.hw.slice(0, 12)}-commands`,
    topics: [TOPICS.agentCommands],
    fromBeginning: false,
    tombstones: 'skip',
    onAssign: () => onJoined(),
    // commands for other agents are not ours to judge: only ours are decoded
    decode: (v, r) => (r.key?.toString() === agentId ? codecFor(TOPICS.agentCommands).decode(v) : null),
    async handle(batch) {
      for (const { value: cmd } of batch.records) {
        if (!cmd) continue;
        // a command for one incarnation (a clone, a reverted VM) is not for the others
        if (cmd.args.incarnation && cmd.args.incarnation !== identity.incarnation) continue;
        const isVerdict =
          cmd.args.incarnation === identity.incarnation &&
          (cmd.kind === 'enrolled' || cmd.kind === 'rebaseline' || cmd.kind === 'reenroll');
        if (isVerdict && verdictKind === null) {
          verdictKind = cmd.kind;
          onVerdict(cmd.kind);
        }
        await ready;
        ctx.log.info({ command: cmd.kind, id: cmd.command_id }, 'Agent command received.');
        if (cmd.kind === 'rescan') {
          await fim?.rescan();
          void malware?.scanScheduled('demand');
        } else if (cmd.kind === 'rebaseline') {
          // a revert: the coordinator names the generation to go on from
          if (cmd.args.generation && adoptGeneration(stateDir, identity, Number(cmd.args.generation))) {
            ctx.log.warn(
              { agent: agentId, generation: identity.generation },
              'This VM was reverted to an earlier state; the agent goes on from the generation the coordinator named.',
            );
            await heartbeat('running');
          }
          // the verdict already made the startup scan a new baseline
          if (!(isVerdict && fimStartedRebased)) await fim?.rebaseline();
        } else if (cmd.kind === 'reconfigure') await enqueue(() => reconfigure(policyNow(), true));
        else if (cmd.kind === 'enrolled') {
          if (!enrolled) writeState(enrolledFile, { agent: agentId, key: keyId });
          enrolled = true;
        } else if (cmd.kind === 'reenroll') {
          // a clone of the enrolled VM: it must not inspect as that VM's agent
          reenroll = true;
          net?.pause(true);
          ctx.log.error(
            { agent: agentId, reason: cmd.args.reason ?? '' },
            'The coordinator does not trust this agent (a clone of its VM?): network inspection stops; enroll it with a new token ("cordon agents token --vm <vm>").',
          );
          await heartbeat('running');
        } else ctx.log.warn({ command: cmd.kind }, 'This agent does not carry out that command yet.');
      }
    },
  });
  const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
  await Promise.race([joined, wait(10_000)]);
  let fimStartedRebased = false;

  let lastBeat = 0;
  await heartbeat(enrolled ? 'running' : 'enrolled');
  ctx.log.info({ agent: agentId, vm, generation: identity.generation }, 'Agent registered.');
  // last cleanup to run: the stopping heartbeat goes out after everything else stopped
  stage.onStop(() => heartbeat('stopping'));

  // ---- enforcement: the table as it is now, then everything written after, with no gap
  if (enforcer) {
    await enforcer.setup();
    // the table stays on stop: blocks hold (until their TTL) across a restart
    stage.onStop(() => enforcer.close());
    const { neverBlock, maxBlocks, maxNewPerMinute, netns } = config.enforce;
    await followBlocks(stage, {
      enforcer: agentEnforcer(agentId),
      guards: { neverBlock, maxBlocks, maxNewPerMinute },
      vm,
      ...(netns ? { netns } : {}),
      applier: {
        targetOf: (d) => NftEnforcer.targetOf(d).ip,
        apply: (d, now) => enforcer.apply(d, now),
        lift: (ip) => enforcer.lift(ip),
        reconcile: (keep) => enforcer.reconcile(new Set(keep)),
      },
    });
  }

  // ---- what the agent watches: logs, files, network configuration. Started from the policy
  // topic's view (or the file's settings), restarted part by part when the policy changes it.
  const fimCodec = codecFor(TOPICS.fim);
  const netCodec = codecFor(TOPICS.netconf);
  let tailer: LogTailer | null = null;
  let fim: FimWatcher | null = null;
  let fimStarting: FimWatcher | null = null;
  let netTimer: NodeJS.Timeout | null = null;
  let lastNet = '';
  let looks = 0;

  const startLogs = (w: Watching) => {
    tailer = new LogTailer({
      sources: w.logs,
      roots: config.logRoots,
      stateFile: join(stateDir, 'logtail.json'), // positions survive the restart of the tailer
      ctx,
      startAt: w.logStartAt,
      onBatch: async (b) => {
        const batch: LogBatch = {
          batch_id: `${agentId}:${b.source.path}:${b.inode}:${b.lines[0]!.offset}`,
          agent: agentId,
          vm,
          source: b.source.path,
          format: b.source.format ?? null,
          lines: b.lines.map((l) => ({ ts_us: l.ts_us, offset: l.offset, line: l.line })),
        };
        await stage.send(TOPICS.logs, [{ key: Buffer.from(`${vm}|${b.source.path}`), value: logsCodec.encode(batch) }]);
      },
    });
    tailer.start();
  };
  // file integrity: startup scan against the baseline (changes made while the agent was down;
  // roots new to the policy are baselined, not reported), then realtime watching and scans —
  // or, for a VM the coordinator found reverted, a new baseline without reporting differences
  const startFim = async (w: Watching, rebaseline = false) => {
    if (!w.fim) return;
    // the handle's watcher is the one watching: set once its first scan is done
    const f = (fimStarting = createFimWatcher({
      policy: w.fim,
      stateDir: join(stateDir, 'fim'),
      ctx,
      identity: { agent: agentId, vm },
      onEvents: async (events) => {
        await stage.send(
          TOPICS.fim,
          events.map((e) => ({ key: Buffer.from(`${vm}|${e.path}`), value: fimCodec.encode(e) })),
        );
        // anti-malware queues the added and changed files and returns at once
        malware?.onFileEvents(events);
      },
    }));
    await f.start({ rebaseline });
    fim = f;
    fimStarting = null;
  };
  // network configuration: a snapshot when it changed (and every 20 looks regardless)
  const lookAtNetwork = async () => {
    const snap = await collectNetSnapshot(agentId, vm, ctx.clock.now() * 1000);
    const shape = JSON.stringify({ ...snap, ts_us: 0 });
    if (shape === lastNet && ++looks % 20 !== 0) return;
    lastNet = shape;
    await stage.send(TOPICS.netconf, [{ key: Buffer.from(vm), value: netCodec.encode(snap) }]);
  };
  const startNetconf = async (w: Watching) => {
    if (!w.netconf.enabled) return;
    await lookAtNetwork().catch((err: unknown) => ctx.log.warn({ err }, 'Network configuration could not be read.'));
    netTimer = setInterval(() => {
      lookAtNetwork().catch((err: unknown) => ctx.log.warn({ err }, 'Network configuration could not be read.'));
    }, w.netconf.intervalS * 1000);
    netTimer.unref();
  };
  const stopNetconf = () => {
    if (netTimer) clearInterval(netTimer);
    netTimer = null;
  };
  // ---- process monitoring (procmon.ts): exec/exit/uid events with their process trees
  const processesCodec = codecFor(TOPICS.processes);
  const alertsCodec = codecFor(TOPICS.alerts);
  const startProcesses = (w: Watching) => {
    if (!w.processes.enabled) return;
    const m = new ProcessMonitor({
      policy: w.processes,
      agent: agentId,
      vm,
      ctx,
      recordFile: config.processRecord,
      send: (events) =>
        stage.send(
          TOPICS.processes,
          events.map((e) => ({ key: Buffer.from(vm), value: processesCodec.encode(e) })),
        ),
      alert: (a) => stage.send(TOPICS.alerts, [{ key: Buffer.from(vm), value: alertsCodec.encode(a) }]),
    });
    m.start();
    procmon = m;
  };
  const stopProcesses = async () => {
    const m = procmon;
    procmon = null;
    await m?.stop();
  };

  // ---- anti-malware: YARA over files file integrity reports, on a schedule and on demand
  // (malware.ts); its rule sets come with the policy, as the dpi's Suricata sets do
  const yaraSources = (names: readonly string[]) => {
    const doc = policies.policies.get(config.policy)?.doc;
    return names.flatMap((set) => {
      const files = (doc?.yaraRulesets ?? []).filter((r) => r.set === set);
      if (!files.length)
        throw ERR_AGENT_POLICY_REFUSED(config.policy, `YARA rule set ${set} is not published with the policy`);
      return files.map((r) => ({ name: r.name, namespace: set, text: assembleRuleset(policies.rulesetParts(r.name)) }));
    });
  };
  const startMalware = async (w: Watching) => {
    malware = await AgentMalware.start(
      {
        ctx,
        agentId,
        vm,
        stateDir,
        send: (topic, records) => stage.send(topic, records),
        ruleSetSources: yaraSources,
        defaultPaths: () => w.fim?.paths ?? [],
      },
      w.malware,
    ).catch((err: unknown) => {
      ctx.metrics.inc('errors');
      ctx.log.error(
        { err: describeError(err) },
        'Anti-malware scanning could not start (its rules?); files are not scanned.',
      );
      return null;
    });
  };

  /** Restart the parts whose settings differ (all of them when `force`), then report the new hash. */
  const reconfigure = async (next: Watching, force: boolean) => {
    const differs = (...keys: Array<keyof Watching>) =>
      force || keys.some((k) => JSON.stringify(next[k]) !== JSON.stringify(watching[k]));
    const logs = differs('logs', 'logStartAt');
    const files = differs('fim');
    const net = differs('netconf');
    const procs = differs('processes');
    if (procs) await stopProcesses();
    const scans = differs('malware');
    if (logs) await tailer?.stop();
    if (files) await fim?.stop();
    if (scans) await malware?.stop();
    if (net) stopNetconf();
    watching = next;
    configHash = hashOf(next);
    if (logs) startLogs(next);
    if (files) {
      fim = null;
      await startFim(next);
    }
    if (net) await startNetconf(next);
    if (procs) startProcesses(next);
    if (scans) await startMalware(next);
    ctx.log.info(
      {
        configHash,
        logs: next.logs.length,
        fim: next.fim?.paths ?? [],
        netconf: next.netconf.enabled,
        processes: next.processes.enabled,
      },
      'Agent reconfigured from its policy.',
    );
    await heartbeat('running');
  };

  // the policy topic: the table now, then changes, applied one at a time in order
  const policies = new PolicyView();
  const policyNow = (): Watching => {
    const p = policies.policies.get(config.policy);
    // what the coordinator compares: the policy version this agent applies, its heartbeat rhythm
    policyVersion = p?.version ?? 0;
    heartbeatMs = p?.doc.coordination.heartbeatIntervalMs ?? config.heartbeatS * 1000;
    const refused: string[] = [];
    const w = watchingFor(config, p ? agentPolicyFor(p.doc, vm) : null, refused);
    for (const what of refused) {
      ctx.metrics.inc('policy_refused');
      ctx.log.warn(
        { err: describeError(ERR_AGENT_POLICY_REFUSED(config.policy, what)) },
        'Part of the agent policy is outside what this agent allows; it was left out.',
      );
    }
    return w;
  };
  let changes: Promise<void> = Promise.resolve();
  const enqueue = (what: () => Promise<void>) => {
    changes = changes.then(what).catch((err: unknown) => {
      ctx.metrics.inc('errors');
      ctx.log.error(
        { err: describeError(err) },
        'The agent could not apply its new policy; it keeps the previous one where it could not.',
      );
    });
    return changes;
  };
  await stage.follow(TOPICS.policy, (r, restoring) => {
    try {
      policies.apply(r.key, r.value);
    } catch (err) {
      ctx.metrics.inc('errors');
      ctx.log.warn({ err: describeError(err) }, 'A policy record is unusable; it was skipped.');
      return;
    }
    if (!restoring && r.key?.toString() === `policy:${config.policy}`) {
      const next = policyNow();
      if (hashOf(next) !== configHash) void enqueue(() => reconfigure(next, false));
    }
  });
  watching = policyNow();
  configHash = hashOf(watching);
  startLogs(watching);
  // the first scan waits for the coordinator's verdict on this start (a reverted VM's file
  // changes are the revert's, not to be reported one by one), or `verdictWaitS` without one
  const first = watching.fim
    ? await Promise.race([verdict, wait(config.verdictWaitS * 1000).then(() => null)])
    : verdictKind;
  if (first === null && watching.fim)
    ctx.log.warn(
      { waitedS: config.verdictWaitS },
      'No word from the coordinator on this start; file integrity starts by comparing with its baseline.',
    );
  fimStartedRebased = first === 'rebaseline' && !!watching.fim;
  await startMalware(watching);
  await startFim(watching, first === 'rebaseline');
  await startNetconf(watching);
  startProcesses(watching);
  stage.onStop(async () => {
    await changes;
    await stopProcesses();
    stopNetconf();
    await fimStarting?.stop();
    await fim?.stop();
    await malware?.stop();
    await tailer?.stop();
  });

  // ---- network inspection of the VM's own NIC, while the coordinator assigns the VM to it
  if (config.capture.enabled) {
    const me = agentId;
    const w = new ProtectionWindows({
      // an assignment made for an earlier start of this agent (a restart, a reverted VM) or for
      // the original of a clone is not this incarnation's
      isMe: (a: Assignment) =>
        a.mode === 'agent' && a.agent === me && (a.incarnation === null || a.incarnation === identity.incarnation),
      leased: true,
      holdUs: config.capture.holdMs * 1000,
      maxBytesPerVm: config.capture.holdMaxMiB << 20,
      maxBytes: config.capture.holdMaxMiB << 20,
      unassignedIsMine: false,
    });
    windows = w;
    const assignCodec = codecFor(TOPICS.assignments);
    const pending: SensorFrame[] = [];
    await stage.follow(TOPICS.assignments, (r) => {
      if (r.key?.toString() !== vm || !r.value) return;
      const released = w.assign(assignCodec.decode(r.value));
      if (net) net.release(vm, released);
      else pending.push(...released);
    });
    const info = (await stage.bus.admin.listTopics()).find((t) => t.name === TOPICS.packets);
    net = startSensorCapture({
      sensor: agentSensor(agentId),
      iface: config.capture.interface,
      ...(config.capture.netns ? { netns: config.capture.netns } : {}),
      pollMs: config.capture.pollMs,
      partitions: info?.partitions ?? 1,
      send: (records) => stage.send(TOPICS.packets, records),
      attribute: () => vm,
      windows: w,
      log: ctx.log,
      metrics: ctx.metrics,
      // its frames on its own clock (only a lab's skewed guest has another than the kernel's)
      stampOffsetUs: clockOffsetUs(ctx.clock),
    });
    net.release(vm, pending.splice(0));
    const n = net;
    stage.onStop(() => n.stop());
  }

  // the generation moves forward while running, so a revert to a snapshot shows (identity.ts)
  stage.every(config.checkpointS * 1000, 'An identity checkpoint', () => checkpointGeneration(stateDir, identity));

  // the rhythm may change with the policy: a fine tick, a heartbeat when one is due
  stage.every(Math.min(50, heartbeatMs), 'A heartbeat', async () => {
    if (ctx.clock.now() - lastBeat >= heartbeatMs) await heartbeat('running');
  });

  markReady();
  return {
    agentId,
    vm,
    identity,
    enforcer,
    get fim() {
      return fim;
    },
    get malware() {
      return malware;
    },
    get watching() {
      return watching;
    },
    get configHash() {
      return configHash;
    },
    get processes() {
      return procmon;
    },
  };
}
