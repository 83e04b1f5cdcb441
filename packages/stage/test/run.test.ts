import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { createEmbeddedBus, readAll, type Bus } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { codecFor, TOPICS, type LogBatch } from '@cordon/schemas';
import { waitFor } from '@cordon/testkit';
import {
  defineStage,
  loadStageModules,
  runStage,
  StageTelemetry,
  stageAcls,
  stageSections,
  ERR_STAGE_CONFIG,
  ERR_STAGE_FAILED,
  ERR_STAGE_MODULE,
} from '../src/index.js';

const ctx = createContext({ log: silentLogger });
const logs = codecFor(TOPICS.logs);

function world(): { bus: Bus; dir: string; done(): Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-stage-'));
  const bus = createEmbeddedBus({ dataDir: dir, ctx });
  return {
    bus,
    dir,
    async done() {
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function topics(bus: Bus): Promise<void> {
  await bus.admin.ensureTopics(
    [TOPICS.logs, TOPICS.alerts, TOPICS.dlq, 'test.out'].map((name) => ({
      name,
      partitions: name === TOPICS.logs ? 2 : 1,
      cleanupPolicy: 'delete' as const,
      retentionMs: -1,
    })),
  );
}

const batchOf = (id: string, n: number): LogBatch => ({
  batch_id: id,
  agent: 'a',
  vm: 'vm-1',
  source: '/var/log/x',
  format: null,
  lines: Array.from({ length: n }, (_, i) => ({ ts_us: 1, offset: i, line: Buffer.from(`line ${i}`) })),
});

/** Copies each line of each LogBatch to test.out; a line "poison" is rejected to the DLQ. */
const echo = defineStage({
  name: 'echo',
  summary: 'test stage',
  config: z
    .object({
      group: z.string().default('echo'),
      failOn: z.string().optional(),
      delayMs: z.number().default(0),
      maxBatch: z.number().default(1000),
    })
    .strict(),
  inputs: (c) => [{ group: c.group, topic: TOPICS.logs }],
  outputs: () => ['test.out'],
  start(stage) {
    const seen: string[] = [];
    stage.consume<LogBatch>({
      group: stage.config.group,
      topics: [TOPICS.logs],
      maxBatchRecords: stage.config.maxBatch,
      async handle(batch) {
        if (stage.config.delayMs) await new Promise((r) => setTimeout(r, stage.config.delayMs));
        for (const { value, record } of batch.records) {
          if (value.batch_id === stage.config.failOn) throw new Error('the stage broke');
          if (value.batch_id === 'poison') {
            batch.reject(record, new Error('poisoned'));
            continue;
          }
          seen.push(value.batch_id);
          batch.emit(
            'test.out',
            value.lines.map((l) => ({ key: null, value: l.line })),
          );
        }
      },
    });
    return { seen };
  },
});

test('runStage: decoded records reach the stage, outputs are sent, bad and null records go to the DLQ with their codes, counters and lag are exported', async () => {
  const w = world();
  await topics(w.bus);
  const p = w.bus.producer();
  const key = Buffer.from('k');
  await p.send(TOPICS.logs, [
    { key, value: logs.encode(batchOf('b1', 3)) },
    { key, value: Buffer.from('not avro at all') },
    { key, value: null },
    { key, value: logs.encode(batchOf('poison', 1)) },
    { key, value: logs.encode(batchOf('b2', 2)) },
  ]);
  const telemetry = new StageTelemetry();
  const s = await runStage(echo, { bus: w.bus, ctx, telemetry });
  try {
    await waitFor('both batches', () => s.seen.length === 2);
    await waitFor('the outputs', async () => (await readAll(w.bus, 'test.out')).length === 5);
    const letters = (await readAll(w.bus, TOPICS.dlq)).map((r) => codecFor(TOPICS.dlq).decode(r.value!));
    assert.deepEqual(letters.map((l) => l.error_code).sort(), [
      'CORDON_ERR_SCHEMA_WIRE_FORMAT',
      'CORDON_ERR_STAGE_NO_VALUE',
      'CORDON_ERR_UNEXPECTED',
    ]);
    for (const l of letters) {
      assert.equal(l.stage, 'echo');
      assert.equal(l.source_topic, TOPICS.logs);
    }
    // the original bytes are kept whole
    assert.equal(
      letters.find((l) => l.error_code === 'CORDON_ERR_SCHEMA_WIRE_FORMAT')!.value!.toString(),
      'not avro at all',
    );
    assert.equal(
      await telemetry.sample('cordon_stage_records_total', { stage: 'echo', topic: TOPICS.logs, outcome: 'in' }),
      5,
    );
    assert.equal(
      await telemetry.sample('cordon_stage_records_total', { stage: 'echo', topic: 'test.out', outcome: 'out' }),
      5,
    );
    assert.equal(
      await telemetry.sample('cordon_stage_records_total', { stage: 'echo', topic: TOPICS.logs, outcome: 'dlq' }),
      3,
    );
    assert.equal(
      await telemetry.sample('cordon_stage_errors_total', { stage: 'echo', code: 'CORDON_ERR_STAGE_NO_VALUE' }),
      1,
    );
    await waitFor('lag 0 on both partitions', async () => {
      const text = await telemetry.text();
      return (
        /cordon_consumer_lag\{stage="echo",topic="cordon.logs.v1",partition="0"\} 0/.test(text) &&
        /partition="1"\} 0/.test(text)
      );
    });
    assert.match(await telemetry.text(), /cordon_stage_batch_duration_seconds_count\{stage="echo"\} [1-9]/);
    // the committed offsets cover everything handled
    await waitFor(
      'commits',
      async () =>
        [...(await w.bus.admin.committedOffsets('echo', TOPICS.logs)).values()].reduce((a, b) => a + b, 0n) === 5n,
    );
  } finally {
    await s.stop();
    await s.done;
    await w.done();
  }
});

test('runStage: a stage that throws fails (done rejects with a coded error) and its batch is not committed', async () => {
  const w = world();
  await topics(w.bus);
  const p = w.bus.producer();
  await p.send(TOPICS.logs, [{ key: Buffer.from('k'), value: logs.encode(batchOf('boom', 1)) }]);
  const s = await runStage(echo, { bus: w.bus, ctx, config: { failOn: 'boom' } });
  try {
    await assert.rejects(
      s.done,
      (err: unknown) => ERR_STAGE_FAILED.is(err) && /the stage broke/.test(String((err as Error).cause)),
    );
    assert.equal((await w.bus.admin.committedOffsets('echo', TOPICS.logs)).size, 0);
  } finally {
    await s.stop();
    await w.done();
  }
});

test('runStage: stop drains — records handed over before stop are all processed and committed, none twice', async () => {
  const w = world();
  await topics(w.bus);
  const p = w.bus.producer();
  const n = 200;
  for (let i = 0; i < n; i++)
    await p.send(TOPICS.logs, [{ key: Buffer.from(`k${i}`), value: logs.encode(batchOf(`b${i}`, 1)) }]);
  const slow = { maxBatch: 5, delayMs: 5 };
  const first = await runStage(echo, { bus: w.bus, ctx, config: slow });
  await waitFor('some progress', () => first.seen.length > 0);
  await first.stop();
  assert.ok(first.seen.length < n, `stopped after ${first.seen.length} of ${n}`);
  await first.done;
  // a second instance takes over from the committed offsets
  const second = await runStage(echo, { bus: w.bus, ctx, config: slow });
  try {
    await waitFor('the rest', () => first.seen.length + second.seen.length >= n);
    const all = [...first.seen, ...second.seen];
    assert.equal(new Set(all).size, n, 'every batch once');
    assert.equal(all.length, n, 'none twice');
  } finally {
    await second.stop();
    await w.done();
  }
});

test('configuration: unknown keys are named with their section; sections of configured-only stages are optional', () => {
  assert.throws(() => echo.config.parse({ grup: 'x' }));
  const w = world();
  return runStage(echo, { bus: w.bus, ctx, config: { grup: 'x' } })
    .then(
      () => assert.fail('accepted an unknown key'),
      (err: unknown) => {
        assert.ok(ERR_STAGE_CONFIG.is(err));
        assert.match((err as Error).message, /unknown key "echo.grup"/);
      },
    )
    .finally(() => w.done())
    .then(() => {
      const sections = z.object(stageSections([echo, { ...echo, name: 'guest', when: 'configured' }])).strict();
      const parsed = sections.parse({}) as Record<string, unknown>;
      assert.deepEqual(parsed.echo, { group: 'echo', delayMs: 0, maxBatch: 1000 });
      assert.equal(parsed.guest, undefined);
      const bad = sections.safeParse({ echo: { group: 'g', typo: 1 } });
      assert.ok(
        !bad.success && bad.error.issues.some((i) => i.code === 'unrecognized_keys' && i.path.join('.') === 'echo'),
      );
    });
});

test('stage modules from files: a valid one loads; a file that is not a stage module is refused with a coded error', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-stage-mod-'));
  try {
    writeFileSync(
      join(dir, 'ok.mjs'),
      `export const stage = { name: 'extra', summary: 's', config: { safeParse: (v) => ({ success: true, data: v }) }, inputs: () => [], outputs: () => [], start: () => ({}) };\n`,
    );
    writeFileSync(join(dir, 'bad.mjs'), 'export const stage = { name: "Bad Name" };\n');
    const [m] = await loadStageModules([join(dir, 'ok.mjs')]);
    assert.equal(m!.name, 'extra');
    await assert.rejects(
      loadStageModules([join(dir, 'bad.mjs')]),
      (err: unknown) => ERR_STAGE_MODULE.is(err) && /name/.test((err as Error).message),
    );
    await assert.rejects(loadStageModules([join(dir, 'missing.mjs')]), (err: unknown) => ERR_STAGE_MODULE.is(err));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a module that declares reads() may follow only what it declares: an undeclared table is refused with its code, so its Kafka ACLs (stageAcls) cannot fall behind', async () => {
  const w = world();
  try {
    await topics(w.bus);
    const follower = (topic: string) =>
      defineStage({
        name: 'follower',
        summary: 'test stage',
        config: z.object({}).strict(),
        inputs: () => [{ group: 'cordon-follower', topic: TOPICS.logs }],
        reads: () => [TOPICS.alerts],
        outputs: () => [TOPICS.dlq],
        async start(stage) {
          await stage.follow(topic, () => undefined);
          return {};
        },
      });
    const ok = await runStage(follower(TOPICS.alerts), { bus: w.bus, ctx, config: {} });
    await ok.stop();
    await assert.rejects(runStage(follower(TOPICS.dlq), { bus: w.bus, ctx, config: {} }), {
      code: 'CORDON_ERR_STAGE_UNDECLARED_READ',
    });
    const acls = stageAcls(follower(TOPICS.alerts), {});
    assert.deepEqual(
      acls.map((a) => `${a.resource} ${a.pattern} ${a.name} ${a.operation}`),
      [
        `topic literal ${TOPICS.alerts} READ`,
        `topic literal ${TOPICS.logs} READ`,
        // logs are signed records: the runtime follows the producer keys to check them
        `topic literal ${TOPICS.producers} READ`,
        `topic literal ${TOPICS.dlq} WRITE`,
        'group literal cordon-follower READ',
        'group prefixed cordon-follower- READ',
        'group prefixed cordon-reader- READ',
      ],
    );
  } finally {
    await w.done();
  }
});
