// Shared by the Kafka benchmarks: use the broker named by KAFKA_BROKERS, or start a throwaway
// one through infra/kafka/start.sh and stop it (deleting its data) when the benchmark ends.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const infra = join(dirname(fileURLToPath(import.meta.url)), '..', 'infra', 'kafka');

export async function withBroker(fn) {
  if (process.env.KAFKA_BROKERS) return fn(process.env.KAFKA_BROKERS.split(','));
  const out = execFileSync('bash', [join(infra, 'start.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = out.split('\n').find((l) => l.startsWith('KAFKA_BROKERS='));
  if (!line) throw new Error(`infra/kafka/start.sh printed no KAFKA_BROKERS line:\n${out}`);
  const stop = () => execFileSync('bash', [join(infra, 'stop.sh')], { stdio: ['ignore', 'ignore', 'inherit'] });
  // An interrupted benchmark must not leave a broker behind.
  const onSignal = () => {
    stop();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await fn(line.slice('KAFKA_BROKERS='.length).trim().split(','));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    stop();
  }
}

/**
 * A secured broker (start.sh --secure: SASL_SSL, SCRAM-SHA-512, ACLs) of its own on
 * BENCH_SECURE_KAFKA_PORT (19192), beside the plaintext one; `fn` gets its brokers and the
 * client configs' directory. Stopped (keys and data deleted) when the benchmark ends.
 */
export async function withSecureBroker(fn) {
  const port = process.env.BENCH_SECURE_KAFKA_PORT ?? '19192';
  const env = { ...process.env, KAFKA_PORT: port, KAFKA_CONTROLLER_PORT: String(Number(port) + 1), KAFKA_BROKERS: '' };
  delete env.KAFKA_RUN_DIR;
  const out = execFileSync('bash', [join(infra, 'start.sh'), '--secure'], {
    encoding: 'utf8',
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const value = (k) =>
    out
      .split('\n')
      .find((l) => l.startsWith(`${k}=`))
      ?.slice(k.length + 1)
      .trim();
  const stop = () => execFileSync('bash', [join(infra, 'stop.sh')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
  const onSignal = () => {
    stop();
    process.exit(130);
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    return await fn(value('KAFKA_BROKERS').split(','), value('KAFKA_CLIENT_CONFIG_DIR'));
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    stop();
  }
}

/** N keyed records of `size` random bytes (random, so no compression could flatter anyone). */
export function makeRecords(n, size, distinctKeys = 10_000) {
  const pool = randomBytes(n * size);
  const records = new Array(n);
  for (let i = 0; i < n; i++) {
    records[i] = {
      key: Buffer.from(`vm-${(i % distinctKeys).toString().padStart(5, '0')}`),
      value: pool.subarray(i * size, (i + 1) * size),
    };
  }
  return records;
}

export function rate(n, bytes, ms) {
  const s = ms / 1000;
  return { recPerSec: n / s, mbPerSec: bytes / 1e6 / s, ms };
}

export function fmt(r) {
  return `${Math.round(r.recPerSec).toLocaleString('en-US')} rec/s ${r.mbPerSec.toFixed(1)} MB/s`;
}
