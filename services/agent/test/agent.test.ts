import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, readRange, readTable } from '@cordon/bus';
import { allTopicSpecs, codecFor, TOPICS, type LogBatch } from '@cordon/schemas';
import { applyPolicyFile } from '@cordon/policy';
import { runStage } from '@cordon/stage';
import { waitFor } from '@cordon/testkit';
import { agentStage, makeEnrollToken, parseAgentConfig } from '../src/index.js';

test('the agent registers, ships its log lines, and a restart counts a new generation', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-agent-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
  await bus.admin.ensureTopics(allTopicSpecs());
  const log = join(dir, 'auth.log');
  writeFileSync(log, 'Nov 27 10:00:01 vm sshd[1]: Failed password for root from 10.213.0.66 port 4242 ssh2\n');
  const token = makeEnrollToken(randomBytes(32), 'vm-web-1', 3_600_000, Date.now());
  const config = {
    token,
    stateDir: join(dir, 'state'),
    logs: [{ path: log, format: 'auth' }],
    logRoots: [dir],
    logStartAt: 'beginning' as const,
    enforce: { enabled: false },
    heartbeatS: 60,
  };
  try {
    const a = await runStage(agentStage, { bus, ctx, config });
    assert.equal(a.vm, 'vm-web-1');
    assert.equal(a.identity.generation, 1);
    appendFileSync(log, 'Nov 27 10:00:02 vm sshd[1]: Failed password for root from 10.213.0.66 port 4243 ssh2\n');
    const lines: string[] = [];
    const deadline = Date.now() + 10_000;
    while (lines.length < 2 && Date.now() < deadline) {
      lines.length = 0;
      await readRange(bus, TOPICS.logs, (r) => {
        const b: LogBatch = codecFor(TOPICS.logs).decode(r.value!);
        assert.equal(b.agent, a.agentId);
        assert.equal(b.source, log);
        lines.push(...b.lines.map((l) => l.line.toString()));
      });
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.equal(lines.length, 2);
    await a.stop();

    const b = await runStage(agentStage, { bus, ctx, config });
    assert.equal(b.agentId, a.agentId, 'the same token gives the same agent id');
    assert.equal(b.identity.generation, 2);
    assert.notEqual(b.identity.incarnation, a.identity.incarnation);
    await b.stop();
    const agents = await readTable(bus, TOPICS.agents);
    const rec = codecFor(TOPICS.agents).decode([...agents.values()][0]!.value!);
    assert.equal(rec.status, 'stopping');
    assert.equal(JSON.parse(rec.identity).generation, 2);
    // no line was shipped twice across the restart
    let total = 0;
    await readRange(bus, TOPICS.logs, (r) => (total += codecFor(TOPICS.logs).decode(r.value!).lines.length));
    assert.equal(total, 2);
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the agent watches what its policy on the topic says, and follows changes without a restart', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-agent-policy-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
  await bus.admin.ensureTopics(allTopicSpecs());
  const log = join(dir, 'auth.log');
  writeFileSync(log, 'Nov 27 10:00:01 vm sshd[1]: Failed password for root from 10.213.0.66 port 4242 ssh2\n');
  const etc = join(dir, 'etc');
  mkdirSync(etc);
  writeFileSync(join(etc, 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  const token = makeEnrollToken(randomBytes(32), 'vm-web-1', 3_600_000, Date.now());
  // the agent's own file watches nothing
  const a = await runStage(agentStage, {
    bus,
    ctx,
    config: {
      token,
      stateDir: join(dir, 'state'),
      logRoots: [dir],
      fimRoots: [dir],
      enforce: { enabled: false },
      netconf: { enabled: false },
      heartbeatS: 60,
    },
  });
  const shippedLines = async () => {
    let n = 0;
    await readRange(bus, TOPICS.logs, (r) => (n += codecFor(TOPICS.logs).decode(r.value!).lines.length));
    return n;
  };
  const fileEvents = async () => {
    const out: Array<{ op: string; path: string }> = [];
    await readRange(bus, TOPICS.fim, (r) => out.push(codecFor(TOPICS.fim).decode(r.value!)));
    return out;
  };
  const heartbeatHash = async () =>
    codecFor(TOPICS.agents).decode([...(await readTable(bus, TOPICS.agents)).values()][0]!.value!).config_hash;
  try {
    assert.equal(a.watching.logs.length, 0);
    assert.equal(a.fim, null);
    const before = a.configHash;

    // logs for every agent, file integrity for this VM only, another VM's settings ignored
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        'agents:',
        '  default:',
        `    logs: [{ path: "${log}", format: auth }]`,
        '    logStartAt: beginning',
        '  vms:',
        '    vm-web-1:',
        `      fim: { paths: ["${etc}"], scanIntervalS: 0 }`,
        '    vm-other:',
        `      logs: [{ path: "${join(dir, 'other.log')}" }]`,
        '',
      ].join('\n'),
    );
    await applyPolicyFile({ bus, ctx }, policy);
    await waitFor('the policy to be applied', () => a.fim !== null && a.watching.logs.length === 1);
    assert.equal(a.watching.logs[0]!.path, log);
    await waitFor('the log line to be shipped', async () => (await shippedLines()) === 1);
    await waitFor(
      'the heartbeat to report the new configuration',
      async () => (await heartbeatHash()) === a.configHash,
    );
    assert.notEqual(a.configHash, before);

    writeFileSync(join(etc, 'passwd'), 'root:x:0:0::/root:/bin/sh\nmallory:x:0:0::/:/bin/sh\n');
    await waitFor('the change to be reported', async () =>
      (await fileEvents()).some((e) => e.op === 'changed' && e.path === join(etc, 'passwd')),
    );

    // the policy drops the log: the tailer stops following it, file integrity stays as it was
    const fimBefore = a.fim;
    writeFileSync(
      policy,
      ['agents:', '  vms:', '    vm-web-1:', `      fim: { paths: ["${etc}"], scanIntervalS: 0 }`, ''].join('\n'),
    );
    await applyPolicyFile({ bus, ctx }, policy);
    await waitFor('the log to be dropped', () => a.watching.logs.length === 0);
    assert.equal(a.fim, fimBefore, 'an unchanged part is not restarted');
    appendFileSync(log, 'Nov 27 10:00:09 vm sshd[1]: Failed password for root from 10.213.0.66 port 4243 ssh2\n');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await shippedLines(), 1, 'a log the policy no longer names is not shipped');
  } finally {
    await a.stop();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a policy cannot point the agent outside its roots: /etc/shadow as a log, / for file integrity, 64 hashing threads', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-agent-limits-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
  await bus.admin.ensureTopics(allTopicSpecs());
  const logs = join(dir, 'log');
  const etc = join(dir, 'etc');
  mkdirSync(logs);
  mkdirSync(etc);
  const shadow = join(dir, 'shadow');
  writeFileSync(shadow, 'root:$6$salt$hash:19000:0:99999:7:::\n');
  writeFileSync(
    join(logs, 'auth.log'),
    'Nov 27 10:00:01 vm sshd[1]: Failed password for root from 10.213.0.66 port 4242 ssh2\n',
  );
  const token = makeEnrollToken(randomBytes(32), 'vm-web-1', 3_600_000, Date.now());
  const a = await runStage(agentStage, {
    bus,
    ctx,
    config: {
      token,
      stateDir: join(dir, 'state'),
      logRoots: [logs],
      fimRoots: [etc],
      fimMaxHashThreads: 2,
      enforce: { enabled: false },
      netconf: { enabled: false },
      heartbeatS: 60,
    },
  });
  try {
    const policy = join(dir, 'policy.yaml');
    writeFileSync(
      policy,
      [
        'agents:',
        '  default:',
        `    logs: [{ path: "${shadow}" }, { path: "${logs}/../shadow" }, { path: "${join(logs, 'auth.log')}", format: auth }]`,
        '    logStartAt: beginning',
        `    fim: { paths: ["/", "${etc}"], hashConcurrency: 64, scanIntervalS: 0 }`,
        '',
      ].join('\n'),
    );
    await applyPolicyFile({ bus, ctx }, policy);
    await waitFor('the policy to be applied', () => a.fim !== null);
    assert.deepEqual(
      a.watching.logs.map((l) => l.path),
      [join(logs, 'auth.log')],
      'only the log below logRoots',
    );
    assert.deepEqual(a.watching.fim?.paths, [etc], 'only the tree below fimRoots');
    assert.equal(a.watching.fim?.hashConcurrency, 2, 'hashing threads cut to fimMaxHashThreads');
    await waitFor('the auth line', async () => {
      let n = 0;
      await readRange(bus, TOPICS.logs, (r) => (n += codecFor(TOPICS.logs).decode(r.value!).lines.length));
      return n === 1;
    });
    let shipped = '';
    await readRange(
      bus,
      TOPICS.logs,
      (r) =>
        (shipped += codecFor(TOPICS.logs)
          .decode(r.value!)
          .lines.map((l) => l.line.toString())
          .join('\n')),
    );
    assert.ok(!shipped.includes('$6$'), 'nothing of the shadow file left the machine');
  } finally {
    await a.stop();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test("the agent's own file must keep its paths within its roots", () => {
  const token = makeEnrollToken(randomBytes(32), 'vm-web-1', 3_600_000, Date.now());
  assert.throws(
    () => parseAgentConfig({ token, logs: [{ path: '/etc/shadow' }] }),
    (e: { code?: string; message: string }) => e.code === 'CORDON_ERR_AGENT_CONFIG' && /logs\.0\.path/.test(e.message),
  );
  assert.throws(() => parseAgentConfig({ token, fim: { paths: ['/home'] } }), /fim\.paths\.0/);
  assert.throws(() => parseAgentConfig({ token, logs: [{ path: 'relative.log' }] }), /absolute/);
  assert.equal(parseAgentConfig({ token, logs: [{ path: '/var/log/auth.log' }] }).logRoots[0], '/var/log');
});
