/**
 * Fault tests: under a steady load of numbered attacks (lib/fault-load.ts), the processes the
 * load goes through are killed with -9 and started again — each service in turn, the broker,
 * one broker of three, `cordon up` — and every record is then counted by its number in
 * ClickHouse as an analyst would: none lost, none doubled. Each test starts its own broker or
 * cluster on its own ports (never the suite's, which other tests share), from
 * CORDON_FAULT_KAFKA_PORT (29480): a single broker there, the cluster two ports up.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createKafkaBus, readTable, type Bus } from '@cordon/bus';
import { allTopicSpecs, TOPICS } from '@cordon/schemas';
import { makeEnrollToken } from '@cordon/agent';
import { coordinatorStage } from '@cordon/coordinator';
import { pipelineOf, replayCapture, waitCaughtUp } from '@cordon/cli';
import { runStage } from '@cordon/stage';
import { createStore } from '@cordon/store';
import { waitFor, writeEnrollSecret } from '@cordon/testkit';
import { ACCOUNTING_SQL, CLI, DEMO_RULES, figures, Load, Service, type Figures, type Row } from './lib/fault-load.js';
import { javaMissing, ownKafka, run } from './lib/own-kafka.js';

const BASE_PORT = Number(process.env.CORDON_FAULT_KAFKA_PORT ?? 29_480);
const ctx = createContext({ log: silentLogger });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const cordon = (args: string[], env: NodeJS.ProcessEnv) => run(process.execPath, [CLI, ...args], env, 120_000);

function report(t: TestContext, world: string, all: Figures[], extra: string): void {
  for (const f of all)
    t.diagnostic(`${world}: ${f.what}: sent ${f.sent}, stored ${f.stored}, lost ${f.lost}, doubled ${f.doubled}`);
  t.diagnostic(`${world}: ${extra}`);
}

function assertExact(all: Figures[], dlq: Row, context: () => string): void {
  for (const f of all) {
    assert.ok(f.sent > 0, `${f.what}: some were sent`);
    assert.equal(f.lost, 0, `${f.what}: none lost (${JSON.stringify(f)})\n${context()}`);
    assert.equal(f.doubled, 0, `${f.what}: none doubled (${JSON.stringify(f)})\n${context()}`);
  }
  assert.equal(Number(dlq.rows), 0, `no dead letters\n${context()}`);
}

function agentYaml(dir: string, token: string, logFile: string): string {
  const file = join(dir, 'cordon.yaml');
  writeFileSync(
    file,
    [
      'agent:',
      `  token: "${token}"`,
      `  stateDir: ${join(dir, 'agent-state')}`,
      '  logStartAt: beginning',
      `  logs: [{ path: ${logFile} }]`,
      `  logRoots: [${dir}]`,
      '  enforce: { enabled: false }',
      '  netconf: { enabled: false }',
      '',
    ].join('\n'),
  );
  return file;
}

const SERVICES = ['agent', 'loginspect', 'dpi', 'responder', 'sink'] as const;

interface KafkaWorld {
  bus: Bus;
  services: Map<string, Service>;
  load: Load;
}

/**
 * The pipeline on Kafka: the coordinator here (agents enroll with it), every stage the load
 * goes through as its own `cordon run` process; `faults` runs under load; then the load stops,
 * the pipeline drains, and the sink's ClickHouse is counted.
 */
