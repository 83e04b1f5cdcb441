import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readAll, type Bus, type ConsumedRecord } from '@cordon/bus';
import { codecFor, TOPICS, type FlowRecord, type PacketBatch } from '@cordon/schemas';
import { createContext, Metrics, silentLogger } from '@cordon/runtime';
import { runStage } from '@cordon/stage';
import { tempDir, waitFor } from '@cordon/testkit';
import { flowsStage, stateKey } from '../src/index.js';
import { byId, ensureTopics, expectedFlows, NO_CORPUS, openBus, PARTITIONS, replayRecords } from './bus-fixture.js';
import { batch, pkt, udp } from './frames.js';

const count = async (bus: Bus, topic: string) =>
  [...(await bus.admin.endOffsets(topic)).values()].reduce((n, e) => n + Number(e), 0);
const flowsOf = (recs: ConsumedRecord[]) => recs.map((r) => codecFor(TOPICS.flows).decode(r.value!));

test(
  'the service turns packets into the flows the pure stage gives, DLQs bad input, checkpoints and commits',
  { skip: NO_CORPUS },
  async (t) => {
    const dir = tempDir(t, 'flows');
    const bus = openBus(dir);
    await ensureTopics(bus);
    const records = await replayRecords();
    const expected = expectedFlows(records);
    assert.ok(expected.length >= 10, `${expected.length} expected flows`);
    const producer = bus.producer();
    await producer.send(TOPICS.packets, records);
    await producer.close();

    const metrics = new Metrics();
    const svc = await runStage(flowsStage, {
      bus,
      ctx: createContext({ log: silentLogger, metrics }),
      config: { checkpointEveryBatches: 5, maxBatchRecords: 7 },
    });
    await waitFor(
      'flows and DLQ records',
      async () => (await count(bus, TOPICS.flows)) >= expected.length && (await count(bus, TOPICS.dlq)) >= 2,
    );
    await svc.stop();
    await svc.done;

    const flows = await readAll(bus, TOPICS.flows);
    assert.deepEqual(
      byId(flowsOf(flows)).map((f) => ({ ...f })),
      byId(expected).map((f) => ({ ...f })),
    );
    // Flow records are keyed by the flow's symmetric hash, the key its packets had.
    for (const r of flows) assert.equal(r.key!.length, 16);

    const letters = (await readAll(bus, TOPICS.dlq)).map((r) => codecFor(TOPICS.dlq).decode(r.value!));
    assert.deepEqual(letters.map((l) => l.error_code).sort(), [
      'CORDON_ERR_FLOWS_BAD_FRAME',
      'CORDON_ERR_SCHEMA_WIRE_FORMAT',
    ]);
    for (const l of letters) {
      assert.equal(l.stage, 'flows');
      assert.equal(l.source_topic, TOPICS.packets);
      assert.notEqual(l.source_offset, null);
    }
    const frameLetter = letters.find((l) => l.error_code === 'CORDON_ERR_FLOWS_BAD_FRAME')!;
    const one = codecFor(TOPICS.packets).decode(frameLetter.value!);
    assert.equal(one.packets.length, 1, 'the bad frame travels alone, replayable');
    assert.equal(one.batch_id, 'cut#999');

    const m = metrics.snapshot();
    assert.equal(m['flows.received'], records.length);
    assert.equal(m['flows.flows_emitted'], expected.length);
    assert.equal(m['flows.errors'], 2);
    assert.equal(m['flows.flows_open'], 0);

    // Committed offsets and checkpoints both point at the end of every input partition.
    const ends = await bus.admin.endOffsets(TOPICS.packets);
    assert.deepEqual(await bus.admin.committedOffsets('cordon-flows', TOPICS.packets), ends);
    const states = (await readAll(bus, TOPICS.state)).map((r) => ({
      key: r.key!.toString(),
      st: codecFor(TOPICS.state).decode(r.value!),
    }));
    for (let p = 0; p < PARTITIONS.packets; p++) {
      const last = states.filter((s) => s.key === stateKey(TOPICS.packets, p)).at(-1);
      assert.ok(last, `a checkpoint for partition ${p}`);
      assert.equal(BigInt(last.st.input_offset), ends.get(p));
    }
    await bus.close();
  },
);

test('unknown config keys stop the service before it touches the bus', (t) => {
  const bus = openBus(tempDir(t, 'flows'));
  return assert
    .rejects(
      runStage(flowsStage, { bus, ctx: createContext({ log: silentLogger }), config: { checkpointEvery: 3 } }),
      /unknown key "flows.checkpointEvery"/,
    )
    .finally(() => bus.close());
});

