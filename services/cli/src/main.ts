import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { makeEnrollToken } from '@cordon/agent';
import { createContext, createLogger, type Context, type Logger } from '@cordon/runtime';
import { StageTelemetry, startMetricsServer, type MetricsServer, type StageModule } from '@cordon/stage';
import { loadConfig, type CordonConfig } from './config.js';
import { ERR_UNKNOWN_SERVICE, ERR_USAGE } from './errors.js';
import { formatTable } from './format.js';
import { replayCapture } from './replay.js';
import { prepareDemo, runDemo } from './demo/index.js';
import { applyTopics, openBus, openStore, pipelineOf, serviceNames, servicesFor, startService, waitCaughtUp, type RunningService } from './services.js';
import { BUILTIN_STAGES, stageList } from './stages.js';
import { inventoryWatchCommand, SOURCE_OPTIONS, vmsCommand } from './vms.js';

const stageHelp = (stages: readonly StageModule[]) =>
  stages.map((m) => `  ${m.name.padEnd(12)} ${m.summary}${m.when === 'configured' ? ' (runs when its section is configured)' : ''}`).join('\n');

const usage = (stages: readonly StageModule[] = BUILTIN_STAGES) => `cordon — server defense for virtualized data centers

Usage:
  cordon up [--pcap FILE] [--no-demo] [--exit] [--services a,b]
                                                 every service in one process (embedded bus + ClickHouse),
                                                 or only those listed
  cordon run <service> [--exit-when-idle]        one service against Kafka + ClickHouse
  cordon replay --pcap FILE [--sensor NAME]      publish a capture (pcap/pcapng) to the packets topic
  cordon topics apply                            create every topic with its partitions, compaction, retention
  cordon query "SQL" [--format table|json]       query ClickHouse
  cordon agents token --vm VM [--ttl-hours N]    an enrollment token for the agent of VM
  cordon dpi --rules FILE [--rules FILE…] --pcap FILE [--no-checksum-validation]   inspect a capture, print EVE alerts
  cordon rules check FILE…                       load rule files, report every rule that fails
  cordon rules update [--source URL|FILE]…       download, verify and install rule sets (default: ET Open; --help for every flag)
  cordon rules list [--format table|json]        the installed rule sets: version, source, files, rules, sha256
  cordon logtest --log FILE [--rules DIR]        run a log file through loginspect, print one JSON line per detection
  cordon policy apply FILE [--dry-run] [--by NAME]   validate a policy (YAML: rule files, detect/prevent, block TTLs), write the policy topic
  cordon inventory apply FILE [--dry-run] [--prune]  validate an inventory (YAML: hosts, VMs, MACs, IPs), write the inventory topic
  cordon inventory watch --source URL [--once] [--format json|table]
                                                 a platform's VMs (vsphere+https://HOST/sdk, libvirt+qemu:///system, file:///F.yaml),
                                                 then its changes and lifecycle events as JSON lines
  cordon vms [--source URL…] [--format table|json]   VMs from the platforms named, else from the inventory topic
                           (vSphere: --credentials FILE or CORDON_VSPHERE_USERNAME/_PASSWORD; --ca FILE or --insecure)
  cordon help

Services (each a stage; \`cordon run <name>\`, and a section of the configuration):
${stageHelp(stages)}

Common flags (or environment):
  --config FILE            YAML configuration (unknown keys are rejected)
  --data-dir DIR           CORDON_DATA_DIR, default ./data (embedded bus and ClickHouse)
  --brokers HOST:PORT,...  CORDON_KAFKA_BROKERS: use Kafka instead of the embedded bus
  --clickhouse-url URL     CORDON_CLICKHOUSE_URL: use a ClickHouse server instead of the embedded engine
  --metrics-addr ADDR      CORDON_METRICS_ADDR, default 127.0.0.1:9464: Prometheus /metrics of \`up\` and \`run\` ("off" disables)
  --stage-module FILE      CORDON_STAGE_MODULES (FILE:FILE…): also load these out-of-tree stages
`;
const USAGE = usage();

const COMMON = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  brokers: { type: 'string' },
  'clickhouse-url': { type: 'string' },
  'metrics-addr': { type: 'string' },
  'stage-module': { type: 'string', multiple: true },
  help: { type: 'boolean', short: 'h' },
} as const;

function parse<T extends Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options: { ...COMMON, ...options }, allowPositionals: true, strict: true });
  } catch (err) {
    throw ERR_USAGE.withCause(err, (err as Error).message);
  }
}

