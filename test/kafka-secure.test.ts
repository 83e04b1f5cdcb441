/**
 * The secured test broker (infra/kafka/start.sh --secure: SASL_SSL, SCRAM-SHA-512, ACLs from
 * infra/kafka/acls.txt) and Cordon's Kafka adapter with a client configuration. The file starts
 * its own broker on free ports and a run dir of its own, never the suite's, and stops it.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { createKafkaBus, loadKafkaClientConfig, readTable, type Bus } from '@cordon/bus';
import { agentStage, makeEnrollToken } from '@cordon/agent';
import { effectiveStatus, statusReport } from '@cordon/policy';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, blockKey, codecFor, TOPICS } from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { canUseNetns, ipBlockDecision, makePair, waitFor } from '@cordon/testkit';

const ROOT = join(import.meta.dirname, '..', '..');
const INFRA = join(ROOT, 'infra', 'kafka');
const CLI = join(ROOT, 'services', 'cli', 'bin', 'cordon.js');

const has = (tool: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
};
// javac: SecureSetup.java runs as a single-file source program (a JDK, not only a JRE)
const missing = ['java', 'javac', 'mvn', 'openssl'].find((t) => !has(t));
const skip: string | false = missing
  ? `needs ${missing} (infra/kafka/deps.sh; the secured broker makes certificates with openssl)`
  : false;

/**
 * kcat links librdkafka, whose SCRAM client before 2.6.1 sends a nonce that Kafka 4 refuses
 * (librdkafka#4895, the broker's fix for CVE-2024-56128): Debian 12's kcat has 2.0.2. The
 * librdkafka client of these tests is infra/kafka/rdkcat (kcat's flags on PyPI's confluent-kafka,
 * whose wheel bundles a current librdkafka), installed by infra/kafka/rdkafka-install.sh (deps.sh
 * runs it; cached, so this call returns at once once it is there).
 */
function rdkafkaClient(): { bin: string; skip: false } | { bin: ''; skip: string } {
  if (skip) return { bin: '', skip };
  let bin: string;
  try {
    bin = execFileSync('bash', [join(INFRA, 'rdkafka-install.sh')], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 300_000,
    }).trim();
  } catch (err) {
    return {
      bin: '',
      skip: `the librdkafka client could not be installed: ${String((err as { stderr?: string }).stderr ?? err)}`,
    };
  }
  const v = /librdkafka (\d+)\.(\d+)\.(\d+)/.exec(execFileSync(bin, ['-V'], { encoding: 'utf8' }));
  const [maj, min, pat] = v ? v.slice(1).map(Number) : [0, 0, 0];
  const ok = maj! > 2 || (maj === 2 && (min! > 6 || (min === 6 && pat! >= 1)));
  return ok
    ? { bin, skip: false }
    : {
        bin: '',
        skip: `${bin} links librdkafka ${v ? v.slice(1).join('.') : '?'}, whose SCRAM Kafka 4 refuses (librdkafka#4895)`,
      };
}
const rdk = rdkafkaClient();

/** A port whose next one is free too (the controller's). */
async function freePortPair(): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<boolean>((resolve) => {
      const s = createServer();
      s.once('error', () => resolve(false));
      s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
    });
  for (let i = 0; i < 50; i++) {
    const port = 30_000 + Math.floor(Math.random() * 20_000);
    if ((await tryListen(port)) && (await tryListen(port + 1))) return port;
  }
  throw new Error('no two free consecutive ports');
}

