/** A socket that starts listening inside the guest becomes a netconf alert naming it and its process. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { readRange } from '@cordon/bus';
import { codecFor, TOPICS, type Alert } from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { agentStage, makeEnrollToken } from '@cordon/agent';
import { applyTopics, loadConfig, openBus, startService } from '@cordon/cli';

test(
  'a new listening socket in the guest is an alert with its address, port and process',
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-netconf-'));
    const ctx = createContext({ log: silentLogger });
    const config = loadConfig({ env: {}, flags: { dataDir: join(dir, 'data') } });
    const bus = openBus(config, ctx);
    const server = createServer();
    try {
      await applyTopics(bus);
      const netconf = await startService('netconf', { bus, ctx, config });
      const agent = await runStage(agentStage, {
        bus,
        ctx,
        config: {
          token: makeEnrollToken(randomBytes(32), 'vm-app-1', 3_600_000, Date.now()),
          stateDir: join(dir, 'agent'),
          enforce: { enabled: false },
          netconf: { intervalS: 0.3 },
        },
      });
      await new Promise((r) => setTimeout(r, 500)); // the baseline snapshot is in
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
      const port = (server.address() as { port: number }).port;
      let found: Alert | undefined;
      const deadline = Date.now() + 20_000;
      while (!found && Date.now() < deadline) {
        await readRange(bus, TOPICS.alerts, (r) => {
          const a = codecFor(TOPICS.alerts).decode(r.value!);
          if (a.rule_id === 'netconf:new-listening-socket' && a.signature.includes(`127.0.0.1:${port}`)) found = a;
        });
        if (!found) await new Promise((r) => setTimeout(r, 200));
      }
      assert.ok(found, 'an alert for the new socket');
      assert.equal(found.vm, 'vm-app-1');
      assert.match(found.signature, /\(node\)|\(MainThread\)/, 'the owning process is named');
      await agent.stop();
      await netconf.stop();
    } finally {
      server.close();
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