function configFrom(values: Record<string, unknown>, stages: readonly StageModule[] = BUILTIN_STAGES): CordonConfig {
  return loadConfig({
    file: values.config as string | undefined,
    stages,
    flags: {
      dataDir: values['data-dir'] as string | undefined,
      brokers: values.brokers as string | undefined,
      clickhouseUrl: values['clickhouse-url'] as string | undefined,
      metricsAddr: values['metrics-addr'] as string | undefined,
    },
  });
}

/** The stage list of this invocation: built-in, plus --stage-module and CORDON_STAGE_MODULES. */
const stagesFrom = (values: Record<string, unknown>) => stageList((values['stage-module'] as string[] | undefined) ?? []);

/**
 * The first SIGINT/SIGTERM (the process is kept alive until then, or until `dispose`). A
 * second signal while stopping exits at once; a stop that takes longer than `graceMs` is cut
 * short.
 */
function onSignal(log: Logger, graceMs = 10_000): { received: Promise<string>; dispose(): void } {
  let keepAlive: NodeJS.Timeout | null = setInterval(() => undefined, 1 << 30);
  let on: ((sig: string) => void) | null = null;
  const dispose = () => {
    if (keepAlive) clearInterval(keepAlive);
    keepAlive = null;
    if (on) {
      process.off('SIGINT', on);
      process.off('SIGTERM', on);
    }
  };
  const received = new Promise<string>((resolve) => {
    on = (sig: string) => {
      dispose();
      const again = () => {
        log.warn('Second signal: exiting now, without a clean stop.');
        process.exit(130);
      };
      process.once('SIGINT', again);
      process.once('SIGTERM', again);
      setTimeout(() => {
        log.error({ graceMs }, 'The clean stop took too long: exiting now.');
        process.exit(1);
      }, graceMs).unref();
      resolve(sig);
    };
    process.on('SIGINT', on);
    process.on('SIGTERM', on);
  });
  return { received, dispose };
}

/** The process's metrics: one registry for every stage it runs, served at --metrics-addr. */
async function serveMetrics(config: CordonConfig, ctx: Context): Promise<{ telemetry: StageTelemetry; server: MetricsServer | null }> {
  const telemetry = new StageTelemetry({ processMetrics: true });
  telemetry.addComponents(ctx.metrics);
  const server = await startMetricsServer(config.metricsAddr, telemetry, ctx.log);
  if (server) ctx.log.info({ url: server.url }, 'Metrics are served.');
  return { telemetry, server };
}

const out = (s: string) => process.stdout.write(`${s}\n`);

export async function main(argv: string[]): Promise<number> {
  const [cmd, ...rest] = argv;
  switch (cmd) {
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      out(usage(await stageList()));
      return cmd === undefined ? 2 : 0;
    case 'up':
      return up(rest);
    case 'run':
      return run(rest);
    case 'replay':
      return replay(rest);
    case 'topics':
      return topics(rest);
    case 'query':
      return query(rest);
    case 'agents':
      return agents(rest);
    case 'dpi':
      return (await import('@cordon/dpi')).dpiCommand(rest);
    case 'logtest':
      return (await import('@cordon/loginspect')).logtestCommand(rest);
    case 'rules':
      if (rest[0] === 'update' || rest[0] === 'list') return (await import('./rules.js')).rulesCommand(rest);
      return (await import('@cordon/dpi')).rulesCheckCommand(rest);
    case 'policy': {
      const p = await import('@cordon/policy');
      return withBus(rest, p.APPLY_OPTIONS, (deps, args) => p.policyApplyCommand(deps, args));
    }
    case 'inventory': {
      if (rest[0] === 'watch') return inventoryWatch(rest.slice(1));
      const p = await import('@cordon/policy');
      return withBus(rest, p.APPLY_OPTIONS, (deps, args) => p.inventoryApplyCommand(deps, args));
    }
    case 'vms':
      return vms(rest);
    default:
      throw ERR_USAGE(`unknown command "${cmd}"`);
  }
}

/** A command that needs only the bus (from the common flags) and its own flags. */
async function withBus<T extends Record<string, { type: 'string' | 'boolean'; short?: string; multiple?: boolean }>>(
  argv: string[],
  options: T,
  fn: (deps: { bus: ReturnType<typeof openBus>; ctx: Context; out: (line: string) => void; dataDir: string }, args: { values: Record<string, string | boolean | undefined>; positionals: string[] }) => Promise<number>,
): Promise<number> {
  const args = parse(argv, options) as unknown as { values: Record<string, string | boolean | undefined>; positionals: string[] };
  if (args.values.help) return out(USAGE), 0;
  const config = configFrom(args.values);
  const ctx = createContext({ log: createLogger('cordon') });
  const bus = openBus(config, ctx);
  try {
    await applyTopics(bus);
    return await fn({ bus, ctx, out, dataDir: config.dataDir }, args);
  } finally {
    await bus.close();
  }
}

