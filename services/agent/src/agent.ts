import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { describeError } from '@cordon/runtime';
import { followBlocks } from '@cordon/enforce';
import { defineStage, type Stage } from '@cordon/stage';
import { agentEnforcer, codecFor, TOPICS, type AgentCommand, type AgentRecord, type LogBatch } from '@cordon/schemas';
import { createFimWatcher, type FimWatcher } from '@cordon/fim-scan';
import { agentPolicyFor, PolicyView, type AgentPolicy } from '@cordon/policy';
import { agentConfigSchema, isBelowAny, type AgentConfig } from './config.js';
import { ERR_AGENT_POLICY_REFUSED } from './errors.js';
import { NftEnforcer } from './enforce.js';
import { startIdentity, type AgentIdentity } from './identity.js';
import { LogTailer } from './logtail.js';
import { collectNetSnapshot } from './netconf.js';
import { agentIdFor, readEnrollToken } from './token.js';

export const AGENT_VERSION = '0.1.0';

export interface AgentHandle {
  readonly agentId: string;
  readonly vm: string;
  readonly identity: AgentIdentity;
  readonly enforcer: NftEnforcer | null;
  /** The file integrity watcher now (replaced when the policy changes it). */
  readonly fim: FimWatcher | null;
  /** What the agent watches now: its file's settings with the policy's over them. */
  readonly watching: Watching;
  /** Of `watching` and enforcement, as the heartbeats report it. */
  readonly configHash: string;
}


/** The parts of the agent's configuration the policy topic may set (see @cordon/policy's agentPolicySchema). */
export type Watching = Pick<AgentConfig, 'logs' | 'logStartAt' | 'fim' | 'netconf'>;

/**
 * The agent file's settings with the policy's fields over them, within the file's limits: a
 * log or file integrity path outside `logRoots` / `fimRoots` is dropped (and named in
 * `refused`), and hashing threads are cut to `fimMaxHashThreads`. Whoever can write the policy
 * topic can change what the agent watches, not make it read anything on the machine.
 */
export function watchingFor(config: AgentConfig, policy: AgentPolicy | null, refused: string[] = []): Watching {
  const own: Watching = { logs: config.logs, logStartAt: config.logStartAt, fim: config.fim, netconf: config.netconf };
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
    if (fim.hashConcurrency > config.fimMaxHashThreads) refused.push(`${fim.hashConcurrency} hashing threads are cut to fimMaxHashThreads (${config.fimMaxHashThreads})`);
    fim = paths.length ? { ...fim, paths, hashConcurrency: Math.min(fim.hashConcurrency, config.fimMaxHashThreads) } : undefined;
  }
  return { ...w, logs, fim };
}


/**
 * The in-guest agent: registers and heartbeats on `agents`, ships log lines to `logs`, file
 * events to `fim` and network snapshots to `netconf` — watching what its policy (on the
 * `policy` topic, followed live) or else its file says — and enforces the blocks addressed to
 * it with nftables in its own namespace, restoring every active one from the compacted
 * `blocks` topic when it starts.
 */
export const agentStage = defineStage({
  name: 'agent',
  summary: 'in a guest: ships logs, file and network changes; enforces its blocks with nftables',
  config: agentConfigSchema,
  when: 'configured',
  inputs: () => [],
  outputs: () => [TOPICS.agents, TOPICS.logs, TOPICS.fim, TOPICS.netconf, TOPICS.blocks, TOPICS.alerts],
  start: (stage) => startAgent(stage),
});

