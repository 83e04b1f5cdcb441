/**
 * The agent loop on real Kafka: an SSH brute force shows up in a guest's auth log, the agent
 * tails it to `logs`, loginspect counts the failures per source and decides a block, and the
 * agent puts the attacker into its nftables set — after which the attacker cannot connect.
 * Needs root (network namespaces, nftables); skips cleanly without it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createKafkaBus, readTable } from '@cordon/bus';
import { allTopicSpecs, codecFor, TOPICS } from '@cordon/schemas';
import { makeEnrollToken, NftEnforcer } from '@cordon/agent';
import { coordinatorStage } from '@cordon/coordinator';
import { loginspectStage } from '@cordon/loginspect';
import { runStage } from '@cordon/stage';
import {
  canUseNetns,
  freshCordonTopics,
  kafkaBrokers,
  makePair,
  putRunningVm,
  waitFor,
  writeEnrollSecret,
} from '@cordon/testkit';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');
const skip = canUseNetns();

const syslogTime = (d: Date) => {
  const m = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][d.getMonth()]!;
  const p = (n: number) => String(n).padStart(2, '0');
  return `${m} ${String(d.getDate()).padStart(2, ' ')} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
};

test(
  'an SSH brute force in a tailed log ends with the attacker blocked by the agent (real Kafka)',
  { skip: skip ?? false, timeout: 180_000 },
  async () => {
    const brokers = kafkaBrokers();
    await freshCordonTopics(brokers);
    const ctx = createContext({ log: silentLogger });
    const bus = createKafkaBus({ brokers, ctx });
    await bus.admin.ensureTopics(allTopicSpecs());
    const dir = mkdtempSync(join(tmpdir(), 'cordon-ssh-'));
    const pair = makePair(`s${process.pid % 10000}`);
    const sshd = pair.listen(22);
    const authLog = join(dir, 'auth.log');
    writeFileSync(authLog, `${syslogTime(new Date())} web1 sshd[900]: Server listening on 0.0.0.0 port 22.\n`);
    // on Kafka stages accept an agent's logs only signed by the key the coordinator registered
    // at its enrollment: the coordinator runs here, with the cluster's enrollment secret and the VM
    const { secret, file: secretFile } = writeEnrollSecret(dir);
    await putRunningVm(bus, 'vm-web-1', [pair.vmIp]);
    const coordinator = await runStage(coordinatorStage, {
      bus,
      ctx,
      config: { enrollSecretFile: secretFile, tickMs: 100 },
      env: { dataDir: dir },
    });
    const token = makeEnrollToken(secret, 'vm-web-1', 3_600_000, Date.now());
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      [
        'agent:',
        `  token: "${token}"`,
        `  stateDir: ${join(dir, 'state')}`,
        '  logStartAt: beginning',
        `  logs: [{ path: ${authLog}, format: auth }]`,
        `  logRoots: [${dir}]`,
        `  enforce: { netns: ${pair.vm}, table: cordon }`,
        '',
      ].join('\n'),
    );
    const agent = spawn(process.execPath, [CLI, 'run', 'agent', '--config', config], {
      env: { ...process.env, CORDON_KAFKA_BROKERS: brokers.join(','), CORDON_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let agentLog = '';
    agent.stderr!.on('data', (d: Buffer) => (agentLog += d.toString()));
    const inspector = await runStage(loginspectStage, { bus, ctx });
    const nft = new NftEnforcer({ ctx, netns: pair.vm });
    try {
      // the agent is up when it has registered
      const until = Date.now() + 60_000;
      while ((await readTable(bus, TOPICS.agents)).size === 0) {
        assert.ok(Date.now() < until, `the agent did not register:\n${agentLog}`);
        await new Promise((r) => setTimeout(r, 200));
      }
      await new Promise((r) => setTimeout(r, 500));
      assert.equal(await pair.canConnect(22), true, 'the attacker reaches sshd before the attack');

      for (let i = 0; i < 12; i++) {
        appendFileSync(
          authLog,
          `${syslogTime(new Date())} web1 sshd[${1000 + i}]: Failed password for root from ${pair.attackerIp} port ${40000 + i} ssh2\n`,
        );
      }
      let blocked: Array<{ set: string; ip: string }> = [];
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline) {
        blocked = await nft.list().catch(() => []);
        if (blocked.some((b) => b.ip === pair.attackerIp)) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(
        blocked.some((b) => b.ip === pair.attackerIp),
        `the attacker is in the agent's set (agent log:\n${agentLog.slice(-2000)})`,
      );
      assert.equal(await pair.canConnect(22, 800), false, 'the attacker cannot connect any more');

      // the agent's report on loginspect's decision, on the block-status topic (it may not write blocks)
      const decision = [...(await readTable(bus, TOPICS.blocks)).values()]
        .map((r) => codecFor(TOPICS.blocks).decode(r.value!))
        .find((d) => d.target.ip === pair.attackerIp);
      assert.ok(decision, 'loginspect decided the block');
      await waitFor('the agent reported the block as applied', async () =>
        [...(await readTable(bus, TOPICS.blockStatus)).values()]
          .map((r) => codecFor(TOPICS.blockStatus).decode(r.value!))
          .some((s) => s.status === 'applied' && s.block_id === decision.block_id && s.target === pair.attackerIp),
      );
    } finally {
      agent.kill('SIGTERM');
      await new Promise((r) => agent.once('exit', r));
      await inspector.stop();
      await coordinator.stop();
      nft.close();
      await bus.close();
      sshd.kill();
      pair.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