test(
  'killed after emitting flows, before checkpointing: the restart loses no flow and emits none twice',
  { skip: NO_CORPUS },
  async (t) => {
    const dir = tempDir(t, 'flows-crash');
    let bus = openBus(dir);
    await ensureTopics(bus);
    const records = await replayRecords();
    const expected = expectedFlows(records);
    const producer = bus.producer();
    await producer.send(TOPICS.packets, records);
    await producer.close();
    await bus.close();

    const child = spawn(process.execPath, [join(fileURLToPath(new URL('.', import.meta.url)), 'crash-child.js')], {
      env: { ...process.env, CORDON_FLOWS_CRASH_DIR: dir, CORDON_FLOWS_CRASH_AFTER: '6' },
      stdio: 'inherit',
    });
    const signal = await new Promise<NodeJS.Signals | null>((resolve) =>
      child.on('exit', (_code, sig) => resolve(sig)),
    );
    assert.equal(signal, 'SIGKILL', 'the child died mid-stream');

    bus = openBus(dir);
    const before = flowsOf(await readAll(bus, TOPICS.flows));
    assert.ok(
      before.length > 0 && before.length < expected.length,
      `${before.length} of ${expected.length} flows before the crash`,
    );
    const states = await readAll(bus, TOPICS.state);
    assert.ok(states.length > 0, 'the child checkpointed before it died');

    const metrics = new Metrics();
    const svc = await runStage(flowsStage, {
      bus,
      ctx: createContext({ log: silentLogger, metrics }),
      config: { checkpointEveryBatches: 4, maxBatchRecords: 3 },
    });
    await waitFor(
      'every flow',
      async () => new Set(flowsOf(await readAll(bus, TOPICS.flows)).map((f) => f.flow_id)).size >= expected.length,
    );
    await svc.stop();
    assert.ok(
      metrics.get('flows.received') < records.length,
      'the restart resumed from a checkpoint, not from offset 0',
    );

    const all = flowsOf(await readAll(bus, TOPICS.flows));
    const want = new Map(expected.map((f) => [f.flow_id, f]));
    const seen = new Map<string, FlowRecord>();
    let duplicates = 0;
    for (const f of all) {
      assert.deepEqual(
        { ...f },
        { ...want.get(f.flow_id) },
        `flow ${f.flow_id} is one the pure stage emits, with the same counts`,
      );
      if (seen.has(f.flow_id)) duplicates++;
      seen.set(f.flow_id, f);
    }
    assert.equal(seen.size, expected.length, 'no flow lost');
    assert.equal(duplicates, 0, 'flows emitted before the crash are not emitted again');
    assert.ok(
      metrics.get('flows.flows_suppressed') > 0,
      'the restart rebuilt flows the crashed owner had emitted, and held them back',
    );
    await bus.close();
  },
);

test(
  'a crash between the checkpoint and the commit: the restart commits what the checkpoint says',
  { skip: NO_CORPUS },
  async (t) => {
    const dir = tempDir(t, 'flows-commit');
    const bus = openBus(dir);
    await ensureTopics(bus);
    const records = await replayRecords();
    const producer = bus.producer();
    await producer.send(TOPICS.packets, records);
    await producer.close();
    const ctx = createContext({ log: silentLogger });
    const first = await runStage(flowsStage, { bus, ctx });
    const ends = await bus.admin.endOffsets(TOPICS.packets);
    await waitFor('the first run to commit everything', async () => {
      const c = await bus.admin.committedOffsets('cordon-flows', TOPICS.packets);
      return [...ends].every(([p, e]) => (c.get(p) ?? 0n) >= e);
    });
    await first.stop();
    // the group's commit is lost (the process died right after writing its checkpoints)
    const lagging = bus.consumer({ groupId: 'cordon-flows', topics: [TOPICS.packets] });
    await lagging.commit([...ends.keys()].map((p) => ({ topic: TOPICS.packets, partition: p, offset: 0n })));
    await lagging.close();
    const second = await runStage(flowsStage, { bus, ctx });
    await waitFor('the restart to commit the checkpointed offsets', async () => {
      const c = await bus.admin.committedOffsets('cordon-flows', TOPICS.packets);
      return [...ends].every(([p, e]) => (c.get(p) ?? 0n) >= e);
    });
    await second.stop();
    await bus.close();
  },
);

