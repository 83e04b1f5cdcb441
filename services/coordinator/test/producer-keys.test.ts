/**
 * An agent's signing key, registered by the coordinator: the real agent makes its key pair at
 * enrollment (0600 in its state dir), its first heartbeat carries the public key with its
 * token, and the coordinator publishes it on `cordon.producers.v1`. Then an attacker who read
 * the token off the agents topic tries to put its own key in place — with the token and
 * without — and a record that claims to be the agent's heartbeat unsigned: all refused, with
 * alerts; the registered key stays the agent's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentIdFor, agentStage, makeEnrollToken, readEnrollToken } from '@cordon/agent';
import { createEmbeddedBus, readAll, readTable, type Bus } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS, type AgentRecord } from '@cordon/schemas';
import { createRecordSigner, PRODUCER_HEADER, PROOF_HEADER, runStage, SIGNATURE_HEADER } from '@cordon/stage';
import { putRunningVm, registeredKey, waitFor, writeEnrollSecret } from '@cordon/testkit';
import { coordinatorStage, TOKEN_HEADER } from '../src/index.js';

const ctx = createContext({ log: silentLogger });
const keyOf = async (bus: Bus, agent: string) => (await registeredKey(bus, agent))?.public_key ?? null;
const alertRules = async (bus: Bus): Promise<string[]> =>
  (await readAll(bus, TOPICS.alerts)).map((r) => codecFor(TOPICS.alerts).decode(r.value!).rule_id);

test(
  'the coordinator registers the key an agent enrolls with; a key replacement without a fresh enrollment, unsigned heartbeats and a weak key are refused',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-producer-keys-'));
    const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
    const { secret, file: secretFile } = writeEnrollSecret(dir);
    await bus.admin.ensureTopics(allTopicSpecs());
    await putRunningVm(bus, 'vm-web-1', ['10.0.0.1']);
    const coordinator = await runStage(coordinatorStage, {
      bus,
      ctx,
      config: { enrollSecretFile: secretFile, tickMs: 50 },
      env: { dataDir: dir },
    });
    const token = makeEnrollToken(secret, 'vm-web-1', 3_600_000, Date.now());
    const agentId = agentIdFor(readEnrollToken(token));
    const stateDir = join(dir, 'state');
    const agent = await runStage(agentStage, {
      bus,
      ctx,
      config: { token, stateDir, enforce: { enabled: false }, netconf: { enabled: false }, heartbeatS: 0.2 },
    });
    try {
      // the key pair is the agent's alone, and the registered key is its public half
      assert.equal(statSync(join(stateDir, 'signing-key.json')).mode & 0o777, 0o600);
      const registered = await waitFor('the agent key registered', () => keyOf(bus, agentId), 30_000);
      const heartbeat = codecFor(TOPICS.agents).decode(
        [...(await readTable(bus, TOPICS.agents)).values()].find((r) => r.key?.toString() === agentId)!.value!,
      );
      assert.deepEqual(registered, heartbeat.public_key);
      const producers = codecFor(TOPICS.producers).decode((await readAll(bus, TOPICS.producers))[0]!.value!);
      assert.deepEqual([producers.producer, producers.kind, producers.vm], [agentId, 'agent', 'vm-web-1']);
      assert.match(producers.registered_by, /^enroll-token:[0-9a-f]{32}$/);

      // an attacker with the token (it travels in a header on the agents topic) and a key of its own
      const mallory = createRecordSigner(agentId, generateKeyPairSync('ed25519').privateKey);
      const forged = (withToken: boolean) => {
        const rec: AgentRecord = {
          ...heartbeat,
          heartbeat_us: Date.now() * 1000,
          public_key: mallory.publicKey,
          identity: JSON.stringify({ ...JSON.parse(heartbeat.identity), incarnation: randomBytes(4).toString('hex') }),
        };
        return mallory.sign(TOPICS.agents, {
          key: Buffer.from(agentId),
          value: codecFor(TOPICS.agents).encode(rec),
          headers: withToken ? { [TOKEN_HEADER]: Buffer.from(token) } : {},
        });
      };
      await bus.producer().send(TOPICS.agents, [forged(false), forged(true)]);
      // a heartbeat as the agent with no signature at all
      const unsigned: AgentRecord = {
        ...heartbeat,
        heartbeat_us: Date.now() * 1000,
        public_key: null,
        identity: JSON.stringify({ ...JSON.parse(heartbeat.identity), incarnation: 'feedf00d' }),
      };
      await bus
        .producer()
        .send(TOPICS.agents, [{ key: Buffer.from(agentId), value: codecFor(TOPICS.agents).encode(unsigned) }]);

      const rules = await waitFor(
        'the refusals alerted',
        async () => {
          const r = await alertRules(bus);
          return r.includes('coordinator:agent-key-replaced') && r.includes('coordinator:agent-unsigned') ? r : null;
        },
        30_000,
      );
      assert.equal(
        rules.filter((r) => r === 'coordinator:agent-key-replaced').length,
        1,
        'one alert for the attempted replacement (its repeats are the same key)',
      );
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(await keyOf(bus, agentId), registered, "the registered key is still the agent's");
      assert.equal((await readAll(bus, TOPICS.producers)).length, 1, 'no other key was ever published');
      // the coordinator still trusts the real agent; the forgeries are judged apart from it
      const known = (
        coordinator as unknown as {
          known: { agents: Map<string, { id: string; verdict: { trusted: boolean; distrust?: string } }> };
        }
      ).known;
      const verdicts = [...known.agents.values()]
        .filter((a) => a.id === agentId)
        .map((a) => a.verdict.distrust ?? 'trusted');
      assert.ok(verdicts.includes('trusted'));
      assert.ok(verdicts.includes('key-replaced'));
      assert.ok(verdicts.includes('unsigned'));

      // an enrollment with a weak key (the neutral point): under it a signature of R = neutral,
      // s = 0 verifies any message in OpenSSL, so anyone could then write as this agent. The
      // coordinator's check refuses the key, so the "proof" does not hold and nothing is registered.
      await putRunningVm(bus, 'vm-web-2', ['10.0.0.2']);
      const token2 = makeEnrollToken(secret, 'vm-web-2', 3_600_000, Date.now());
      const weakAgent = agentIdFor(readEnrollToken(token2));
      const neutral = Buffer.alloc(32);
      neutral[0] = 1;
      const weak: AgentRecord = {
        ...heartbeat,
        agent: weakAgent,
        vm: 'vm-web-2',
        heartbeat_us: Date.now() * 1000,
        public_key: neutral,
        identity: JSON.stringify({ ...JSON.parse(heartbeat.identity), incarnation: 'ab12cd34' }),
      };
      await bus.producer().send(TOPICS.agents, [
        {
          key: Buffer.from(weakAgent),
          value: codecFor(TOPICS.agents).encode(weak),
          headers: {
            [TOKEN_HEADER]: Buffer.from(token2),
            [PRODUCER_HEADER]: Buffer.from(weakAgent),
            [SIGNATURE_HEADER]: Buffer.concat([neutral, Buffer.alloc(32)]),
            [PROOF_HEADER]: Buffer.from([0, 0, 0, 0, 0, 0, 0, 1]),
          },
        },
      ]);
      await waitFor(
        'the weak key refused',
        () =>
          [...known.agents.values()].some((a) => a.id === weakAgent && a.verdict.distrust === 'forged') ? true : null,
        30_000,
      );
      assert.equal(await keyOf(bus, weakAgent), null, 'no weak key registered');
    } finally {
      await agent.stop();
      await coordinator.stop();
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
