/**
 * Kill the flows processor mid-stream (SIGKILL: no goodbye, no last checkpoint), restart it,
 * and check that every flow arrives exactly once with the counts the pure stage gives —
 * through real `cordon run flows` processes, on the embedded bus and on real Kafka.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, createKafkaBus, readRange, type Bus } from '@cordon/bus';
import { codecFor, TOPICS, type FlowRecord, type PacketBatch } from '@cordon/schemas';
import { FlowTable, parseFlowTableConfig } from '@cordon/flows';
import { applyTopics, buildDemoCapture, replayCapture } from '@cordon/cli';
import { readCapture } from '@cordon/pcap';
import { freshCordonTopics, kafkaBrokers, tempDir, type AfterHook } from '@cordon/testkit';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');
const ctx = createContext({ log: silentLogger });

async function expectedFlows(file: string): Promise<Map<string, FlowRecord>> {
  const table = new FlowTable(parseFlowTableConfig({}));
  const out = new Map<string, FlowRecord>();
  const packets: PacketBatch['packets'] = [];
  for await (const f of readCapture(file))
    packets.push({ ts_us: f.ts_us, seq: f.seq, orig_len: f.orig_len, frame: f.frame });
  const sensor = 'crash-test';
  for (const b of [
    { batch_id: 'all', sensor, vm: null, linktype: 1, end_of_source: false, recovery_of: null, packets },
    { batch_id: 'eos', sensor, vm: null, linktype: 1, end_of_source: true, recovery_of: null, packets: [] },
  ]) {
    for (const f of table.processBatch(b).flows) out.set(f.record.flow_id, f.record);
  }
  return out;
}

async function emitted(bus: Bus): Promise<FlowRecord[]> {
  const codec = codecFor(TOPICS.flows);
  const out: FlowRecord[] = [];
  await readRange(bus, TOPICS.flows, (r) => out.push(codec.decode(r.value!)));
  return out;
}

function runCli(
  args: string[],
  env: NodeJS.ProcessEnv,
): { child: ChildProcess; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }> } {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, CORDON_LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, stderr })),
  );
  return { child, exit };
}

interface World {
  env: NodeJS.ProcessEnv;
  open(): Bus;
  /** The embedded bus is one process's at a time: close it before a child opens it. */
  exclusive: boolean;
  /** How many flow records are out now, while the child runs. */
  emittedSoFar(bus: Bus): Promise<number>;
}

async function scenario(t: AfterHook, world: World): Promise<void> {
  const dir = tempDir(t, 'crash');
  const pcap = join(dir, 'big.pcap');
  writeFileSync(pcap, buildDemoCapture({ sessions: 1500, seed: 7 }));
  const config = join(dir, 'cordon.yaml');
  // small batches and frequent checkpoints, so a kill lands between checkpoints mid-stream
  writeFileSync(config, 'flows:\n  maxBatchRecords: 4\n  checkpointEveryBatches: 7\n');
  const expected = await expectedFlows(pcap);
  assert.ok(expected.size > 1000, `${expected.size} flows expected`);

  let bus = world.open();
  await applyTopics(bus);
  const report = await replayCapture({ bus, ctx, file: pcap, sensor: 'crash-test', batchPackets: 8 });
  assert.equal(report.error, undefined);
  if (world.exclusive) await bus.close();

  // first run: killed once a quarter of the flows are out
  const first = runCli(['run', 'flows', '--config', config], world.env);
  const deadline = Date.now() + 120_000;
  let seen = 0;
  for (;;) {
    seen = await world.emittedSoFar(bus);
    if (seen >= expected.size / 4) break;
    if (Date.now() > deadline) throw new Error(`the flows service emitted only ${seen} flows in 2 minutes`);
    await new Promise((r) => setTimeout(r, 10));
  }
  first.child.kill('SIGKILL');
  const died = await first.exit;
  assert.equal(
    died.signal,
    'SIGKILL',
    `the first run was killed mid-stream (it exited ${died.code}: ${died.stderr.slice(-500)})`,
  );

  if (world.exclusive) bus = world.open();
  const before = await emitted(bus);
  assert.ok(before.length < expected.size, `killed mid-stream: ${before.length} of ${expected.size} flows were out`);
  if (world.exclusive) await bus.close();

  // second run: resumes from the checkpoints and stops when it has caught up
  const second = runCli(['run', 'flows', '--config', config, '--exit-when-idle'], {
    ...world.env,
    CORDON_LOG_LEVEL: 'debug',
  });
  // a restart that never catches up is a failure with its log, not a hung suite
  const guard = setTimeout(() => second.child.kill('SIGKILL'), 180_000);
  const done = await second.exit;
  clearTimeout(guard);
  assert.equal(
    done.code,
    0,
    `the restarted flows service finished cleanly (exit ${done.code}, signal ${done.signal}): ${done.stderr.slice(-3000)}`,
  );

  if (world.exclusive) bus = world.open();
  const all = await emitted(bus);
  const ids = new Map<string, number>();
  for (const f of all) {
    ids.set(f.flow_id, (ids.get(f.flow_id) ?? 0) + 1);
    assert.deepEqual({ ...f }, { ...expected.get(f.flow_id) }, `flow ${f.flow_id} has the counts the pure stage gives`);
  }
  const missing = [...expected.keys()].filter((id) => !ids.has(id));
  const twice = [...ids].filter(([, n]) => n > 1);
  assert.deepEqual(missing, [], 'no flow lost');
  assert.deepEqual(twice, [], 'no flow emitted twice');
  await bus.close();
}

describe('flows processor killed mid-stream and restarted', { timeout: 600_000 }, () => {
  test('on the embedded bus', async (t) => {
    const dataDir = tempDir(t, 'crash-data');
    await scenario(t, {
      env: { CORDON_DATA_DIR: dataDir, CORDON_KAFKA_BROKERS: '' },
      open: () => createEmbeddedBus({ dataDir, ctx }),
      exclusive: true,
      // the child owns the data dir; its flows log grows by one framed record per flow
      // (~200 bytes), which is enough to know it is a quarter of the way through
      emittedSoFar: async () => {
        const dirPath = join(dataDir, 'bus', 'topics', encodeURIComponent(TOPICS.flows));
        let bytes = 0;
        for (const f of existsSync(dirPath) ? readdirSync(dirPath) : []) bytes += statSync(join(dirPath, f)).size;
        return Math.floor(bytes / 200);
      },
    });
  });

  test('on Kafka', async (t) => {
    const brokers = kafkaBrokers();
    await freshCordonTopics(brokers);
    await scenario(t, {
      env: {
        CORDON_KAFKA_BROKERS: brokers.join(','),
        CORDON_DATA_DIR: tempDir(t, 'crash-data'),
      },
      open: () => createKafkaBus({ brokers, ctx }),
      exclusive: false,
      emittedSoFar: async (bus) =>
        [...(await bus.admin.endOffsets(TOPICS.flows)).values()].reduce((a, b) => a + Number(b), 0),
    });
  });
});
