/**
 * The test broker's scripts (infra/kafka) start reliably: a cluster id that begins with "-"
 * (one draw in 64) was read by Kafka's storage tool as an option, and the start failed. Each
 * test runs its own broker on its own ports and run dir, never the suite's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { javaMissing } from './lib/own-kafka.js';

const INFRA = join(import.meta.dirname, '..', '..', 'infra', 'kafka');

const script = (name: string, env: NodeJS.ProcessEnv) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(
      'bash',
      [join(INFRA, name)],
      { env: { ...process.env, ...env }, timeout: 180_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

/** A broker of its own: ports from `port`, data under a temp dir. */
function broker(port: number, extra: NodeJS.ProcessEnv = {}) {
  const runDir = mkdtempSync(join(tmpdir(), `cordon-kafka-${port}-`));
  const env = {
    KAFKA_PORT: String(port),
    KAFKA_CONTROLLER_PORT: String(port + 1),
    KAFKA_RUN_DIR: runDir,
    KAFKA_BROKERS: '',
    ...extra,
  };
  return {
    runDir,
    start: () => script('start.sh', env),
    stop: () => script('stop.sh', env),
    clusterId: () => /^cluster\.id=(.*)$/m.exec(readFileSync(join(runDir, 'data', 'meta.properties'), 'utf8'))?.[1],
    cleanup: () => rmSync(runDir, { recursive: true, force: true }),
  };
}

test(
  'a drawn cluster id that begins with "-" is drawn again, as Kafka\'s own generator does: the broker starts',
  { skip: javaMissing(), timeout: 240_000 },
  async () => {
    // `head -c 16 /dev/urandom` answers 0xF8 first, the first time: base64 "+…", an id "-…"
    const bin = mkdtempSync(join(tmpdir(), 'cordon-fake-head-'));
    const realHead = execFileSync('sh', ['-c', 'command -v head']).toString().trim();
    const drawn = join(bin, 'drawn');
    writeFileSync(
      join(bin, 'head'),
      `#!/usr/bin/env bash\nif [[ "$*" == "-c 16 /dev/urandom" && ! -e ${drawn} ]]; then touch ${drawn}; printf '\\xf8'; exec ${realHead} -c 15 /dev/urandom; fi\nexec ${realHead} "$@"\n`,
    );
    chmodSync(join(bin, 'head'), 0o755);
    const b = broker(29_392, { PATH: `${bin}:${process.env.PATH}` });
    try {
      const r = await b.start();
      assert.ok(existsSync(drawn), 'the id was drawn through the fake head');
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^KAFKA_BROKERS=127\.0\.0\.1:29392$/m);
      assert.ok(!b.clusterId()!.startsWith('-'), b.clusterId());
    } finally {
      await b.stop();
      b.cleanup();
      rmSync(bin, { recursive: true, force: true });
    }
  },
);

test(
  'a cluster id given in KAFKA_CLUSTER_ID that begins with "-" is taken as the id, not as an option',
  { skip: javaMissing(), timeout: 240_000 },
  async () => {
    const b = broker(29_394, { KAFKA_CLUSTER_ID: '-AbCdEfGhIjKlMnOpQrStA' });
    try {
      const r = await b.start();
      assert.equal(r.code, 0, r.stderr);
      assert.equal(b.clusterId(), '-AbCdEfGhIjKlMnOpQrStA');
    } finally {
      await b.stop();
      b.cleanup();
    }
  },
);

test(
  'the broker starts and stops six times in a row, each time on a fresh cluster id',
  { skip: javaMissing(), timeout: 600_000 },
  async () => {
    const b = broker(29_396);
    const ids = new Set<string>();
    try {
      for (let i = 0; i < 6; i++) {
        const r = await b.start();
        assert.equal(r.code, 0, `start ${i + 1}: ${r.stderr}`);
        ids.add(b.clusterId()!);
        const s = await b.stop();
        assert.equal(s.code, 0, `stop ${i + 1}: ${s.stderr}`);
        assert.ok(!existsSync(join(b.runDir, 'data')), `stop ${i + 1} removed the data`);
      }
      assert.equal(ids.size, 6);
    } finally {
      await b.stop();
      b.cleanup();
    }
  },
);
