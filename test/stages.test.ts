/**
 * The stage runtime seen from outside: a stage added by one list entry runs under `cordon up`
 * with its configuration section validated; every built-in stage's section is accepted and a
 * misspelled key is named with its section; a running `cordon up` serves Prometheus metrics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { waitFor } from '@cordon/testkit';
import { parseExposition, sum } from './lib/prom-text.js';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');
const ENV = { ...process.env, CORDON_KAFKA_BROKERS: '', CORDON_CLICKHOUSE_URL: '', CORDON_LOG_LEVEL: 'warn' };

const cordon = (args: string[], env: NodeJS.ProcessEnv = {}) =>
  promisify(execFile)(process.execPath, [CLI, ...args], { env: { ...ENV, ...env }, maxBuffer: 16 << 20 }).then(
    (r) => ({ code: 0, ...r }),
    (err: { code?: number; stdout?: string; stderr?: string }) => ({
      code: err.code ?? 1,
      stdout: err.stdout ?? '',
      stderr: err.stderr ?? '',
    }),
  );

/** `cordon up --exit` (demo off unless `demo`) on a data dir with a config file, metrics off. */
const upOnce = (dataDir: string, config: string, env: NodeJS.ProcessEnv = {}, demo = true) =>
  cordon(
    [
      'up',
      '--exit',
      ...(demo ? [] : ['--no-demo']),
      '--data-dir',
      dataDir,
      '--metrics-addr',
      'off',
      '--config',
      config,
    ],
    env,
  );

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