async function up(argv: string[]): Promise<number> {
  const { values } = parse(argv, { pcap: { type: 'string' }, 'no-demo': { type: 'boolean' }, exit: { type: 'boolean' }, services: { type: 'string' } });
  const stages = await stagesFrom(values);
  if (values.help) return out(usage(stages)), 0;
  const config = configFrom(values, stages);
  const known = serviceNames(stages);
  const enabled = servicesFor(config, stages);
  const names = values.services === undefined ? enabled : values.services.split(',').map((s) => s.trim()).filter(Boolean);
  for (const n of names) {
    if (!known.includes(n)) throw ERR_UNKNOWN_SERVICE(n, known);
    if (!enabled.includes(n)) throw ERR_USAGE(`service "${n}" needs its section in the configuration (--config)`);
  }
  const ctx = createContext({ log: createLogger('cordon') });
  mkdirSync(config.dataDir, { recursive: true });
  const bus = openBus(config, ctx);
  const store = await openStore(config, ctx);
  const n = await applyTopics(bus);
  const { telemetry, server } = await serveMetrics(config, ctx);
  ctx.log.info({ dataDir: config.dataDir, bus: bus.kind, store: store.mode, topics: n }, 'Cordon is up: bus, store and topics are ready.');
  // the demo's policy and inventory go on their topics first: the services read them as they start
  const demo = values['no-demo'] ? null : await prepareDemo({ bus, ctx, dataDir: config.dataDir, out }, values.pcap ? { pcap: values.pcap } : {});
  const services: RunningService[] = [];
  let code = 0;
  try {
    for (const name of names) services.push(await startService(name, { bus, ctx, config, store, stages, telemetry }));
    ctx.log.info({ services: services.map((s) => s.name) }, 'Services are running.');
    if (server) out(`metrics: ${server.url}`);
    const failed = Promise.race(services.map((s) => s.done.then(() => `${s.name} stopped`)));
    if (demo) await runDemo({ bus, store, ctx, out }, demo, () => Promise.race([waitCaughtUp(bus, pipelineOf(services.map((x) => x.name), config, stages)), failed]));
    if (!values.exit) {
      out('Cordon is running. Press Ctrl-C to stop.');
      const signal = onSignal(ctx.log);
      try {
        const sig = await Promise.race([signal.received, failed]);
        ctx.log.info({ reason: sig }, 'Stopping.');
      } finally {
        signal.dispose();
      }
    }
  } catch (err) {
    ctx.log.error({ err }, 'Cordon stopped on an error.');
    code = 1;
  } finally {
    for (const s of services.reverse()) await s.stop().catch((err: unknown) => ctx.log.error({ err, service: s.name }, 'A service failed to stop cleanly.'));
    await server?.close();
    await bus.close();
    await store.close();
  }
  return code;
}

async function vms(argv: string[]): Promise<number> {
  const { values } = parse(argv, SOURCE_OPTIONS);
  if (values.help) return out(USAGE), 0;
  const config = configFrom(values);
  const ctx = createContext({ log: createLogger('cordon') });
  const opened: { bus: ReturnType<typeof openBus> | null } = { bus: null };
  try {
    return await vmsCommand(values, { ctx, out, bus: async () => (opened.bus ??= openBus(config, ctx)) });
  } finally {
    await opened.bus?.close();
  }
}

async function inventoryWatch(argv: string[]): Promise<number> {
  const { values } = parse(argv, { ...SOURCE_OPTIONS, once: { type: 'boolean' }, follow: { type: 'boolean' } });
  if (values.help) return out(USAGE), 0;
  const ctx = createContext({ log: createLogger('cordon') });
  const signal = onSignal(ctx.log);
  try {
    return await inventoryWatchCommand(values, { ctx, out, untilSignal: () => signal.received });
  } finally {
    signal.dispose();
  }
}

