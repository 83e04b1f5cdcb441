/**
 * Watchdog enrollment (issue 21, records bound to their producer): a real watchdog enrolls
 * with a host token (`cordon hosts token --host H`) and the key pair it makes at its first
 * start; the coordinator registers the key on cordon.producers.v1 as `watchdog:<host>`, kind
 * watchdog, host H. Then the attacks: a watchdog with a token signed by another secret, a
 * heartbeat for host C carrying host A's token, an agent's token for a VM named like a host,
 * and a second watchdog for host A with a fresh valid token and a key of its own — none
 * registers a key, each raises an alert, and host A's key stays the first one.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeEnrollToken, makeHostToken, readEnrollToken, readHostToken } from '@cordon/agent';
import { createEmbeddedBus, createKafkaBus, readAll, type Bus } from '@cordon/bus';
import { coordinatorStage, TOKEN_HEADER } from '@cordon/coordinator';
import { createContext, createLogger, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS, type AgentRecord } from '@cordon/schemas';
import { createRecordSigner, runStage } from '@cordon/stage';
import {
  freshCordonTopics,
  kafkaBrokers,
  registeredKey,
  setRevoked,
  waitFor,
  writeEnrollSecret,
} from '@cordon/testkit';
import { watchdogStage, type WatchdogHandle } from '@cordon/watchdog';

const ctx = createContext({ log: process.env.WD_DEBUG ? createLogger('t', 'info') : silentLogger });
const producers = codecFor(TOPICS.producers);

const keyOf = registeredKey;
const alerts = async (bus: Bus) =>
  (await readAll(bus, TOPICS.alerts)).map((r) => codecFor(TOPICS.alerts).decode(r.value!));

const watchdog = (bus: Bus, dir: string, host: string, token: string | undefined, stateDir: string, waitMs = 20_000) =>
  runStage(watchdogStage, {
    bus,
    ctx,
    config: {
      host,
      bridge: 'br0',
      capture: { enabled: false },
      enforce: { enabled: false },
      statusIntervalMs: 100,
      enroll: { ...(token ? { token } : {}), stateDir, waitMs },
    },
    env: { dataDir: dir },
  });

test('host tokens and agent tokens are not interchangeable', () => {
  const secret = randomBytes(32);
  const host = makeHostToken(secret, 'hv1', 60_000, Date.now());
  const agent = makeEnrollToken(secret, 'hv1', 60_000, Date.now());
  assert.equal(readHostToken(host).host, 'hv1');
  assert.throws(() => readEnrollToken(host), { code: 'CORDON_ERR_AGENT_TOKEN' });
  assert.throws(() => readHostToken(agent), { code: 'CORDON_ERR_HOST_TOKEN' });
});

test('cordon hosts token prints a host token signed with the data dir key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-hosts-token-'));
  try {
    const cli = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');
    const out = execFileSync(process.execPath, [cli, 'hosts', 'token', '--host', 'hv7', '--data-dir', dir], {
      env: { ...process.env, CORDON_ENROLL_SECRET: '' },
    })
      .toString()
      .trim();
    const claims = readHostToken(out);
    assert.equal(claims.host, 'hv7');
    assert.ok(claims.exp > Date.now() + 23 * 3_600_000);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function enrollment(bus: Bus, dir: string): Promise<void> {
  const { secret, file: secretFile } = writeEnrollSecret(dir);
  await bus.admin.ensureTopics(allTopicSpecs());
  const coordinator = await runStage(coordinatorStage, {
    bus,
    ctx,
    config: { enrollSecretFile: secretFile, tickMs: 50 },
    env: { dataDir: dir },
  });
  const running: Array<{ stop(): Promise<void> }> = [coordinator];
  try {
    // the genuine watchdog of hv1: its key pair is its own (0600), registered with its token
    const tokenFile = join(dir, 'hv1.token');
    writeFileSync(tokenFile, makeHostToken(secret, 'hv1', 3_600_000, Date.now()) + '\n', { mode: 0o600 });
    const a = (await runStage(watchdogStage, {
      bus,
      ctx,
      config: {
        host: 'hv1',
        bridge: 'br0',
        capture: { enabled: false },
        enforce: { enabled: false },
        statusIntervalMs: 100,
        enroll: { tokenFile, stateDir: join(dir, 'wd-hv1') },
      },
      env: { dataDir: dir },
    })) as unknown as WatchdogHandle & { stop(): Promise<void> };
    running.push(a);
    assert.equal(statSync(join(dir, 'wd-hv1', 'signing-key.json')).mode & 0o777, 0o600);
    assert.equal(statSync(join(dir, 'wd-hv1')).mode & 0o777, 0o700);
    // the stage returned only once its key was registered (it waits for it before capturing)
    const registered = await keyOf(bus, 'watchdog:hv1');
    assert.ok(registered, 'the key is registered before the watchdog starts producing');
    assert.deepEqual(
      [registered.kind, registered.host, registered.vm, registered.producer],
      ['watchdog', 'hv1', null, 'watchdog:hv1'],
    );
    assert.deepEqual(registered.public_key, a.enrollment!.signer.publicKey);
    assert.match(registered.registered_by, /^host-token:[0-9a-f]{32}$/);
    // its heartbeats are signed by it
    const beat = (await readAll(bus, TOPICS.agents)).find((r) => r.key?.toString() === 'watchdog:hv1')!;
    assert.equal(beat.headers['cordon-agent']?.toString(), 'watchdog:hv1');

    // 1. a token signed by another secret (a forged host token)
    const forged = makeHostToken(randomBytes(32), 'hv2', 3_600_000, Date.now());
    running.push(await watchdog(bus, dir, 'hv2', forged, join(dir, 'wd-hv2'), 1500));
    // 2. a second watchdog for hv1 with a fresh, valid token and a key of its own
    const second = makeHostToken(secret, 'hv1', 3_600_000, Date.now());
    const b = (await watchdog(bus, dir, 'hv1', second, join(dir, 'wd-hv1-b'), 1500)) as unknown as WatchdogHandle;
    running.push(b as unknown as { stop(): Promise<void> });
    assert.notDeepEqual(b.enrollment!.signer.publicKey, a.enrollment!.signer.publicKey);
    // 3. a heartbeat for hv3 carrying hv1's (valid) token, signed by the key it presents
    // 4. an agent's enrollment token for a VM called hv4, presented as hv4's host token
    const send = async (
      host: string,
      token: string,
      s = createRecordSigner(`watchdog:${host}`, generateKeyPairSync('ed25519').privateKey),
    ) => {
      const rec: AgentRecord = {
        agent: `watchdog:${host}`,
        vm: '',
        version: '0.1.0',
        config_hash: '',
        identity: JSON.stringify({ host, bridge: 'br0' }),
        heartbeat_us: Date.now() * 1000,
        status: 'running',
        kind: 'watchdog',
        host,
        policy_version: 0,
        capture: null,
        acks: {},
        heartbeat_interval_ms: 1000,
        public_key: s.publicKey,
        processes: null,
        malware: null,
      };
      const p = bus.producer();
      await p.send(TOPICS.agents, [
        s.sign(TOPICS.agents, {
          key: Buffer.from(`watchdog:${host}`),
          value: codecFor(TOPICS.agents).encode(rec),
          headers: { [TOKEN_HEADER]: Buffer.from(token) },
        }),
      ]);
      await p.close();
    };
    await send('hv3', makeHostToken(secret, 'hv1', 3_600_000, Date.now()));
    await send('hv4', makeEnrollToken(secret, 'hv4', 3_600_000, Date.now()));

    const got = await waitFor(
      'the refusals alerted',
      async () => {
        const all = await alerts(bus);
        const forgedHosts = all
          .filter((x) => x.rule_id === 'coordinator:watchdog-forged')
          .map((x) => (JSON.parse(x.evidence) as { claimed_host: string }).claimed_host);
        const replaced = all.filter((x) => x.rule_id === 'coordinator:watchdog-key-replaced');
        return ['hv2', 'hv3', 'hv4'].every((h) => forgedHosts.includes(h)) && replaced.length > 0
          ? { all, forgedHosts, replaced }
          : null;
      },
      30_000,
    );
    assert.equal(got.replaced.length, 1, 'one alert for the second key (its repeats are the same key)');
    assert.match(JSON.parse(got.replaced[0]!.evidence).detail, /first key wins/);
    for (const x of got.all.filter((y) => y.category === 'agent-trust')) {
      assert.equal(x.src_ip, null, 'an enrollment alert names no address: it can never become a block');
      assert.equal(x.dst_ip, null);
    }
    const details = got.all
      .filter((x) => x.rule_id === 'coordinator:watchdog-forged')
      .map((x) => JSON.parse(x.evidence).detail as string);
    assert.ok(details.some((d) => /does not match this cluster's enrollment secret/.test(d)));
    assert.ok(details.some((d) => /the token is for host hv1, the record claims hv3/.test(d)));
    assert.ok(details.some((d) => /not a host token/.test(d)));

    // a moment later: no key but the genuine one was ever published
    await new Promise((r) => setTimeout(r, 500));
    const all = (await readAll(bus, TOPICS.producers)).map((r) => producers.decode(r.value!));
    assert.deepEqual(
      all.map((k) => [k.producer, k.public_key.toString('base64')]),
      [['watchdog:hv1', a.enrollment!.signer.publicKey.toString('base64')]],
    );
    assert.equal(await keyOf(bus, 'watchdog:hv2'), null);
    assert.equal(await keyOf(bus, 'watchdog:hv3'), null);
    assert.equal(await keyOf(bus, 'watchdog:hv4'), null);

    // a restarted coordinator keeps hv1's first key (the binding is on the state topic)
    await coordinator.stop();
    running.shift();
    const again = await runStage(coordinatorStage, {
      bus,
      ctx,
      config: { enrollSecretFile: secretFile, tickMs: 50 },
      env: { dataDir: dir },
    });
    running.push(again);
    // (sent until it is judged: a coordinator judges a host's heartbeats once it owns its partition)
    const thief = createRecordSigner('watchdog:hv1', generateKeyPairSync('ed25519').privateKey);
    const fresh = makeHostToken(secret, 'hv1', 3_600_000, Date.now());
    await waitFor(
      'the replacement after a restart alerted',
      async () => {
        await send('hv1', fresh, thief);
        return (await alerts(bus)).some(
          (x) =>
            x.rule_id === 'coordinator:watchdog-key-replaced' &&
            (JSON.parse(x.evidence).detail as string).includes(thief.publicKey.toString('base64').slice(0, 12)),
        );
      },
      30_000,
    );
    assert.deepEqual((await keyOf(bus, 'watchdog:hv1'))!.public_key, a.enrollment!.signer.publicKey);
  } finally {
    for (const s of running.reverse()) await s.stop().catch(() => undefined);
  }
}

test(
  "a watchdog's key is registered for its host with its host token; forged, wrong-host and agent tokens and a second key for the host are refused with alerts",
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-wd-enroll-'));
    const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
    try {
      await enrollment(bus, dir);
    } finally {
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'the same on real Kafka',
  { timeout: 180_000, skip: process.env.KAFKA_BROKERS ? false : 'KAFKA_BROKERS is not set' },
  async () => {
    const brokers = kafkaBrokers();
    await freshCordonTopics(brokers);
    const dir = mkdtempSync(join(tmpdir(), 'cordon-wd-enroll-k-'));
    const bus = createKafkaBus({ brokers, ctx });
    try {
      await enrollment(bus, dir);
    } finally {
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('a watchdog refuses a host token for another host at start', { timeout: 30_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-wd-wronghost-'));
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    const token = makeHostToken(randomBytes(32), 'hv9', 60_000, Date.now());
    await assert.rejects(watchdog(bus, dir, 'hv1', token, join(dir, 'wd')), (err: Error & { code?: string }) => {
      const text = `${err.message} ${String((err as { cause?: Error }).cause?.message)}`;
      assert.match(text, /the host token is for host hv9, this watchdog is host hv1/);
      return true;
    });
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  "revoking a watchdog (a compromised host) withdraws its key while it keeps heartbeating, alerts once, and lifting registers the host's key again",
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-wd-revoke-'));
    const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
    const running: Array<{ stop(): Promise<void> }> = [];
    try {
      const { secret, file: secretFile } = writeEnrollSecret(dir);
      await bus.admin.ensureTopics(allTopicSpecs());
      running.push(
        await runStage(coordinatorStage, {
          bus,
          ctx,
          config: { enrollSecretFile: secretFile, tickMs: 50 },
          env: { dataDir: dir },
        }),
      );
      const token = makeHostToken(secret, 'hv1', 3_600_000, Date.now());
      const wd = (await watchdog(bus, dir, 'hv1', token, join(dir, 'wd-hv1'))) as unknown as WatchdogHandle & {
        stop(): Promise<void>;
      };
      running.push(wd);
      const genuine = wd.enrollment!.signer.publicKey;
      assert.deepEqual((await keyOf(bus, 'watchdog:hv1'))?.public_key, genuine);

      await setRevoked(bus, 'watchdog:hv1', true, 1, 'hypervisor compromised (ticket 4712)');
      await waitFor('the key withdrawn', async () => (await keyOf(bus, 'watchdog:hv1')) === null, 10_000, 50);
      // it keeps heartbeating (every 100 ms) with its token and key: nothing registers it again
      await new Promise((r) => setTimeout(r, 1_500));
      assert.equal(await keyOf(bus, 'watchdog:hv1'), null, 'still withdrawn after 15 heartbeats');
      const revokedAlerts = (await alerts(bus)).filter((a) => a.rule_id === 'coordinator:watchdog-revoked');
      assert.equal(revokedAlerts.length, 1, 'one alert, not one a heartbeat');
      assert.equal(revokedAlerts[0]!.src_ip, null, 'it names no address: it can never become a block');
      assert.match(JSON.parse(revokedAlerts[0]!.evidence).detail, /hypervisor compromised/);

      await setRevoked(bus, 'watchdog:hv1', false, 2);
      const back = await waitFor('the key registered again', () => keyOf(bus, 'watchdog:hv1'), 10_000, 50);
      assert.deepEqual(back.public_key, genuine, "the host's bound key, not a new one");
    } finally {
      for (const s of running.reverse()) await s.stop().catch(() => undefined);
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