test(
  'a stage in a temp folder, added by one list entry, runs under cordon up with its section validated',
  { timeout: 180_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-extra-stage-'));
    try {
      // an out-of-tree stage, as its author would write it: zod and @cordon/stage are its dependencies
      writeFileSync(
        join(dir, 'flowcount.mjs'),
        `import { writeFileSync } from 'node:fs';
import { z } from '${import.meta.resolve('zod')}';
import { defineStage } from '${import.meta.resolve('@cordon/stage')}';
export const stage = defineStage({
  name: 'flowcount',
  summary: 'counts flow records into a file',
  config: z.object({ out: z.string().min(1), group: z.string().default('flowcount') }).strict(),
  inputs: (c) => [{ group: c.group, topic: 'cordon.flows.v1' }],
  outputs: () => [],
  start(stage) {
    let n = 0;
    stage.consume({ group: stage.config.group, topics: ['cordon.flows.v1'], handle(batch) { n += batch.records.length; writeFileSync(stage.config.out, String(n)); } });
    return {};
  },
});
`,
      );
      const out = join(dir, 'count');
      writeFileSync(join(dir, 'ok.yaml'), `flowcount:\n  out: ${JSON.stringify(out)}\n`);
      const entry = { CORDON_STAGE_MODULES: join(dir, 'flowcount.mjs') };
      const ok = await upOnce(join(dir, 'data'), join(dir, 'ok.yaml'), entry);
      assert.equal(ok.code, 0, ok.stderr);
      const flows = /flows\s+packets\s+bytes\s*\n[-\s]+\n\s*(\d+)/.exec(ok.stdout);
      assert.ok(flows, ok.stdout);
      assert.equal(
        Number(readFileSync(out, 'utf8')),
        Number(flows[1]),
        'the extra stage saw every flow the sink landed',
      );

      writeFileSync(join(dir, 'typo.yaml'), `flowcount:\n  outt: ${JSON.stringify(out)}\n`);
      const bad = await upOnce(join(dir, 'data2'), join(dir, 'typo.yaml'), entry);
      assert.notEqual(bad.code, 0);
      assert.match(bad.stderr, /CORDON_ERR_CONFIG/);
      assert.match(bad.stderr, /unknown key "flowcount\.outt"/);
      // without the entry, the section is unknown
      const none = await upOnce(join(dir, 'data3'), join(dir, 'ok.yaml'));
      assert.match(none.stderr, /unknown key "flowcount"/);
      // the help text comes from the same list
      const help = await cordon(['help'], entry);
      assert.match(help.stdout, /flowcount\s+counts flow records into a file/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'every built-in stage has its configuration section; a misspelled key in any section is named with it',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-sections-'));
    try {
      writeFileSync(
        join(dir, 'all.yaml'),
        [
          'flows: { checkpointEverySeconds: 5 }',
          'dpi: { checksum: "off" }',
          'loginspect: { checkpointIntervalMs: 2000, inspector: { blocks: { baseTtlS: 120 } } }',
          'netconf: { maxBatchRecords: 100 }',
          'fim: { rules: [{ id: "accounts", paths: ["/etc/passwd"], severity: 1 }] }',
          'responder: { policyId: "default" }',
          'sink: { maxBatchRecords: 1000 }',
          '',
        ].join('\n'),
      );
      const ok = await upOnce(join(dir, 'data'), join(dir, 'all.yaml'), {}, false);
      assert.equal(ok.code, 0, ok.stderr);
      for (const [yaml, named] of [
        ['loginspect: { checkpointIntervalMS: 2000 }', 'loginspect.checkpointIntervalMS'],
        ['fim: { rules: [{ id: "a", paths: ["/etc/*"], severty: 1 }] }', 'fim.rules.0.severty'],
        ['sink: { maxBatch: 1 }', 'sink.maxBatch'],
        ['flows: { table: { udpTimeout: 1 } }', 'flows.table.udpTimeout'],
      ] as const) {
        writeFileSync(join(dir, 'bad.yaml'), `${yaml}\n`);
        const bad = await upOnce(join(dir, 'data'), join(dir, 'bad.yaml'), {}, false);
        assert.notEqual(bad.code, 0, yaml);
        assert.ok(bad.stderr.includes(`"${named}"`), `${yaml}: ${bad.stderr}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'a running cordon up serves Prometheus metrics: records per stage, lag per partition, batch durations',
  { timeout: 240_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-metrics-'));
    const port = await freePort();
    const child = spawn(
      process.execPath,
      [CLI, 'up', '--data-dir', join(dir, 'data'), '--metrics-addr', `127.0.0.1:${port}`],
      { env: ENV, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    try {
      await waitFor('the demo to finish', () => stdout.includes('Cordon is running'), 180_000, 200);
      assert.match(stdout, new RegExp(`metrics: http://127\\.0\\.0\\.1:${port}/metrics`));
      const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
      const x = parseExposition(text);
      for (const stage of ['flows', 'dpi', 'sink'])
        assert.ok(sum(x, 'cordon_stage_records_total', { stage, outcome: 'in' }) > 0, `${stage} consumed records`);
      assert.ok(sum(x, 'cordon_stage_records_total', { stage: 'flows', topic: 'cordon.flows.v1', outcome: 'out' }) > 0);
      assert.equal(x.types.get('cordon_consumer_lag'), 'gauge');
      const lags = x.samples.filter(
        (s) => s.name === 'cordon_consumer_lag' && s.labels.stage === 'dpi' && s.labels.topic === 'cordon.packets.v1',
      );
      assert.ok(lags.length >= 2, 'a lag gauge per partition');
      assert.deepEqual(new Set(lags.map((l) => l.labels.partition)).size, lags.length);
      assert.equal(x.types.get('cordon_stage_batch_duration_seconds'), 'histogram');
      assert.ok(sum(x, 'cordon_stage_batch_duration_seconds_count', { stage: 'flows' }) > 0);
      assert.ok(sum(x, 'process_resident_memory_bytes') > 0);
      assert.equal(x.types.get('nodejs_eventloop_lag_seconds'), 'gauge');
      const promtool = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
      if (promtool.error)
        process.stdout.write('# promtool is not installed: checked with the text-format reader only\n');
      else assert.equal(promtool.status, 0, `promtool check metrics: ${promtool.stdout}${promtool.stderr}`);

      const t0 = Date.now();
      child.kill('SIGINT');
      assert.equal(await exited, 0, stderr);
      assert.ok(Date.now() - t0 < 10_000, `stopped in ${Date.now() - t0} ms`);
    } finally {
      child.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