async function run(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { 'exit-when-idle': { type: 'boolean' } });
  const stages = await stagesFrom(values);
  if (values.help) return out(usage(stages)), 0;
  if (positionals.length !== 1) throw ERR_USAGE(`"cordon run" takes one service name (${serviceNames(stages).join(', ')})`);
  const name = positionals[0]!;
  if (!serviceNames(stages).includes(name)) throw ERR_UNKNOWN_SERVICE(name, serviceNames(stages));
  const config = configFrom(values, stages);
  const ctx = createContext({ log: createLogger(`cordon-${name}`) });
  const bus = openBus(config, ctx);
  const { telemetry, server } = await serveMetrics(config, ctx);
  let code = 0;
  let svc: RunningService | null = null;
  const signal = onSignal(ctx.log);
  try {
    svc = await startService(name, { bus, ctx, config, stages, telemetry });
    ctx.log.info({ service: svc.name, bus: bus.kind, metrics: server?.url ?? 'off' }, 'Service is running.');
    // --exit-when-idle: stop once every input is consumed up to the end seen at start
    // (batch jobs, tests); otherwise run until a signal.
    const idle = values['exit-when-idle'] ? waitCaughtUp(bus, pipelineOf([name], config, stages), 3_600_000) : new Promise<never>(() => undefined);
    await Promise.race([signal.received, svc.done, idle]);
  } catch (err) {
    ctx.log.error({ err }, 'The service failed.');
    code = 1;
  } finally {
    signal.dispose();
    await svc?.stop();
    await server?.close();
    await bus.close();
  }
  return code;
}

async function replay(argv: string[]): Promise<number> {
  const { values } = parse(argv, { pcap: { type: 'string' }, sensor: { type: 'string' }, vm: { type: 'string' }, batch: { type: 'string' } });
  if (values.help) return out(USAGE), 0;
  if (!values.pcap) throw ERR_USAGE('"cordon replay" needs --pcap FILE');
  const config = configFrom(values);
  const ctx: Context = createContext({ log: createLogger('cordon-replay') });
  const bus = openBus(config, ctx);
  try {
    const report = await replayCapture({
      bus, ctx, file: values.pcap,
      ...(values.sensor ? { sensor: values.sensor } : {}),
      ...(values.vm ? { vm: values.vm } : {}),
      ...(values.batch ? { batchPackets: Number(values.batch) } : {}),
    });
    out(JSON.stringify(report));
    if (report.error) {
      process.stderr.write(`cordon: ${report.error.code}: ${report.error.message} (the frames before it were published; a dead letter was written)\n`);
      return 1;
    }
    return 0;
  } finally {
    await bus.close();
  }
}

async function topics(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, {});
  if (positionals[0] !== 'apply') throw ERR_USAGE('usage: cordon topics apply');
  const config = configFrom(values);
  const ctx = createContext({ log: createLogger('cordon') });
  const bus = openBus(config, ctx);
  try {
    await applyTopics(bus);
    const list = await bus.admin.listTopics();
    out(formatTable(list.filter((t) => t.name.startsWith('cordon.')).map((t) => ({ topic: t.name, partitions: t.partitions }))));
  } finally {
    await bus.close();
  }
  return 0;
}

async function query(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { format: { type: 'string' } });
  if (positionals.length !== 1) throw ERR_USAGE('usage: cordon query "SQL"');
  const fmt = values.format ?? 'table';
  if (fmt !== 'table' && fmt !== 'json') throw ERR_USAGE(`--format must be table or json, not "${fmt}"`);
  const config = configFrom(values);
  const ctx = createContext({ log: createLogger('cordon') });
  const store = await openStore(config, ctx);
  try {
    const rows = await store.query(positionals[0]!);
    out(fmt === 'json' ? rows.map((r) => JSON.stringify(r)).join('\n') : formatTable(rows));
  } finally {
    await store.close();
  }
  return 0;
}

/** The cluster's enrollment secret: CORDON_ENROLL_SECRET (hex), else a key file made once under the data dir. */
function enrollSecret(dataDir: string): Buffer {
  const fromEnv = process.env.CORDON_ENROLL_SECRET;
  if (fromEnv) {
    if (!/^[0-9a-fA-F]{64,}$/.test(fromEnv)) throw ERR_USAGE('CORDON_ENROLL_SECRET must be at least 64 hex digits (32 bytes)');
    return Buffer.from(fromEnv, 'hex');
  }
  const file = join(dataDir, 'secrets', 'enroll.key');
  if (!existsSync(file)) {
    mkdirSync(join(dataDir, 'secrets'), { recursive: true, mode: 0o700 });
    writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
}

async function agents(argv: string[]): Promise<number> {
  const { values, positionals } = parse(argv, { vm: { type: 'string' }, 'ttl-hours': { type: 'string' } });
  if (positionals[0] !== 'token' || !values.vm) throw ERR_USAGE('usage: cordon agents token --vm VM [--ttl-hours N]');
  const hours = Number(values['ttl-hours'] ?? 24);
  if (!(hours > 0 && hours <= 24 * 30)) throw ERR_USAGE('--ttl-hours must be between 0 and 720');
  const config = configFrom(values);
  out(makeEnrollToken(enrollSecret(config.dataDir), values.vm, hours * 3_600_000, Date.now()));
  return 0;
}
