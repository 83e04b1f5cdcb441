/**
 * Revoking an agent (`POST /api/v1/agents/:id/revoke` writes kind `agent` on the policy topic):
 * the agent keeps running — it is compromised, so it does not cooperate — and keeps signing its
 * records with its genuine key. The coordinator withdraws that key from `cordon.producers.v1`,
 * raises one alert, and trusts none of its heartbeats again (its VM is the watchdog's); a log
 * batch the agent signs afterwards is a dead letter at loginspect, never a block. Lifting the
 * revocation registers the key again.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentIdFor, agentStage, loadSigningKey, makeEnrollToken, readEnrollToken } from '@cordon/agent';
import { createEmbeddedBus, readAll, type Bus } from '@cordon/bus';
import { coordinatorStage } from '@cordon/coordinator';
import { loginspectStage } from '@cordon/loginspect';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS, type LogBatch } from '@cordon/schemas';
import { createRecordSigner, runStage } from '@cordon/stage';
import { putRunningVm, registeredKey, setRevoked, waitFor, writeEnrollSecret } from '@cordon/testkit';

const ctx = createContext({ log: silentLogger });
const VM = 'vm-web-1';

const keyOf = async (bus: Bus, agent: string) => (await registeredKey(bus, agent))?.public_key ?? null;
const alerts = async (bus: Bus) =>
  (await readAll(bus, TOPICS.alerts)).map((r) => codecFor(TOPICS.alerts).decode(r.value!));

function authFailures(agent: string, ip: string, id: string): { key: Buffer; value: Buffer } {
  const batch: LogBatch = {
    batch_id: id,
    agent,
    vm: VM,
    source: '/var/log/auth.log',
    format: null,
    lines: Array.from({ length: 6 }, (_, i) => ({
      ts_us: Date.UTC(2024, 5, 1, 12) * 1000,
      offset: i * 100,
      line: Buffer.from(
        `Jun  1 11:59:0${i} web1 sshd[${900 + i}]: Failed password for invalid user admin from ${ip} port ${40000 + i} ssh2\n`,
      ),
    })),
  };
  return { key: Buffer.from(`${VM}|/var/log/auth.log`), value: codecFor(TOPICS.logs).encode(batch) };
}

test(
  'a revoked agent: its key is withdrawn, its heartbeats are not trusted, its signed records are dead letters; lifting it registers the key again',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-revoke-'));
    const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
    const { secret, file: secretFile } = writeEnrollSecret(dir);
    await bus.admin.ensureTopics(allTopicSpecs());
    await putRunningVm(bus, VM, ['10.0.0.1']);
    const coordinator = await runStage(coordinatorStage, {
      bus,
      ctx,
      config: { enrollSecretFile: secretFile, tickMs: 50 },
      env: { dataDir: dir },
    });
    const token = makeEnrollToken(secret, VM, 3_600_000, Date.now());
    const agentId = agentIdFor(readEnrollToken(token));
    const stateDir = join(dir, 'state');
    const agent = await runStage(agentStage, {
      bus,
      ctx,
      config: { token, stateDir, enforce: { enabled: false }, netconf: { enabled: false }, heartbeatS: 0.2 },
    });
    const verdicts = () =>
      [
        ...(
          coordinator as unknown as {
            known: { agents: Map<string, { id: string; heartbeatUs: number; verdict: { distrust?: string } }> };
          }
        ).known.agents.values(),
      ]
        .filter((a) => a.id === agentId)
        .sort((a, b) => b.heartbeatUs - a.heartbeatUs)
        .map((a) => a.verdict.distrust ?? 'trusted');
    try {
      const registered = await waitFor('the agent key registered', () => keyOf(bus, agentId), 30_000);
      await waitFor('the agent trusted', () => verdicts()[0] === 'trusted', 30_000);

      await setRevoked(bus, agentId, true, 1);
      await waitFor('the key withdrawn', async () => (await keyOf(bus, agentId)) === null, 30_000);
      await waitFor('its heartbeats distrusted', () => verdicts()[0] === 'revoked', 30_000);
      // heartbeats go on (0.2 s): the key must not come back, and the alert is not repeated
      await new Promise((r) => setTimeout(r, 1000));
      assert.equal(await keyOf(bus, agentId), null, 'a revoked agent’s key is not registered again');
      assert.equal(verdicts()[0], 'revoked');
      const revokedAlerts = (await alerts(bus)).filter((a) => a.rule_id === 'coordinator:agent-revoked');
      assert.equal(revokedAlerts.length, 1, 'one alert for the revocation');
      assert.equal(revokedAlerts[0]!.vm, VM);
      assert.equal(revokedAlerts[0]!.src_ip, null, 'the alert names no address, so it can never become a block');

      // the compromised agent signs auth failures with its genuine key to get an address blocked
      const signer = createRecordSigner(agentId, loadSigningKey(stateDir, agentId, silentLogger));
      await bus
        .producer()
        .send(TOPICS.logs, [signer.sign(TOPICS.logs, authFailures(agentId, '198.51.100.77', 'after'))]);
      const inspect = await runStage(loginspectStage, {
        bus,
        ctx,
        config: { inspector: { blocks: { baseTtlS: 300 } } },
        verifyRecords: true,
      });
      try {
        const dlq = await waitFor(
          'the batch dead-lettered',
          async () => {
            const d = (await readAll(bus, TOPICS.dlq)).map((r) => codecFor(TOPICS.dlq).decode(r.value!));
            return d.find((x) => x.source_topic === TOPICS.logs) ?? null;
          },
          30_000,
        );
        assert.equal(dlq.error_code, 'CORDON_ERR_RECORD_FORGED');
        await new Promise((r) => setTimeout(r, 300));
      } finally {
        await inspect.stop();
      }
      assert.deepEqual(await readAll(bus, TOPICS.blocks), [], 'nothing a revoked agent says is acted on');

      // lifted: its next heartbeat is trusted again and its key (the same, never replaced) registered
      await setRevoked(bus, agentId, false, 2);
      assert.deepEqual(await waitFor('the key registered again', () => keyOf(bus, agentId), 30_000), registered);
      await waitFor('the agent trusted again', () => verdicts()[0] === 'trusted', 30_000);
    } finally {
      await agent.stop();
      await coordinator.stop();
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
