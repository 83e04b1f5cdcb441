import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { childContext, type Context } from '@cordon/runtime';
import { createEmbeddedBus, createKafkaBus, type Bus } from '@cordon/bus';
import { allTopicSpecs, TOPICS } from '@cordon/schemas';
import { createStore, type Store } from '@cordon/store';
import { startFlowsService } from '@cordon/flows';
import { startSink } from '@cordon/sink';
import type { CordonConfig } from './config.js';
import { ERR_CONFIG, ERR_UNKNOWN_SERVICE } from './errors.js';
import { startAgent } from '@cordon/agent';

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
  agent: {
    inputs: [],
    start: async ({ bus, ctx, config }) => {
      if (!config.agent) throw ERR_CONFIG('the configuration', 'an "agent" section (token, logs, stateDir, …) is needed to run the agent');
      const h = await startAgent({ bus, ctx, config: config.agent });
      return { name: 'agent', done: h.done, stop: () => h.stop() };
    },
  },
  sink: {
    inputs: [
      { group: 'cordon-sink', topic: TOPICS.flows },
      { group: 'cordon-sink', topic: TOPICS.dlq },
    ],
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

/** Every service's inputs in pipeline order: caught up on all of them = the pipeline is drained. */
export const PIPELINE = Object.values(SERVICES).flatMap((s) => s.inputs);
