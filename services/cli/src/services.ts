import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { mkdirSync } from 'node:fs';
import { childContext, type Context } from '@cordon/runtime';
import { createEmbeddedBus, createKafkaBus, type Bus } from '@cordon/bus';
import { allTopicSpecs, TOPICS } from '@cordon/schemas';
import { createStore, type Store } from '@cordon/store';
import { startFlowsService } from '@cordon/flows';
import { startSink, TABLE_MAPPINGS } from '@cordon/sink';
import type { CordonConfig } from './config.js';
import { ERR_CONFIG, ERR_UNKNOWN_SERVICE } from './errors.js';
import { startAgent } from '@cordon/agent';
import { startFimProcessor } from '@cordon/fim-processor';
import { startLoginspectService } from '@cordon/loginspect';
import { startNetconfService } from '@cordon/netconf';
import { startResponder } from '@cordon/responder';
import { startWatchdog } from '@cordon/watchdog';

export function openBus(config: CordonConfig, ctx: Context): Bus {
  if (config.bus.kind === 'kafka') return createKafkaBus({ brokers: config.bus.brokers, clientId: config.bus.clientId, ctx: childContext(ctx, 'bus') });
  mkdirSync(config.dataDir, { recursive: true });
  return createEmbeddedBus({ dataDir: config.dataDir, ctx: childContext(ctx, 'bus') });
}

export function openStore(config: CordonConfig, ctx: Context): Promise<Store> {
  if (config.store.url) return createStore({ url: config.store.url, database: config.store.database, ctx });
  return createStore({ dataDir: join(config.dataDir, 'clickhouse'), database: config.store.database, ctx });
}

export async function applyTopics(bus: Bus): Promise<number> {
  const specs = allTopicSpecs();
  await bus.admin.ensureTopics(specs);
  return specs.length;
}

export interface RunningService {
  name: string;
  done: Promise<void>;
  stop(): Promise<void>;
}

export interface ServiceDeps {
  bus: Bus;
  ctx: Context;
  config: CordonConfig;
  store?: Store;
}

interface ServiceEntry {
  /** The consumer groups and topics it reads, to tell when it has caught up. */
  inputs: Array<{ group: string; topic: string }>;
  /** Whether `cordon up` starts it with this configuration (default: always). */
  enabledIn?: (config: CordonConfig) => boolean;
  start(deps: ServiceDeps): Promise<RunningService>;
}