test("a lost agent's recovery: the frames the agent delivered are counted once, the ones it never sent are counted", async (t) => {
  const dir = tempDir(t, 'flows-recovery');
  const bus = openBus(dir);
  await ensureTopics(bus);
  const a = { ip: '10.0.0.1', port: 5000 };
  const b = { ip: '10.0.0.2', port: 53 };
  const agentBatch = batch([pkt(1_000, udp(a, b)), pkt(2_000, udp(a, b)), pkt(3_000, udp(a, b))], {
    sensor: 'agent:agt-1',
    vm: 'vm1',
  });
  // the watchdog's recovery: the agent's last two frames as its bridge stamped them, and one after its death
  const recovery: PacketBatch = {
    ...batch([pkt(2_005, udp(a, b)), pkt(3_010, udp(a, b)), pkt(9_000, udp(a, b))], {
      sensor: 'watchdog:hv1',
      vm: 'vm1',
    }),
    recovery_of: 'agent:agt-1',
  };
  const ends = ['agent:agt-1', 'watchdog:hv1'].map((sensor) => batch([], { sensor, end: true }));
  const codec = codecFor(TOPICS.packets);
  const producer = bus.producer();
  // one flow, one key: every record of it on one partition, in this order
  await producer.send(
    TOPICS.packets,
    [agentBatch, recovery, ...ends].map((x) => ({ key: Buffer.from('10.0.0.1|10.0.0.2'), value: codec.encode(x) })),
  );
  await producer.close();
  const metrics = new Metrics();
  const svc = await runStage(flowsStage, { bus, ctx: createContext({ log: silentLogger, metrics }), config: {} });
  await waitFor('both sensors’ flows', async () => (await count(bus, TOPICS.flows)) >= 2);
  await svc.stop();
  const flows = flowsOf(await readAll(bus, TOPICS.flows));
  assert.deepEqual(flows.map((f) => [f.sensor, f.pkts_toserver + f.pkts_toclient, f.first_seen_us]).sort(), [
    ['agent:agt-1', 3, 1_000],
    ['watchdog:hv1', 1, 9_000],
  ]);
  assert.equal(metrics.get('flows.recovery_dropped'), 2);
  await bus.close();
});

test("a restart between a lost agent's last frames and their recovery still counts each frame once (the filter's state is in the checkpoint)", async (t) => {
  const dir = tempDir(t, 'flows-recovery-restart');
  const bus = openBus(dir);
  await ensureTopics(bus);
  const a = { ip: '10.0.0.1', port: 5000 };
  const b = { ip: '10.0.0.2', port: 53 };
  const codec = codecFor(TOPICS.packets);
  const send = async (xs: PacketBatch[]) => {
    const producer = bus.producer();
    await producer.send(
      TOPICS.packets,
      xs.map((x) => ({ key: Buffer.from('10.0.0.1|10.0.0.2'), value: codec.encode(x) })),
    );
    await producer.close();
  };
  await send([
    batch([pkt(1_000, udp(a, b)), pkt(2_000, udp(a, b)), pkt(3_000, udp(a, b))], { sensor: 'agent:agt-1', vm: 'vm1' }),
  ]);
  const run = async (metrics: Metrics) =>
    runStage(flowsStage, { bus, ctx: createContext({ log: silentLogger, metrics }), config: {} });
  const first = new Metrics();
  let svc = await run(first);
  await waitFor('the agent’s frames read', async () => first.get('flows.received') >= 1);
  await svc.stop(); // its partitions are checkpointed as they are given up
  await svc.done;

  await send([
    {
      ...batch([pkt(2_005, udp(a, b)), pkt(3_010, udp(a, b)), pkt(9_000, udp(a, b))], {
        sensor: 'watchdog:hv1',
        vm: 'vm1',
      }),
      recovery_of: 'agent:agt-1',
    },
    ...['agent:agt-1', 'watchdog:hv1'].map((sensor) => batch([], { sensor, end: true })),
  ]);
  const second = new Metrics();
  svc = await run(second);
  await waitFor('both sensors’ flows', async () => (await count(bus, TOPICS.flows)) >= 2);
  await svc.stop();
  assert.ok(second.get('flows.received') < 4, 'the second run resumed from the checkpoint');
  const flows = flowsOf(await readAll(bus, TOPICS.flows));
  assert.deepEqual(flows.map((f) => [f.sensor, f.pkts_toserver + f.pkts_toclient, f.first_seen_us]).sort(), [
    ['agent:agt-1', 3, 1_000],
    ['watchdog:hv1', 1, 9_000],
  ]);
  assert.equal(second.get('flows.recovery_dropped'), 2);
  await bus.close();
});
