/**
 * A Kafka broker (or three-node cluster) of a test's own, on its own port and in a temp run
 * dir, through infra/kafka — for tests that kill and restart it, which must never touch the
 * suite's shared broker.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const INFRA = join(import.meta.dirname, '..', '..', '..', 'infra', 'kafka');

/** Why a broker cannot be started here (a test's `skip`), or false. */
export function javaMissing(): string | false {
  for (const tool of ['java', 'mvn']) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' });
    } catch {
      return `needs ${tool} (infra/kafka/install.sh)`;
    }
  }
  return false;
}

export const run = (cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeout = 240_000) =>
  promisify(execFile)(cmd, args, { env: { ...process.env, ...env }, timeout, maxBuffer: 16 << 20 });

export function ownKafka(port: number) {
  const runDir = mkdtempSync(join(tmpdir(), `cordon-fault-kafka-${port}-`));
  const env = { KAFKA_PORT: String(port), KAFKA_RUN_DIR: runDir, KAFKA_CONTROLLER_PORT: '', KAFKA_BROKERS: '' };
  delete (env as NodeJS.ProcessEnv).KAFKA_CONTROLLER_PORT;
  const script = (name: string, ...args: string[]) => run('bash', [join(INFRA, name), ...args], env);
  return {
    runDir,
    /** start.sh with `args`; the brokers' host:port. */
    async start(...args: string[]): Promise<string[]> {
      const { stdout } = await script('start.sh', ...args);
      return /^KAFKA_BROKERS=(.*)$/m.exec(stdout)![1]!.split(',');
    },
    /** kill -9 of the single broker (start('--keep-data') brings it back on its data). */
    kill9(): void {
      execFileSync('sh', ['-c', `kill -9 "$(cat '${join(runDir, 'kafka.pid')}')"`]);
    },
    script,
    async stop() {
      await script('stop.sh').catch(() => undefined);
      rmSync(runDir, { recursive: true, force: true });
    },
  };
}
