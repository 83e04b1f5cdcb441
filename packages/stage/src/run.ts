import { randomUUID } from 'node:crypto';
import { followTable, type Bus, type ConsumedRecord, type ProduceRecord, type TableFollower } from '@cordon/bus';
import { childContext, describeConfigIssues, describeError, type Context } from '@cordon/runtime';
import { codecFor, deadLetter, type TopicName } from '@cordon/schemas';
import type { Store } from '@cordon/store';
import { startLoop, type RunningLoop } from './consume.js';
import { ERR_STAGE_CONFIG, ERR_STAGE_FAILED, ERR_STAGE_UNDECLARED_READ } from './errors.js';
import type { RunningStage, Stage, StageEnv, StageModule } from './module.js';
import type { RecordSigner } from './record-sign.js';
import { lazyProducerKeys, RecordTrust } from './record-trust.js';
import { StageTelemetry } from './telemetry.js';

export interface RunStageDeps {
  bus: Bus;
  ctx: Context;
  /** The stage's configuration section as written; validated here (unknown keys are errors). */
  config?: unknown;
  env?: Partial<StageEnv>;
  /** The process's metrics registry (a private one when absent). */
  telemetry?: StageTelemetry;
  /**
   * Check that records on the topics agents and watchdogs write are signed by an enrolled
   * producer and bound to its VM or host (record-trust.ts). Default: on a Kafka bus, where any
   * client may write; off on the embedded bus, whose only writers are this process's stages.
   */
  verifyRecords?: boolean;
  /**
   * Topics checked only when signed (`packets`, `block-status`, `alerts`) on which an unsigned
   * record is refused too — once every watchdog of the cluster enrolls (trust.requireSigned).
   */
  requireSigned?: readonly string[];
}

function noStore(): Promise<Store> {
  return Promise.reject(new Error('this process gives its stages no ClickHouse store'));
}

/** Validate a stage's configuration section with its module's schema. */
export function parseStageConfig<Cfg>(module: StageModule<Cfg>, section: unknown): Cfg {
  const parsed = module.config.safeParse(section ?? {});
  if (!parsed.success)
    throw ERR_STAGE_CONFIG(
      module.name,
      describeConfigIssues(parsed.error.issues.map((i) => ({ ...i, path: [module.name, ...i.path] }))),
    );
  return parsed.data;
}

/**
 * Run one stage module: validate its configuration, hand it the runtime's pieces, and own
 * their lifecycle. `stop()` drains: consume loops stop fetching and finish the batch in
 * flight (outputs acknowledged, offsets committed, revoke callbacks run), followers close,
 * the stage's own cleanup runs (last registered first), then its producer closes.
 */
