import { mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Context, Logger } from '@cordon/runtime';
import type { Bus } from '@cordon/bus';
import type { Store } from '@cordon/store';
import { StageTelemetry, startMetricsServer, type MetricsServer } from '@cordon/stage';
import type { Invocation } from './args.js';
import { configFrom, contextFrom, out, stagesFrom } from './cli-context.js';
import type { CordonConfig } from './config.js';
import { dataDirOwner } from './control/client.js';
import { startControlServer, type ControlServer } from './control/server.js';
import { prepareDemo, runDemo } from './demo/index.js';
import { ERR_ALREADY_RUNNING, ERR_UNKNOWN_SERVICE, ERR_USAGE } from './errors.js';
import {
  applyTopics,
  openBus,
  openReadStore,
  openStore,
  pipelineOf,
  serviceNames,
  servicesFor,
  startService,
  waitCaughtUp,
  type RunningService,
} from './services.js';

/** `cordon up` and `cordon run`: the processes that hold a data dir and serve its control socket. */

export const VERSION = '0.1.0';

/**
 * The first SIGINT/SIGTERM (the process is kept alive until then, or until `dispose`). A
 * second signal while stopping exits at once; a stop that takes longer than `graceMs` is cut
 * short.
 */
export function onSignal(log: Logger, graceMs = 10_000): { received: Promise<string>; dispose(): void } {
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
async function serveMetrics(
  config: CordonConfig,
  ctx: Context,
): Promise<{ telemetry: StageTelemetry; server: MetricsServer | null }> {
  const telemetry = new StageTelemetry({ processMetrics: true });
  telemetry.addComponents(ctx.metrics);
  const server = await startMetricsServer(config.metricsAddr, telemetry, ctx.log);
  if (server) ctx.log.info({ url: server.url }, 'Metrics are served.');
  return { telemetry, server };
}

/**
 * One instance per data dir: a running one is refused with what to do; a process that holds
 * the data dir for a moment (a command run while no instance was up) is waited for.
 */
async function claimDataDir(dataDir: string, waitMs: number, log: Logger): Promise<void> {
  const deadline = Date.now() + waitMs;
  let told = false;
  for (;;) {
    const owner = await dataDirOwner(dataDir);
    if (owner.kind === 'none') return;
    if (owner.kind === 'instance') throw ERR_ALREADY_RUNNING(dataDir, owner.status.pid);
    // past the deadline, opening the bus gives the lock error, with the process named
    if (Date.now() >= deadline) return;
    if (!told)
      log.info({ pid: owner.pid, dataDir }, 'Another cordon process holds the data dir: waiting for it to finish.');
    told = true;
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** The control socket of this process: its bus, and a read-only store opened when first asked. */
async function serveControl(
  config: CordonConfig,
  ctx: Context,
  bus: Bus,
): Promise<{ control: ControlServer; close(): Promise<void> }> {
  let readStore: Promise<Store> | null = null;
  const control = await startControlServer({
    ctx,
    dataDir: config.dataDir,
    version: VERSION,
    bus: () => Promise.resolve(bus),
    readStore: () => (readStore ??= openReadStore(config, ctx)),
  });
  return {
    control,
    async close() {
      await control.close();
      if (readStore) await (await readStore.catch(() => null))?.close();
    },
  };
}

export async function upCommand(inv: Invocation): Promise<number> {
  const stages = await stagesFrom(inv);
  const config = configFrom(inv, stages);
  const known = serviceNames(stages);
  const enabled = servicesFor(config, stages);
  const names =
    inv.str('services') === undefined
      ? enabled
      : inv
          .str('services')!
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
  for (const n of names) {
    if (!known.includes(n)) throw ERR_UNKNOWN_SERVICE(n, known);
    if (!enabled.includes(n)) throw ERR_USAGE(`service "${n}" needs its section in the configuration (--config)`);
  }
  const ctx = contextFrom(inv);
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  await claimDataDir(config.dataDir, inv.num('wait')!, ctx.log);
  const bus = openBus(config, ctx);
  let control: Awaited<ReturnType<typeof serveControl>> | null = null;
  let store: Store | null = null;
  let server: MetricsServer | null = null;
  const services: RunningService[] = [];
  let code = 0;
  try {
    // as soon as the data dir is ours: commands from other terminals wait on it while this starts
    control = await serveControl(config, ctx, bus);
    store = await openStore(config, ctx);
    const n = await applyTopics(bus);
    const metrics = await serveMetrics(config, ctx);
    server = metrics.server;
    ctx.log.info(
      { dataDir: config.dataDir, bus: bus.kind, store: store.mode, topics: n, control: control.control.path },
      'Cordon is up: bus, store and topics are ready.',
    );
    // the demo's policy and inventory go on their topics first: the services read them as they start
    const demo = inv.bool('no-demo')
      ? null
      : await prepareDemo(
          { bus, ctx, dataDir: config.dataDir, out },
          inv.str('pcap') ? { pcap: inv.str('pcap')! } : {},
        );
    for (const name of names)
      services.push(await startService(name, { bus, ctx, config, store, stages, telemetry: metrics.telemetry }));
    ctx.log.info({ services: services.map((s) => s.name) }, 'Services are running.');
    if (server) out(`metrics: ${server.url}`);
    // a stage that serves people says where (the manager: `manager: URL`)
    for (const s of services)
      if (typeof (s as { url?: unknown }).url === 'string') out(`${s.name}: ${(s as unknown as { url: string }).url}`);
    const failed = Promise.race(services.map((s) => s.done.then(() => `${s.name} stopped`)));
    const storeNow = store;
    if (demo)
      await runDemo({ bus, store: storeNow, ctx, out }, demo, () =>
        Promise.race([
          waitCaughtUp(
            bus,
            pipelineOf(
              services.map((x) => x.name),
              config,
              stages,
            ),
          ),
          failed,
        ]),
      );
    if (!inv.bool('exit')) {
      control.control.setState('ready');
      out('Cordon is running. Press Ctrl-C to stop.');
      out(
        `From another terminal: ./cordon query "SELECT …", ./cordon blocks list, ./cordon alerts tail${config.dataDir === resolve('data') ? '' : ` (with --data-dir ${config.dataDir})`}.`,
      );
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
    // first: clients are told "stopping", and then find the data dir free
    await control?.close();
    for (const s of services.reverse())
      await s
        .stop()
        .catch((err: unknown) => ctx.log.error({ err, service: s.name }, 'A service failed to stop cleanly.'));
    await server?.close();
    await bus.close();
    await store?.close();
  }
  return code;
}

export async function runCommand(inv: Invocation): Promise<number> {
  const stages = await stagesFrom(inv);
  const name = inv.args[0]!;
  if (!serviceNames(stages).includes(name)) throw ERR_UNKNOWN_SERVICE(name, serviceNames(stages));
  const config = configFrom(inv, stages);
  const ctx = contextFrom(inv, `cordon-${name}`);
  if (config.bus.kind === 'embedded') {
    mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    await claimDataDir(config.dataDir, inv.num('wait')!, ctx.log);
  }
  const bus = openBus(config, ctx);
  // with the embedded bus this process holds the data dir: it serves the control socket too
  const control = config.bus.kind === 'embedded' ? await serveControl(config, ctx, bus) : null;
  const { telemetry, server } = await serveMetrics(config, ctx);
  let code = 0;
  let svc: RunningService | null = null;
  const signal = onSignal(ctx.log);
  try {
    svc = await startService(name, { bus, ctx, config, stages, telemetry });
    control?.control.setState('ready');
    ctx.log.info({ service: svc.name, bus: bus.kind, metrics: server?.url ?? 'off' }, 'Service is running.');
    // --exit-when-idle: stop once every input is consumed up to the end seen at start
    // (batch jobs, tests); otherwise run until a signal.
    const idle = inv.bool('exit-when-idle')
      ? waitCaughtUp(bus, pipelineOf([name], config, stages), 3_600_000)
      : new Promise<never>(() => undefined);
    await Promise.race([signal.received, svc.done, idle]);
  } catch (err) {
    ctx.log.error({ err }, 'The service failed.');
    code = 1;
  } finally {
    signal.dispose();
    await control?.close();
    await svc?.stop();
    await server?.close();
    await bus.close();
  }
  return code;
}