async function startAgent(stage: Stage<AgentConfig>): Promise<AgentHandle> {
  const { config, ctx } = stage;
  const claims = readEnrollToken(config.token);
  const agentId = agentIdFor(claims);
  const vm = claims.vm;
  const stateDir = resolve(config.stateDir);
  const identity = startIdentity(stateDir, agentId, ctx.log);
  const agentCodec = codecFor(TOPICS.agents);
  const logsCodec = codecFor(TOPICS.logs);
  const enforcer = config.enforce.enabled
    ? new NftEnforcer({ table: config.enforce.table, ctx, ...(config.enforce.netns ? { netns: config.enforce.netns } : {}) })
    : null;
  let watching = watchingFor(config, null);
  const hashOf = (w: Watching) => createHash('sha256').update(JSON.stringify({ w, enforce: config.enforce, heartbeatS: config.heartbeatS })).digest('hex').slice(0, 16);
  let configHash = hashOf(watching);

  const heartbeat = async (status: AgentRecord['status']) => {
    const rec: AgentRecord = {
      agent: agentId,
      vm,
      version: AGENT_VERSION,
      config_hash: configHash,
      identity: JSON.stringify({ generation: identity.generation, incarnation: identity.incarnation, hw: identity.hw }),
      heartbeat_us: ctx.clock.now() * 1000,
      status,
    };
    // the first record of a new agent carries its token, for the coordinator to verify
    const headers = identity.generation === 1 && status === 'enrolled' ? { 'cordon-enroll-token': Buffer.from(config.token) } : undefined;
    await stage.send(TOPICS.agents, [{ key: Buffer.from(agentId), value: agentCodec.encode(rec), ...(headers ? { headers } : {}) }]);
  };
  await heartbeat(identity.generation === 1 ? 'enrolled' : 'running');
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
  // roots new to the policy are baselined, not reported), then realtime watching and scans
  const startFim = async (w: Watching) => {
    if (!w.fim) return;
    fim = createFimWatcher({
      policy: w.fim,
      stateDir: join(stateDir, 'fim'),
      ctx,
      identity: { agent: agentId, vm },
      onEvents: async (events) => {
        await stage.send(TOPICS.fim, events.map((e) => ({ key: Buffer.from(`${vm}|${e.path}`), value: fimCodec.encode(e) })));
      },
    });
    await fim.start();
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

  /** Restart the parts whose settings differ (all of them when `force`), then report the new hash. */
  const reconfigure = async (next: Watching, force: boolean) => {
    const differs = (...keys: Array<keyof Watching>) => force || keys.some((k) => JSON.stringify(next[k]) !== JSON.stringify(watching[k]));
    const logs = differs('logs', 'logStartAt');
    const files = differs('fim');
    const net = differs('netconf');
    if (logs) await tailer?.stop();
    if (files) await fim?.stop();
    if (net) stopNetconf();
    watching = next;
    configHash = hashOf(next);
    if (logs) startLogs(next);
    if (files) {
      fim = null;
      await startFim(next);
    }
    if (net) await startNetconf(next);
    ctx.log.info({ configHash, logs: next.logs.length, fim: next.fim?.paths ?? [], netconf: next.netconf.enabled }, 'Agent reconfigured from its policy.');
    await heartbeat('running');
  };

  // the policy topic: the table now, then changes, applied one at a time in order
  const policies = new PolicyView();
  const policyNow = (): Watching => {
    const p = policies.policies.get(config.policy);
    const refused: string[] = [];
    const w = watchingFor(config, p ? agentPolicyFor(p.doc, vm) : null, refused);
    for (const what of refused) {
      ctx.metrics.inc('policy_refused');
      ctx.log.warn({ err: describeError(ERR_AGENT_POLICY_REFUSED(config.policy, what)) }, 'Part of the agent policy is outside what this agent allows; it was left out.');
    }
    return w;
  };
  let changes: Promise<void> = Promise.resolve();
  const enqueue = (what: () => Promise<void>) => {
    changes = changes.then(what).catch((err: unknown) => {
      ctx.metrics.inc('errors');
      ctx.log.error({ err: describeError(err) }, 'The agent could not apply its new policy; it keeps the previous one where it could not.');
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
  await startFim(watching);
  await startNetconf(watching);
  stage.onStop(async () => {
    await changes;
    stopNetconf();
    await fim?.stop();
    await tailer?.stop();
  });

  // ---- orders from agent-commands (addressed by key): rescan, re-baseline, reconfigure
  stage.consume<AgentCommand | null>({
    group: `cordon-agent-${agentId}-commands`,
    topics: [TOPICS.agentCommands],
    fromBeginning: false,
    tombstones: 'skip',
    // commands for other agents are not ours to judge: only ours are decoded
    decode: (v, r) => (r.key?.toString() === agentId ? codecFor(TOPICS.agentCommands).decode(v) : null),
    async handle(batch) {
      for (const { value: cmd } of batch.records) {
        if (!cmd) continue;
        ctx.log.info({ command: cmd.kind, id: cmd.command_id }, 'Agent command received.');
        if (cmd.kind === 'rescan') await fim?.rescan();
        else if (cmd.kind === 'rebaseline') await fim?.rebaseline();
        else if (cmd.kind === 'reconfigure') await enqueue(() => reconfigure(policyNow(), true));
        else ctx.log.warn({ command: cmd.kind }, 'This agent does not carry out that command yet.');
      }
    },
  });

  stage.every(config.heartbeatS * 1000, 'A heartbeat', () => heartbeat('running'));

  return {
    agentId,
    vm,
    identity,
    enforcer,
    get fim() {
      return fim;
    },
    get watching() {
      return watching;
    },
    get configHash() {
      return configHash;
    },
  };
}