const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeout = 180_000) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(cmd, args, { env: { ...process.env, ...env }, timeout }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

let port = 0;
let runDir = '';
let env: NodeJS.ProcessEnv = {};
let brokers = '';
let clients = '';
const buses: Bus[] = [];

/** A bus authenticated as `principal`, from its client configuration. */
function busAs(principal: string, file = join(clients, `${principal}.properties`)): Bus {
  const c = loadKafkaClientConfig(file);
  const bus = createKafkaBus({
    brokers: c.brokers ?? [brokers],
    security: c.security,
    clientId: `test-${principal}`,
    ctx: createContext({ log: silentLogger }),
  });
  buses.push(bus);
  return bus;
}

const rec = (k: string) => ({ key: Buffer.from(k), value: Buffer.from(`value of ${k}`) });

before(
  async () => {
    if (skip) return;
    port = await freePortPair();
    runDir = mkdtempSync(join(tmpdir(), `cordon-kafka-secure-${port}-`));
    env = {
      KAFKA_PORT: String(port),
      KAFKA_CONTROLLER_PORT: String(port + 1),
      KAFKA_RUN_DIR: runDir,
      KAFKA_BROKERS: '',
    };
    const r = await run('bash', [join(INFRA, 'start.sh'), '--secure'], env);
    assert.equal(r.code, 0, r.stderr);
    brokers = /^KAFKA_BROKERS=(.*)$/m.exec(r.stdout)![1]!;
    clients = /^KAFKA_CLIENT_CONFIG_DIR=(.*)$/m.exec(r.stdout)![1]!;
    const admin = busAs('admin');
    await admin.admin.ensureTopics(
      [TOPICS.policy, TOPICS.blocks, TOPICS.logs, TOPICS.agentCommands, TOPICS.alerts].map((name) => ({
        name,
        partitions: 2,
        cleanupPolicy: 'delete' as const,
        retentionMs: 3_600_000,
      })),
    );
    // the rest as Cordon makes them (the enforcer's status topic among them)
    await admin.admin.ensureTopics(allTopicSpecs());
  },
  { timeout: 240_000 },
);

after(async () => {
  if (skip) return;
  await Promise.allSettled(buses.map((b) => b.close()));
  await run('bash', [join(INFRA, 'stop.sh')], env);
  rmSync(runDir, { recursive: true, force: true });
});

test(
  'start.sh --secure: one client config per principal, 0600 in a 0700 dir, and no password in server.properties for others to read',
  { skip, timeout: 30_000 },
  () => {
    const listing = execFileSync('ls', ['-la', clients], { encoding: 'utf8' });
    for (const p of ['admin', 'agent-test', 'watchdog-test', 'responder', 'manager', 'dpi', 'sink', 'coordinator']) {
      assert.match(listing, new RegExp(`^-rw------- .* ${p}\\.properties$`, 'm'), `${p}: ${listing}`);
    }
    assert.match(execFileSync('stat', ['-c', '%a', clients], { encoding: 'utf8' }), /^700/);
    assert.match(execFileSync('stat', ['-c', '%a', join(runDir, 'server.properties')], { encoding: 'utf8' }), /^600/);
    const cfg = readFileSync(join(clients, 'agent-test.properties'), 'utf8');
    for (const line of [
      'security.protocol=SASL_SSL',
      'sasl.mechanisms=SCRAM-SHA-512',
      'sasl.username=agent-test',
      `bootstrap.servers=${brokers}`,
    ])
      assert.ok(cfg.includes(line), line);
    assert.match(cfg, /^ssl\.ca\.location=\/.*ca\.pem$/m);
  },
);

test(
  'without credentials nothing is served: kcat -L is refused, and so is Cordon over plain TLS without SASL',
  { skip, timeout: 60_000 },
  async (t) => {
    if (has('kcat')) {
      const r = await run('kcat', ['-L', '-b', brokers, '-m', '5'], {}, 30_000);
      assert.notEqual(r.code, 0, r.stdout);
      assert.doesNotMatch(r.stdout, /topic "cordon\./);
    } else t.diagnostic('kcat is not installed: only the adapter half of this test ran');
    const file = join(runDir, 'tls-only.properties');
    writeFileSync(file, `security.protocol=SSL\nssl.ca.location=${join(runDir, 'secrets', 'ca.pem')}\n`, {
      mode: 0o600,
    });
    const bus = busAs('tls-only', file);
    await assert.rejects(bus.admin.listTopics(), (err: { code?: string }) => {
      assert.match(String(err.code), /^CORDON_ERR_BUS_KAFKA_(UNREACHABLE|TLS|AUTH)$/);
      return true;
    });
  },
);

test(
  "an agent writes its telemetry and is refused policy and other VMs' logs: TOPIC_AUTHORIZATION_FAILED as CORDON_ERR_BUS_KAFKA_DENIED",
  { skip, timeout: 90_000 },
  async () => {
    const agent = busAs('agent-test');
    const p = agent.producer();
    const [md] = await p.send(TOPICS.logs, [rec('vm-1|/var/log/auth.log')]);
    assert.equal(md!.topic, TOPICS.logs);
    await assert.rejects(p.send(TOPICS.policy, [rec('default')]), (err: { code?: string; message: string }) => {
      assert.equal(err.code, 'CORDON_ERR_BUS_KAFKA_DENIED');
      assert.match(err.message, /TOPIC_AUTHORIZATION_FAILED/);
      assert.match(err.message, /"agent-test"/);
      return true;
    });
    await assert.rejects(p.send(TOPICS.agentCommands, [rec('agent-other')]), { code: 'CORDON_ERR_BUS_KAFKA_DENIED' });
    await p.close();
    // reading: its commands yes, the logs of every VM no
    const c = agent.consumer({ groupId: 'cordon-agent-test-commands', topics: [TOPICS.logs] });
    await assert.rejects(
      c.run(async () => {}),
      { code: 'CORDON_ERR_BUS_KAFKA_DENIED' },
    );
    await c.close();
    const outsider = agent.consumer({ groupId: 'cordon-responder', topics: [TOPICS.agentCommands] });
    await assert.rejects(
      outsider.run(async () => {}),
      { code: 'CORDON_ERR_BUS_KAFKA_DENIED' },
    );
    await outsider.close();
  },
);

for (const principal of ['agent-test', 'watchdog-test']) {
  test(
    `an enforcer (${principal}) may neither decide nor lift a block nor write policy: blocks and policy are refused by the broker (TOPIC_AUTHORIZATION_FAILED); its status report is accepted on cordon.block-status.v1`,
    { skip, timeout: 90_000 },
    async () => {
      const p = busAs(principal).producer();
      const enforcer = principal.startsWith('agent-') ? 'agent:agent-test' : 'watchdog:test';
      const denied = (topic: string) => (err: { code?: string; message: string }) => {
        assert.equal(err.code, 'CORDON_ERR_BUS_KAFKA_DENIED', err.message);
        assert.match(err.message, /TOPIC_AUTHORIZATION_FAILED/);
        assert.match(err.message, new RegExp(`"${principal}"`));
        assert.match(err.message, new RegExp(topic.replace(/\./g, '\\.')));
        return true;
      };
      // a forged decision (of another enforcer's, on the gateway), a tombstone that would lift one, a policy
      const forged = codecFor(TOPICS.blocks).encode(
        ipBlockDecision({ enforcer: 'watchdog:hv1', ip: '10.0.0.1', ttlMs: 60_000 }),
      );
      await assert.rejects(
        p.send(TOPICS.blocks, [{ key: blockKey('watchdog:hv1', '10.0.0.1'), value: forged }]),
        denied(TOPICS.blocks),
      );
      await assert.rejects(
        p.send(TOPICS.blocks, [{ key: blockKey(enforcer, '203.0.113.9'), value: null }]),
        denied(TOPICS.blocks),
      );
      await assert.rejects(p.send(TOPICS.policy, [rec('default')]), denied(TOPICS.policy));
      const report = codecFor(TOPICS.blockStatus).encode({
        block_id: 'b-1',
        enforcer,
        target: '203.0.113.9',
        status: 'applied',
        ts_us: Date.now() * 1000,
        expires_us: (Date.now() + 60_000) * 1000,
        error: null,
      });
      const [md] = await p.send(TOPICS.blockStatus, [{ key: blockKey(enforcer, '203.0.113.9'), value: report }]);
      assert.equal(md!.topic, TOPICS.blockStatus);
      await p.close();
    },
  );
}

test(
  "end to end on the secured broker: the responder's decision is put in force by a real agent (nft in its namespace) as agent-test, whose report on cordon.block-status.v1 reaches the manager's reader",
  { skip: skip || (canUseNetns() ?? false), timeout: 120_000 },
  async () => {
    const pair = makePair(`ks${process.pid % 10000}`);
    const dir = mkdtempSync(join(tmpdir(), 'cordon-kafka-secure-agent-'));
    try {
      const token = makeEnrollToken(randomBytes(32), 'vm-sec', 3_600_000, Date.now());
      const a = await runStage(agentStage, {
        bus: busAs('agent-test'),
        ctx: createContext({ log: silentLogger }),
        config: {
          token,
          stateDir: join(dir, 'state'),
          netconf: { enabled: false },
          heartbeatS: 60,
          enforce: { netns: pair.vm, table: 'cordon_ksec' },
        },
      });
      try {
        const me = `agent:${a.agentId}`;
        const decision = ipBlockDecision({ enforcer: me, ip: pair.attackerIp, ttlMs: 600_000 });
        const responder = busAs('responder').producer();
        await responder.send(TOPICS.blocks, [
          { key: blockKey(me, pair.attackerIp), value: codecFor(TOPICS.blocks).encode(decision) },
        ]);
        await responder.close();
        await waitFor('the element in the agent namespace', async () =>
          (await a.enforcer!.list()).some((e) => e.ip === pair.attackerIp),
        );
        // the manager's reader: the decision with the report under the same key
        const manager = busAs('manager');
        const k = blockKey(me, pair.attackerIp).toString('base64');
        const shown = await waitFor('the report at the manager', async () => {
          const r = (await readTable(manager, TOPICS.blockStatus)).get(k);
          const s = statusReport(r?.key ?? null, r?.value ?? null);
          const { status } = effectiveStatus(decision, s);
          return status === 'applied' ? s : null;
        });
        assert.equal(shown.block_id, decision.block_id);
        assert.equal(shown.enforcer, me);
        // and the agent never wrote a decision: the only record under its key is the responder's
        const d = (await readTable(manager, TOPICS.blocks)).get(k);
        assert.equal(codecFor(TOPICS.blocks).decode(d!.value!).status, 'requested');
      } finally {
        await a.enforcer?.teardown();
        await a.stop();
      }
    } finally {
      pair.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('the responder writes blocks and not policy; the manager writes policy', { skip, timeout: 60_000 }, async () => {
  const responder = busAs('responder').producer();
  await responder.send(TOPICS.blocks, [rec('watchdog:host-1|198.51.100.7')]);
  await assert.rejects(responder.send(TOPICS.policy, [rec('default')]), { code: 'CORDON_ERR_BUS_KAFKA_DENIED' });
  await responder.close();
  const manager = busAs('manager').producer();
  await manager.send(TOPICS.policy, [rec('default')]);
  await manager.close();
});

test(
  "Cordon's adapter round-trips records over SASL_SSL: the agent's command written by the manager is read by the agent in its group",
  { skip, timeout: 90_000 },
  async () => {
    const manager = busAs('manager').producer();
    const sent = Array.from({ length: 20 }, (_, i) => rec(`agent-test-${i}`));
    await manager.send(TOPICS.agentCommands, sent);
    await manager.close();
    const agent = busAs('agent-test');
    const c = agent.consumer({ groupId: 'cordon-agent-test-roundtrip', topics: [TOPICS.agentCommands] });
    const got: string[] = [];
    await new Promise<void>((resolve, reject) => {
      c.run(async (b) => {
        for (const r of b.records) got.push(r.key!.toString());
        if (got.length >= sent.length) resolve();
      }).catch(reject);
    });
    await c.close();
    assert.deepEqual(got.sort(), sent.map((r) => r.key.toString()).sort());
  },
);

test(
  'a wrong password is refused with CORDON_ERR_BUS_KAFKA_AUTH naming the principal, at once, not retried as a network failure',
  { skip, timeout: 60_000 },
  async () => {
    const file = join(runDir, 'wrong.properties');
    writeFileSync(
      file,
      readFileSync(join(clients, 'dpi.properties'), 'utf8').replace(
        /^sasl\.password=.*$/m,
        'sasl.password=not-the-password',
      ),
      { mode: 0o600 },
    );
    const t0 = Date.now();
    await assert.rejects(busAs('dpi', file).admin.listTopics(), (err: { code?: string; message: string }) => {
      assert.equal(err.code, 'CORDON_ERR_BUS_KAFKA_AUTH');
      assert.match(err.message, /"dpi"/);
      assert.doesNotMatch(err.message, /not-the-password/);
      return true;
    });
    assert.ok(Date.now() - t0 < 20_000, `${Date.now() - t0} ms`);
  },
);

test(
  'cordon topics apply with CORDON_KAFKA_CLIENT_CONFIG (admin) works, brokers from the file; a client config others may read is refused with its code',
  { skip, timeout: 120_000 },
  async () => {
    const ok = await run(process.execPath, [CLI, 'topics', 'apply'], {
      CORDON_KAFKA_BROKERS: '',
      CORDON_KAFKA_CLIENT_CONFIG: join(clients, 'admin.properties'),
      CORDON_LOG_LEVEL: 'warn',
    });
    assert.equal(ok.code, 0, ok.stderr);
    const topics = (await busAs('admin').admin.listTopics()).map((t) => t.name);
    for (const t of Object.values(TOPICS)) assert.ok(topics.includes(t), t);
    const open = join(runDir, 'open.properties');
    copyFileSync(join(clients, 'admin.properties'), open);
    chmodSync(open, 0o644);
    const refused = await run(process.execPath, [CLI, 'topics', 'apply', '--kafka-client-config', open], {
      CORDON_KAFKA_BROKERS: '',
      CORDON_LOG_LEVEL: 'warn',
    });
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /CORDON_ERR_BUS_KAFKA_CLIENT_CONFIG/);
    assert.match(refused.stderr, /chmod 600/);
  },
);

test(
  "add-principal.sh adds an agent to the running broker with its role's ACLs",
  { skip, timeout: 120_000 },
  async () => {
    const r = await run('bash', [join(INFRA, 'add-principal.sh'), 'agent-vm42'], env);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), join(clients, 'agent-vm42.properties'));
    const p = busAs('agent-vm42').producer();
    await p.send(TOPICS.logs, [rec('vm-42|/var/log/syslog')]);
    await assert.rejects(p.send(TOPICS.policy, [rec('default')]), { code: 'CORDON_ERR_BUS_KAFKA_DENIED' });
    await p.close();
  },
);

test(
  "a librdkafka client (librdkafka >= 2.6.1: infra/kafka/rdkcat, kcat's flags) with a client config (-F): the agent is refused policy and blocks, writes its logs and its block status; the responder writes blocks",
  { skip: rdk.skip, timeout: 120_000 },
  async () => {
    const produce = (principal: string, topic: string) =>
      new Promise<{ code: number; stderr: string }>((resolve) => {
        const child = execFile(
          rdk.bin,
          ['-F', join(clients, `${principal}.properties`), '-P', '-t', topic, '-K', ':'],
          { timeout: 60_000 },
          (err, _o, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
        );
        child.stdin!.end('k:v\n');
      });
    // SCRAM works: the agent's metadata request is answered (kcat 2.0.2 is refused here)
    const md = await run(rdk.bin, ['-F', join(clients, 'agent-test.properties'), '-L', '-t', TOPICS.logs], {}, 60_000);
    assert.equal(md.code, 0, md.stderr);
    assert.match(md.stdout, new RegExp(`topic "${TOPICS.logs.replace(/\./g, '\\.')}" with \\d+ partitions`));
    for (const topic of [TOPICS.policy, TOPICS.blocks]) {
      const denied = await produce('agent-test', topic);
      assert.equal(denied.code, 1, `${topic}: ${denied.stderr}`);
      assert.match(denied.stderr, /TOPIC_AUTHORIZATION_FAILED/, topic);
    }
    const logs = await produce('agent-test', TOPICS.logs);
    assert.equal(logs.code, 0, logs.stderr);
    const status = await produce('agent-test', TOPICS.blockStatus);
    assert.equal(status.code, 0, status.stderr);
    const blocks = await produce('responder', TOPICS.blocks);
    assert.equal(blocks.code, 0, blocks.stderr);
    // and a wrong password is refused by the broker's SCRAM, not by the client
    const file = join(runDir, 'rdkcat-wrong.properties');
    writeFileSync(
      file,
      readFileSync(join(clients, 'agent-test.properties'), 'utf8').replace(
        /^sasl\.password=.*$/m,
        'sasl.password=nope',
      ),
      { mode: 0o600 },
    );
    const wrong = await run(rdk.bin, ['-F', file, '-L'], {}, 60_000);
    assert.notEqual(wrong.code, 0, wrong.stdout);
    assert.match(wrong.stderr, /SASL_AUTHENTICATION_FAILED|Authentication failed/i);
  },
);

test(
  'infra/kafka/acls.txt is what the stage modules declare (node scripts/kafka-acls.mjs --check)',
  { timeout: 60_000 },
  () => {
    execFileSync(process.execPath, [join(ROOT, 'scripts', 'kafka-acls.mjs'), '--check'], { stdio: 'pipe' });
  },
);
