/**
 * Bad input end to end: a malformed capture, a record that is not a PacketBatch and a config
 * with an unknown key each give a clear error, and the bad data lands in the DLQ (and from
 * there in ClickHouse) — nothing crashes, nothing is silently dropped.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createContext, silentLogger } from '@cordon/runtime';
import { TOPICS } from '@cordon/schemas';
import {
  applyTopics,
  buildDemoCapture,
  loadConfig,
  openBus,
  openStore,
  pipelineOf,
  replayCapture,
  startService,
  waitCaughtUp,
} from '@cordon/cli';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');
const run = promisify(execFile);

test(
  'a truncated capture, a non-capture and a garbage record become errors and dead letters in ClickHouse',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-bad-'));
    const good = buildDemoCapture({ sessions: 5 });
    const truncated = join(dir, 'truncated.pcap');
    writeFileSync(truncated, good.subarray(0, Math.floor(good.length * 0.6)));
    const notPcap = join(dir, 'notes.txt');
    writeFileSync(notPcap, 'this is not a capture\n'.repeat(10));

    const ctx = createContext({ log: silentLogger });
    const config = loadConfig({ env: {}, flags: { dataDir: join(dir, 'data') } });
    const bus = openBus(config, ctx);
    const store = await openStore(config, ctx);
    try {
      await applyTopics(bus);
      const services = [
        await startService('flows', { bus, ctx, config, store }),
        await startService('sink', { bus, ctx, config, store }),
      ];

      const cut = await replayCapture({ bus, ctx, file: truncated, sensor: 'cut' });
      assert.ok(cut.packets > 10, 'the frames before the fault were published');
      assert.equal(cut.error?.code, 'CORDON_ERR_PCAP_TRUNCATED');
      assert.match(cut.error!.message, /at byte \d+/, 'the error says where');

      const junk = await replayCapture({ bus, ctx, file: notPcap, sensor: 'junk' });
      assert.equal(junk.packets, 0);
      assert.equal(junk.error?.code, 'CORDON_ERR_PCAP_BAD_MAGIC');

      await bus.producer().send(TOPICS.packets, [{ key: Buffer.from('x'), value: Buffer.from('definitely not avro') }]);

      await waitCaughtUp(bus, pipelineOf(['flows', 'sink']));
      for (const s of services) await s.stop();

      const letters = await store.query<{
        stage: string;
        error_code: string;
        error: string;
        value_base64: string | null;
      }>('SELECT stage, error_code, error, value_base64 FROM dlq ORDER BY stage, error_code');
      assert.deepEqual(
        letters.map((l) => [l.stage, l.error_code]),
        [
          ['flows', 'CORDON_ERR_SCHEMA_WIRE_FORMAT'],
          ['replay', 'CORDON_ERR_PCAP_BAD_MAGIC'],
          ['replay', 'CORDON_ERR_PCAP_TRUNCATED'],
        ],
      );
      const record = letters.find((l) => l.stage === 'flows')!;
      assert.equal(
        Buffer.from(record.value_base64!, 'base64').toString(),
        'definitely not avro',
        'the bad record is kept whole',
      );
      assert.ok(
        letters.filter((l) => l.stage === 'replay').every((l) => l.error.includes(dir)),
        'replay dead letters name the file',
      );

      // the flows of the good part of the truncated capture still landed
      const [flows] = await store.query<{ n: string }>("SELECT count() AS n FROM flows WHERE sensor = 'cut'");
      assert.ok(Number(flows!.n) > 0);
    } finally {
      await bus.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('the CLI reports a malformed capture with its code and exits 1, without a stack trace', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-bad-cli-'));
  const file = join(dir, 'x.pcap');
  writeFileSync(file, Buffer.from('d4c3b2a10200040000000000000000000000040001000000ffffffff', 'hex')); // header, then a torn record
  await run(process.execPath, [CLI, 'topics', 'apply', '--data-dir', join(dir, 'data')], {
    env: { ...process.env, CORDON_KAFKA_BROKERS: '' },
  });
  const err = await run(process.execPath, [CLI, 'replay', '--pcap', file, '--data-dir', join(dir, 'data')], {
    env: { ...process.env, CORDON_KAFKA_BROKERS: '' },
  }).then(
    () => null,
    (e: { code: number; stderr: string }) => e,
  );
  assert.ok(err, 'replay fails');
  assert.equal(err.code, 1);
  assert.match(err.stderr, /CORDON_ERR_PCAP_TRUNCATED/);
  assert.doesNotMatch(err.stderr, /\n\s+at /, 'no stack trace');
  rmSync(dir, { recursive: true, force: true });
});

test('configuration: an unknown key is refused with its name, and so is an unknown flag', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-bad-config-'));
  const file = join(dir, 'cordon.yaml');
  writeFileSync(file, 'dataDir: ./d\nflows:\n  table:\n    udpTimeoutS: 30\n    tcpTimoutS: 5\n');
  assert.throws(() => loadConfig({ file, env: {} }), /unknown key "flows\.table\.tcpTimoutS"/);
  writeFileSync(file, 'bus: { kind: kafka }\n');
  assert.throws(() => loadConfig({ file, env: {} }), /bus\.brokers/);
  const e = await run(process.execPath, [CLI, 'up', '--no-such-flag'], { env: process.env }).then(
    () => null,
    (x: { code: number; stderr: string }) => x,
  );
  assert.equal(e?.code, 1);
  assert.match(e!.stderr, /CORDON_ERR_CLI_USAGE.*no-such-flag/);
  assert.equal(readFileSync(file, 'utf8').length > 0, true);
  rmSync(dir, { recursive: true, force: true });
});