export async function runStage<Cfg, Extra extends object>(
  module: StageModule<Cfg, Extra>,
  deps: RunStageDeps,
): Promise<RunningStage<Cfg, Extra>> {
  const config = parseStageConfig(module, deps.config);
  const name = module.name;
  const { bus } = deps;
  // what the module says it reads: its principal on a secured Kafka can read nothing else
  const declaredReads = module.reads
    ? new Set([...module.inputs(config).map((i) => i.topic), ...module.reads(config)])
    : null;
  const ctx = childContext(deps.ctx, name);
  const { log, clock } = ctx;
  const telemetry = deps.telemetry ?? new StageTelemetry();
  telemetry.addComponents(deps.ctx.metrics);
  const counters = telemetry.forStage(name);
  const env: StageEnv = {
    dataDir: deps.env?.dataDir ?? process.cwd(),
    store: deps.env?.store ?? noStore,
    readStore: deps.env?.readStore ?? noStore,
  };
  const producer = bus.producer();
  const loops: RunningLoop[] = [];
  const followers: TableFollower[] = [];
  const timers: NodeJS.Timeout[] = [];
  const cleanups: Array<() => Promise<void> | void> = [];
  const removers: Array<() => void> = [];
  let stopping = false;
  let signer: RecordSigner | null = null;
  const trust =
    (deps.verifyRecords ?? bus.kind === 'kafka')
      ? new RecordTrust(
          name,
          lazyProducerKeys(bus, name, clock, log, (f) => {
            followers.push(f);
            f.done.catch((err: unknown) => fail('following the producer keys', err));
          }),
          clock,
          log,
          deps.requireSigned ?? [],
        )
      : null;

  let rejectDone!: (err: unknown) => void;
  let resolveDone!: () => void;
  const done = new Promise<void>((resolve, reject) => {
    resolveDone = resolve;
    rejectDone = reject;
  });
  // the host awaits `done`; until it does, a failure must not count as unhandled
  done.catch(() => undefined);

  const fail = (what: string, err: unknown) => {
    if (stopping) return;
    counters.error(describeError(err).code);
    log.error({ err, stage: name }, `Stage ${name} failed in ${what}.`);
    rejectDone(ERR_STAGE_FAILED.withCause(err, name, what));
  };

  // A followed table of a topic agents and watchdogs write (block status) is held to the same
  // check as a consumed record: a forged or misbound record never reaches the table. It is not
  // dead-lettered or alerted here — every follower would do so again; whoever consumes the
  // topic (the sink) does — only counted, and logged at most once a minute.
  let lastFollowRefusal = 0;
  let followRefusedSince = 0;
  const trustedFollowed = async (r: ConsumedRecord): Promise<boolean> => {
    let value: unknown = null;
    if (r.value !== null) {
      try {
        value = codecFor(r.topic as TopicName).decode(r.value);
      } catch {
        return true; // not decodable: the follower's own handling of a bad record applies
      }
    }
    const refused = await trust!.check(r, value);
    if (!refused) return true;
    counters.error(refused.code);
    ctx.metrics.inc('follow_refused');
    followRefusedSince++;
    const now = clock.now();
    if (now - lastFollowRefusal >= 60_000) {
      log.warn(
        {
          err: describeError(refused),
          topic: r.topic,
          partition: r.partition,
          offset: String(r.offset),
          refused: followRefusedSince,
        },
        'A record of a followed table was refused: it is not bound to an enrolled producer; the table ignores it.',
      );
      lastFollowRefusal = now;
      followRefusedSince = 0;
    }
    return false;
  };

  const send = async (topic: string, records: ProduceRecord[]) => {
    if (records.length === 0) return;
    const s = signer;
    await producer.send(topic, s ? s.signAll(topic, records) : records);
    counters.records(topic, 'out', records.length);
    ctx.metrics.inc('sent', records.length);
  };

  const letter = (record: ConsumedRecord, err: unknown, value?: Buffer | null): ProduceRecord =>
    deadLetter(
      name,
      record,
      { key: record.key, value: value === undefined ? record.value : value },
      err,
      clock.now() * 1000,
    );

  const stage: Stage<Cfg> = {
    name,
    config,
    bus,
    ctx,
    env,
    get stopping() {
      return stopping;
    },
    send,
    deadLetter: (source, record, err) => {
      counters.error(describeError(err).code);
      if (source.topic) counters.records(source.topic, 'dlq', 1);
      return deadLetter(name, source, record, err, clock.now() * 1000);
    },
    consume(spec) {
      const loop = startLoop({ stage: name, bus, ctx, counters, send, letter, fail, trust }, spec);
      loops.push(loop);
      removers.push(telemetry.addLagSource(() => loop.lag()));
      return loop;
    },
    async follow(topic, onRecord, opts = {}) {
      if (declaredReads && !declaredReads.has(topic)) throw ERR_STAGE_UNDECLARED_READ(name, topic);
      const group = `cordon-${name}-follow-${randomUUID()}`;
      const follower = await followTable(
        bus,
        topic,
        group,
        async (r, restoring) => {
          counters.records(topic, 'in', 1);
          if (trust?.covers(topic) && !(await trustedFollowed(r))) return;
          await onRecord(r, restoring);
        },
        opts,
      );
      followers.push(follower);
      follower.done.catch((err: unknown) => fail(`following ${topic}`, err));
      return follower;
    },
    every(ms, what, fn) {
      let busy = false;
      const t = setInterval(() => {
        if (busy || stopping) return;
        busy = true;
        Promise.resolve()
          .then(fn)
          .catch((err: unknown) => {
            counters.error(describeError(err).code);
            log.warn({ err: describeError(err), stage: name }, `${what} failed; the next run tries again.`);
          })
          .finally(() => {
            busy = false;
          });
      }, ms);
      t.unref();
      timers.push(t);
    },
    watch(what, task) {
      task.catch((err: unknown) => fail(what, err));
    },
    onStop(fn) {
      cleanups.push(fn);
    },
    signRecords(s) {
      signer = s;
    },
  };

  let stopped: Promise<void> | null = null;
  const stop = (): Promise<void> =>
    (stopped ??= (async () => {
      stopping = true;
      for (const t of timers) clearInterval(t);
      const step = async (what: string, fn: () => Promise<unknown> | unknown) => {
        try {
          await fn();
        } catch (err) {
          log.warn(
            { err: describeError(err), stage: name },
            `Stopping ${name}: ${what} failed; going on with the rest.`,
          );
        }
      };
      await Promise.all(loops.map((l) => step(`draining group ${l.group}`, () => l.close())));
      for (const f of followers) await step('closing a follower', () => f.close());
      for (const fn of cleanups.reverse()) await step('a cleanup', fn);
      await step('closing the producer', () => producer.close());
      for (const r of removers) r();
      log.info({ stage: name }, `Stage ${name} stopped.`);
      resolveDone();
    })());

  let extra: Extra;
  try {
    extra = await module.start(stage);
  } catch (err) {
    await stop();
    throw err;
  }
  log.debug({ stage: name }, `Stage ${name} started.`);
  // descriptors, not values: a stage may expose live getters (the agent's current FIM watcher)
  const running = Object.defineProperties({}, Object.getOwnPropertyDescriptors(extra ?? {}));
  return Object.assign(running, { name, config, done, stop }) as RunningStage<Cfg, Extra>;
}
