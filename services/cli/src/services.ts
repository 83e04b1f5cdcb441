import { join } from 'node:path';
import { mkdirSync } from 'node:fs';
import { childContext, type Context } from '@cordon/runtime';
import { createEmbeddedBus, createKafkaBus, loadKafkaClientConfig, type Bus } from '@cordon/bus';
import { allTopicSpecs, TOPICS } from '@cordon/schemas';
import { createStore, type Store } from '@cordon/store';
import {
  runStage,
  stagesEnabled,
  type RunningStage,
  type StageInput,
  type StageModule,
  type StageTelemetry,
} from '@cordon/stage';
import { storeUrl, type CordonConfig } from './config.js';
import { ERR_UNKNOWN_SERVICE } from './errors.js';
import { BUILTIN_STAGES } from './stages.js';

export function openBus(config: CordonConfig, ctx: Context): Bus {
  if (config.bus.kind === 'kafka') {
    const security = config.bus.clientConfig ? loadKafkaClientConfig(config.bus.clientConfig).security : undefined;
    return createKafkaBus({
      brokers: config.bus.brokers,
      clientId: config.bus.clientId,
      ...(security ? { security } : {}),
      ...(config.bus.tuning ? { tuning: config.bus.tuning } : {}),
      ctx: childContext(ctx, 'bus'),
    });
  }
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  // agent commands are orders, like the compacted topics: on disk before the send returns
  return createEmbeddedBus({
    dataDir: config.dataDir,
    ctx: childContext(ctx, 'bus'),
    fsync: { controlTopics: [TOPICS.agentCommands, TOPICS.audit] },
  });
}

export function openStore(config: CordonConfig, ctx: Context): Promise<Store> {
  const url = storeUrl(config.store);
  if (url) return createStore({ url, database: config.store.database, ctx });
  return createStore({ dataDir: join(config.dataDir, 'clickhouse'), database: config.store.database, ctx });
}

/** A store whose session can only read (readonly = 1), for analysts' SQL: no migrations, no writes. */
export function openReadStore(config: CordonConfig, ctx: Context): Promise<Store> {
  const url = storeUrl(config.store);
  if (url) return createStore({ url, database: config.store.database, ctx, readOnly: true });
  return createStore({
    dataDir: join(config.dataDir, 'clickhouse'),
    database: config.store.database,
    ctx,
    readOnly: true,
  });
}

export async function applyTopics(bus: Bus): Promise<number> {
  const specs = allTopicSpecs();
  await bus.admin.ensureTopics(specs);
  return specs.length;
}

export type RunningService = RunningStage;

export interface ServiceDeps {
  bus: Bus;
  ctx: Context;
  config: CordonConfig;
  /** The process's store; opened on first use (and closed on stop) when absent. */
  store?: Store;
  /** The stage list (default: the built-in stages). */
  stages?: readonly StageModule[];
  telemetry?: StageTelemetry;
}

function moduleOf(name: string, stages: readonly StageModule[]): StageModule {
  const m = stages.find((s) => s.name === name);
  if (!m)
    throw ERR_UNKNOWN_SERVICE(
      name,
      stages.map((s) => s.name),
    );
  return m;
}

export function serviceNames(stages: readonly StageModule[] = BUILTIN_STAGES): string[] {
  return stages.map((s) => s.name);
}

/** The services `cordon up` runs in one process for this configuration. */
export function servicesFor(config: CordonConfig, stages: readonly StageModule[] = BUILTIN_STAGES): string[] {
  return stagesEnabled(stages, config).map((s) => s.name);
}

/** Whether this process's stages check producer signatures (the `trust.signedRecords` setting). */
export function verifyRecordsFor(config: CordonConfig, bus: Bus): boolean {
  const s = config.trust?.signedRecords ?? 'auto';
  return s === 'auto' ? bus.kind === 'kafka' : s === 'required';
}

/** Start one stage by name with its section of the configuration. */
export async function startService(name: string, deps: ServiceDeps): Promise<RunningService> {
  const module = moduleOf(name, deps.stages ?? BUILTIN_STAGES);
  const lazy: { opened: Promise<Store> | null; reading: Promise<Store> | null } = { opened: null, reading: null };
  const store = deps.store
    ? () => Promise.resolve(deps.store!)
    : () => (lazy.opened ??= openStore(deps.config, deps.ctx));
  const readStore = () => (lazy.reading ??= openReadStore(deps.config, deps.ctx));
  const running = await runStage(module, {
    bus: deps.bus,
    ctx: deps.ctx,
    config: deps.config[name],
    env: { dataDir: deps.config.dataDir, store, readStore },
    ...(deps.telemetry ? { telemetry: deps.telemetry } : {}),
    verifyRecords: verifyRecordsFor(deps.config, deps.bus),
    requireSigned: (deps.config.trust?.requireSigned ?? []).map((t) =>
      t === 'packets' ? TOPICS.packets : TOPICS.blockStatus,
    ),
  });
  const stop = running.stop;
  return Object.assign(running, {
    stop: async () => {
      await stop();
      // a store the stage opened is closed with it
      if (lazy.reading) await (await lazy.reading.catch(() => null))?.close();
      if (lazy.opened && !deps.store) await (await lazy.opened).close();
    },
  });
}

/** The consumer groups and topics of these services, in list order (caught up on all of them = drained). */
export function pipelineOf(
  names: string[],
  config?: CordonConfig,
  stages: readonly StageModule[] = BUILTIN_STAGES,
): StageInput[] {
  return stages.filter((s) => names.includes(s.name)).flatMap((s) => s.inputs(s.config.parse(config?.[s.name] ?? {})));
}

/** Wait until each group has consumed its topic up to the end offsets seen now. */
export async function waitCaughtUp(bus: Bus, pairs: StageInput[], timeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const { group, topic } of pairs) {
    const ends = await bus.admin.endOffsets(topic);
    for (;;) {
      const committed = await bus.admin.committedOffsets(group, topic);
      const behind = [...ends].filter(([p, end]) => end > 0n && (committed.get(p) ?? 0n) < end);
      if (behind.length === 0) break;
      if (Date.now() > deadline)
        throw new Error(`group ${group} is still behind on ${topic} partitions ${behind.map(([p]) => p).join(',')}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