async function onKafka(
  t: TestContext,
  world: string,
  brokers: string[],
  faults: (w: KafkaWorld) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-fault-'));
  const bus = createKafkaBus({ brokers, ctx });
  const services = new Map<string, Service>();
  let coordinator: Awaited<ReturnType<typeof runStage>> | null = null;
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    const env = { CORDON_KAFKA_BROKERS: brokers.join(','), CORDON_CLICKHOUSE_URL: '' };
    await cordon(['policy', 'apply', join(DEMO_RULES, 'policy.yaml')], env);
    await cordon(['inventory', 'apply', join(DEMO_RULES, 'inventory.yaml')], env);
    const { secret, file: secretFile } = writeEnrollSecret(dir);
    coordinator = await runStage(coordinatorStage, {
      bus,
      ctx,
      config: { enrollSecretFile: secretFile, tickMs: 200 },
      env: { dataDir: dir },
    });
    const load = new Load(dir, join(dir, 'access.log'), async (pcap) => {
      const r = await replayCapture({ bus, ctx, file: pcap, sensor: 'fault-load', batchPackets: 64 });
      if (r.error) throw new Error(String(r.error));
    });
    const config = agentYaml(dir, makeEnrollToken(secret, 'web-1', 3_600_000, Date.now()), load.logFile);
    for (const name of SERVICES) {
      const data = join(dir, `data-${name}`);
      mkdirSync(data, { recursive: true });
      const s = new Service(name, ['run', name, '--config', config], {
        ...env,
        CORDON_DATA_DIR: data,
        CORDON_LOG_LEVEL: 'info',
      });
      services.set(name, s);
      s.start();
    }
    for (const s of services.values())
      await waitFor(`${s.name} to run`, () => s.log.includes('Service is running.'), 90_000, 100);
    await waitFor('the agent to register', async () => (await readTable(bus, TOPICS.agents)).size > 0, 60_000, 200);

    const t0 = Date.now();
    load.start();
    await faults({ bus, services, load });
    await sleep(2000);
    await load.stop();
    const loadS = (Date.now() - t0) / 1000;

    // drained: the agent has shipped the whole file — its saved position (written only once
    // the broker acknowledged the batch) is the file's end — then every group caught up, in
    // pipeline order. Waiting on the topic instead races the agent's reconnect back-off.
    const size = statSync(load.logFile).size;
    const shipped = () => {
      try {
        const positions = JSON.parse(readFileSync(join(dir, 'agent-state', 'logtail.json'), 'utf8')) as Record<
          string,
          { offset: number }
        >;
        return positions[load.logFile]?.offset ?? 0;
      } catch {
        return 0; // not written yet, or mid-replace
      }
    };
    await waitFor(`the agent to ship all ${size} bytes of the log`, () => shipped() >= size, 180_000, 250);
    const stages = pipelineOf(['loginspect', 'dpi', 'responder', 'sink']);
    await waitCaughtUp(bus, stages, 120_000);
    await waitCaughtUp(bus, stages, 120_000);
    for (const s of services.values()) await s.stop();

    const store = await createStore({ dataDir: join(dir, 'data-sink', 'clickhouse'), ctx });
    try {
      const q = async (sql: string) => (await store.query<Row>(sql))[0]!;
      const all = [
        figures('log lines → loginspect alerts', load.sent.logs, await q(ACCOUNTING_SQL.logAlerts)),
        figures('sessions → dpi alerts', load.sent.sessions, await q(ACCOUNTING_SQL.dpiAlerts)),
        figures('sessions → responder blocks', load.sent.sessions, await q(ACCOUNTING_SQL.blocks)),
      ];
      const dlq = await q(ACCOUNTING_SQL.dlq);
      const restarts = [...services.values()].map((s) => `${s.name} killed ${s.kills}, died ${s.crashes}`).join('; ');
      report(
        t,
        world,
        all,
        `load ${loadS.toFixed(1)} s; dead letters ${dlq.rows}; publish retries ${load.publishRetries}; ${restarts}`,
      );
      const logs = () =>
        [...services.values()].map((s) => `--- ${s.name}\n${(s.history + s.log).slice(-3000)}`).join('\n');
      assertExact(all, dlq, logs);
      // A broker restarting or one of three lost is waited out (producer and consumer alike, for
      // up to 60 s): no service exits for it — only the kill -9s the test sent.
      const died = [...services.values()].filter((s) => s.crashes > 0).map((s) => `${s.name} ${s.crashes}×`);
      assert.deepEqual(died, [], `services exited on their own (${died.join(', ')}):\n${logs()}`);
    } finally {
      await store.close();
    }
  } finally {
    for (const s of services.values()) await s.stop();
    await coordinator?.stop();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('fault tolerance: every record counted by its number in ClickHouse', { timeout: 900_000 }, () => {
  test(
    'Kafka, one broker: kill -9 of each service in turn, then of the broker, under load: 0 lost, 0 doubled',
    { skip: javaMissing(), timeout: 600_000 },
    async (t) => {
      const kafka = ownKafka(BASE_PORT);
      try {
        const brokers = await kafka.start();
        await onKafka(t, 'kafka x1', brokers, async ({ services }) => {
          for (const name of SERVICES) {
            await sleep(2500);
            const s = services.get(name)!;
            await s.kill9();
            await sleep(500);
            s.start();
          }
          await sleep(2500);
          // the broker: kill -9, and back on its data (acks=all: what it acknowledged is on disk)
          kafka.kill9();
          await sleep(1000);
          await kafka.start('--keep-data');
          await sleep(4000);
        });
      } finally {
        await kafka.stop();
      }
    },
  );

  test(
    'Kafka, three brokers: one killed with -9 under load and brought back: 0 lost, 0 doubled',
    { skip: javaMissing(), timeout: 600_000 },
    async (t) => {
      const kafka = ownKafka(BASE_PORT + 2);
      try {
        const brokers = await kafka.start('--brokers', '3');
        assert.equal(brokers.length, 3);
        await onKafka(t, 'kafka x3', brokers, async () => {
          await sleep(4000);
          await kafka.script('cluster.sh', 'kill', '2');
          const down = Date.now();
          await sleep(8000);
          await kafka.script('cluster.sh', 'restart', '2');
          t.diagnostic(`kafka x3: node 2 was down ${((Date.now() - down) / 1000).toFixed(1)} s`);
          await sleep(4000);
        });
      } finally {
        await kafka.stop();
      }
    },
  );

  test(
    'embedded: kill -9 of cordon up under load, twice, and restarts: 0 lost, 0 doubled',
    { timeout: 600_000 },
    async (t) => {
      const dir = mkdtempSync(join(tmpdir(), 'cordon-fault-up-'));
      const data = join(dir, 'data');
      const env = { CORDON_KAFKA_BROKERS: '', CORDON_CLICKHOUSE_URL: '', CORDON_LOG_LEVEL: 'warn' };
      const up = new Service(
        'up',
        ['up', '--no-demo', '--data-dir', data, '--metrics-addr', 'off', '--config', join(dir, 'cordon.yaml')],
        env,
      );
      try {
        const token = (await cordon(['agents', 'token', '--vm', 'web-1', '--data-dir', data], env)).stdout.trim();
        await cordon(['policy', 'apply', join(DEMO_RULES, 'policy.yaml'), '--data-dir', data], env);
        await cordon(['inventory', 'apply', join(DEMO_RULES, 'inventory.yaml'), '--data-dir', data], env);
        // `cordon replay` hands the capture to the running instance (its control socket), or
        // waits for one that is starting; a replay cut by the kill is sent again
        const load = new Load(
          dir,
          join(dir, 'access.log'),
          async (pcap) => {
            await cordon(['replay', '--pcap', pcap, '--sensor', 'fault-load', '--data-dir', data], env);
          },
          { linesPerTick: 4, sessionsPerTick: 10, tickMs: 250 },
        );
        agentYaml(dir, token, load.logFile);
        up.start();
        const running = () => waitFor('cordon up to run', () => up.log.includes('Cordon is running'), 120_000, 100);
        await running();
        const t0 = Date.now();
        load.start();
        for (let i = 0; i < 2; i++) {
          await sleep(5000);
          await up.kill9();
          await sleep(500);
          up.start();
          await running();
        }
        await sleep(3000);
        await load.stop();
        const loadS = (Date.now() - t0) / 1000;

        const count = async (sql: string): Promise<Row> => {
          const { stdout } = await cordon(['query', sql, '--format', 'json', '--data-dir', data], env);
          return JSON.parse(stdout.trim().split('\n')[0]!) as Row;
        };
        // drained when the three counts stop moving
        let all: Figures[] = [];
        let before = '';
        for (const deadline = Date.now() + 120_000; Date.now() < deadline;) {
          all = [
            figures('log lines → loginspect alerts', load.sent.logs, await count(ACCOUNTING_SQL.logAlerts)),
            figures('sessions → dpi alerts', load.sent.sessions, await count(ACCOUNTING_SQL.dpiAlerts)),
            figures('sessions → responder blocks', load.sent.sessions, await count(ACCOUNTING_SQL.blocks)),
          ];
          const now = JSON.stringify(all);
          if (now === before && all.every((f) => f.lost === 0)) break;
          before = now;
          await sleep(2000);
        }
        const dlq = await count(ACCOUNTING_SQL.dlq);
        report(
          t,
          'embedded',
          all,
          `load ${loadS.toFixed(1)} s; dead letters ${dlq.rows}; replays sent again ${load.publishRetries}; cordon up killed ${up.kills}, died ${up.crashes}`,
        );
        assertExact(all, dlq, () => (up.history + up.log).slice(-4000));
      } finally {
        await up.stop();
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});
