import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, readRange, readTable } from '@cordon/bus';
import { allTopicSpecs, codecFor, TOPICS, type LogBatch } from '@cordon/schemas';
import { makeEnrollToken, startAgent } from '../src/index.js';

test('the agent registers, ships its log lines, and a restart counts a new generation', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-agent-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
  await bus.admin.ensureTopics(allTopicSpecs());
  const log = join(dir, 'auth.log');
  writeFileSync(log, 'Nov 27 10:00:01 vm sshd[1]: Failed password for root from 10.213.0.66 port 4242 ssh2\n');
  const token = makeEnrollToken(randomBytes(32), 'vm-web-1', 3_600_000, Date.now());
  const config = { token, stateDir: join(dir, 'state'), logs: [{ path: log, format: 'auth' }], logStartAt: 'beginning' as const, enforce: { enabled: false }, heartbeatS: 60 };
  try {
    const a = await startAgent({ bus, ctx, config });
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

    const b = await startAgent({ bus, ctx, config });
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