/** Every service `cordon run <name>` knows; `cordon up` starts them all in one process. */
export const SERVICES: Record<string, ServiceEntry> = {
  flows: {
    inputs: [{ group: 'cordon-flows', topic: TOPICS.packets }],
    start: async ({ bus, ctx, config }) => {
      const h = startFlowsService({ bus, ctx, config: config.flows });
      return { name: 'flows', done: h.done, stop: () => h.stop() };
    },
  },
  dpi: {
    inputs: [{ group: 'cordon-dpi', topic: TOPICS.packets }],
    start: async ({ bus, ctx, config }) => {
      const dpi = await import('@cordon/dpi');
      const files = config.dpi.ruleFiles;
      let svc: ReturnType<typeof dpi.startDpiService> | null = null;
      let follower: { close(): Promise<void> } | null = null;
      if (files) {
        const sources = files.map((f) => ({ name: f, text: readFileSync(f, 'utf8') }));
        svc = dpi.startDpiService({ bus, ctx, rules: dpi.compileRules(sources, ctx), config: config.dpi.service });
      } else {
        // rules from the policy topic; until a policy names some, an empty set (no alerts)
        svc = dpi.startDpiService({ bus, ctx, rules: dpi.compileRules([], ctx), config: config.dpi.service });
        const running = svc;
        follower = await dpi.followPolicyRules(bus, ctx, 'cordon-dpi', (sources) => running.setRules(dpi.compileRules(sources, ctx)));
      }
      const handle = svc;
      return {
        name: 'dpi',
        done: handle.done,
        stop: async () => {
          await follower?.close();
          await handle.stop();
        },
      };
    },
  },
  loginspect: {
    inputs: [{ group: 'cordon-loginspect', topic: TOPICS.logs }],
    start: async ({ bus, ctx }) => {
      const h = startLoginspectService({ bus, ctx });
      return { name: 'loginspect', done: h.done, stop: () => h.stop() };
    },
  },
  netconf: {
    inputs: [{ group: 'cordon-netconf', topic: TOPICS.netconf }],
    start: async ({ bus, ctx }) => {
      const h = await startNetconfService({ bus, ctx });
      return { name: 'netconf', done: h.done, stop: () => h.stop() };
    },
  },
  fim: {
    inputs: [{ group: 'cordon-fim', topic: TOPICS.fim }],
    start: async ({ bus, ctx }) => {
      const h = startFimProcessor({ bus, ctx });
      return { name: 'fim', done: h.done, stop: () => h.stop() };
    },
  },
  agent: {
    inputs: [],
    enabledIn: (config) => config.agent !== undefined,
    start: async ({ bus, ctx, config }) => {
      if (!config.agent) throw ERR_CONFIG('the configuration', 'an "agent" section (token, logs, stateDir, …) is needed to run the agent');
      const h = await startAgent({ bus, ctx, config: config.agent });
      return { name: 'agent', done: h.done, stop: () => h.stop() };
    },
  },
  responder: {
    inputs: [{ group: 'cordon-responder', topic: TOPICS.alerts }],
    start: async ({ bus, ctx, config }) => {
      const h = await startResponder({ bus, ctx, config: config.responder });
      return { name: 'responder', done: h.done, stop: () => h.stop() };
    },
  },
  watchdog: {
    inputs: [],
    enabledIn: (config) => config.watchdog !== undefined,
    start: async ({ bus, ctx, config }) => {
      if (!config.watchdog) throw ERR_CONFIG('the configuration', 'a "watchdog" section (host, bridge, enforce) is needed to run the watchdog');
      const h = await startWatchdog({ bus, ctx, config: config.watchdog });
      return { name: 'watchdog', done: h.done, stop: () => h.stop() };
    },
  },
  sink: {
    inputs: TABLE_MAPPINGS.map((m) => ({ group: 'cordon-sink', topic: m.topic })),
    start: async ({ bus, ctx, config, store }) => {
    const s = store ?? (await openStore(config, ctx));
    const h = startSink({ bus, store: s, ctx });
      return {
        name: 'sink',
        done: h.done,
        stop: async () => {
          await h.stop();
          if (!store) await s.close();
        },
      };
    },
  },
};

export function serviceNames(): string[] {
  return Object.keys(SERVICES);
}

/** The services `cordon up` runs in one process for this configuration. */
export function servicesFor(config: CordonConfig): string[] {
  return Object.entries(SERVICES)
    .filter(([, s]) => s.enabledIn?.(config) ?? true)
    .map(([name]) => name);
}

export function startService(name: string, deps: ServiceDeps): Promise<RunningService> {
  const entry = SERVICES[name];
  if (!entry) throw ERR_UNKNOWN_SERVICE(name, serviceNames());
  return entry.start(deps);
}

/** Wait until each group has consumed its topic up to the end offsets seen now. */
export async function waitCaughtUp(bus: Bus, pairs: Array<{ group: string; topic: string }>, timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const { group, topic } of pairs) {
    const ends = await bus.admin.endOffsets(topic);
    for (;;) {
      const committed = await bus.admin.committedOffsets(group, topic);
      const behind = [...ends].filter(([p, end]) => end > 0n && (committed.get(p) ?? 0n) < end);
      if (behind.length === 0) break;
      if (Date.now() > deadline) throw new Error(`group ${group} is still behind on ${topic} partitions ${behind.map(([p]) => p).join(',')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}

/** The inputs of these services in pipeline order: caught up on all of them = the pipeline is drained. */
export function pipelineOf(names: string[]): Array<{ group: string; topic: string }> {
  return Object.entries(SERVICES)
    .filter(([name]) => names.includes(name))
    .flatMap(([, s]) => s.inputs);
}
