/**
 * The security findings of the "Trust" issue that are reached through the `cordon` command:
 * each test performs the attack (or the mistake an attacker waits for) against the command
 * as a user runs it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { chmodSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');
const ENV = {
  ...process.env,
  CORDON_KAFKA_BROKERS: '',
  CORDON_CLICKHOUSE_URL: '',
  CORDON_LOG_LEVEL: 'warn',
  CORDON_METRICS_ADDR: 'off',
};

const cordon = (args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000) =>
  new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...ENV, ...env }, timeout: timeoutMs }, (err, stdout, stderr) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

/** Every path below `dir` that its group or others may read, write or enter. */
function notPrivate(dir: string): string[] {
  const bad: string[] = [];
  const walk = (p: string) => {
    const st = statSync(p);
    if (st.mode & 0o077) bad.push(`${p} ${(st.mode & 0o777).toString(8)}`);
    if (st.isDirectory()) for (const n of readdirSync(p)) walk(join(p, n));
  };
  walk(dir);
  return bad;
}

test(
  "a data dir made by any cordon command is its owner's only: the embedded ClickHouse and bus included",
  { timeout: 180_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-trust-modes-'));
    try {
      const data = join(dir, 'data');
      const q = await cordon(['query', 'SELECT 1', '--data-dir', data]);
      assert.equal(q.code, 0, q.stderr);
      const t = await cordon(['topics', 'apply', '--data-dir', data]);
      assert.equal(t.code, 0, t.stderr);
      assert.deepEqual(notPrivate(data), []);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'CORDON_ENROLL_SECRET: odd-length, all-zero, one repeated byte and non-hex secrets are refused with a coded error; a good one signs',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-trust-secret-'));
    try {
      const token = (secret: string) =>
        cordon(['agents', 'token', '--vm', 'web-1', '--data-dir', join(dir, 'data')], { CORDON_ENROLL_SECRET: secret });
      for (const bad of [
        '0'.repeat(64),
        '0'.repeat(128),
        'ab'.repeat(32),
        `${'1f'.repeat(32)}7`,
        `${'1f'.repeat(31)}zz`,
        '1f'.repeat(16),
      ]) {
        const r = await token(bad);
        assert.notEqual(r.code, 0, `accepted ${bad}`);
        assert.match(r.stderr, /CORDON_ERR_CLI_SECRET/, bad);
        assert.equal(r.stdout, '', 'no token was printed');
      }
      const good = await token('3b9f0c2e'.repeat(8));
      assert.equal(good.code, 0, good.stderr);
      assert.match(good.stdout.trim(), /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'the enrollment key file: a tampered or shared one is refused, not used as a weaker key',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-trust-keyfile-'));
    try {
      const data = join(dir, 'data');
      const first = await cordon(['agents', 'token', '--vm', 'web-1', '--data-dir', data]);
      assert.equal(first.code, 0, first.stderr);
      const key = join(data, 'secrets', 'enroll.key');
      assert.equal(statSync(key).mode & 0o777, 0o600);
      writeFileSync(key, 'not hex at all');
      const tampered = await cordon(['agents', 'token', '--vm', 'web-1', '--data-dir', data]);
      assert.match(tampered.stderr, /CORDON_ERR_CLI_SECRET/);
      assert.equal(tampered.stdout, '');
      writeFileSync(key, '5c'.repeat(8) + '9e'.repeat(24));
      chmodSync(key, 0o644);
      const shared = await cordon(['agents', 'token', '--vm', 'web-1', '--data-dir', data]);
      assert.match(shared.stderr, /CORDON_ERR_CLI_SECRET.*0644|CORDON_ERR_CLI_SECRET.*644/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

/** A stand-in ClickHouse that records the credentials each request carries. */
async function fakeClickHouse(): Promise<{ url: string; auth: string[]; close: () => Promise<void> }> {
  const auth: string[] = [];
  const server = createServer((req, res) => {
    const basic = /^Basic (.+)$/.exec(req.headers.authorization ?? '')?.[1];
    auth.push(
      basic
        ? Buffer.from(basic, 'base64').toString()
        : `${req.headers['x-clickhouse-user'] ?? ''}:${req.headers['x-clickhouse-key'] ?? ''}`,
    );
    req.resume();
    req.on('end', () => res.writeHead(200, { 'content-type': 'text/plain' }).end('Ok.\n'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, auth, close: () => new Promise((r) => server.close(() => r())) };
}

test(
  '--clickhouse-url with a password in it is refused (ps shows argv to every local user); the password comes from the environment or a 0600 file',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-trust-ch-'));
    const ch = await fakeClickHouse();
    try {
      const withCreds = ch.url.replace('http://', 'http://analyst:s3cret-pw@');
      const refused = await cordon([
        'query',
        'SELECT 1',
        '--data-dir',
        join(dir, 'data'),
        '--clickhouse-url',
        withCreds,
      ]);
      assert.notEqual(refused.code, 0);
      assert.match(refused.stderr, /CORDON_ERR_CONFIG.*--clickhouse-url.*ps/s);
      assert.ok(!refused.stderr.includes('s3cret-pw'), 'the password is not repeated in the error');
      assert.deepEqual(ch.auth, [], 'nothing was sent with it');

      await cordon(['query', 'SELECT 1', '--data-dir', join(dir, 'data'), '--clickhouse-url', ch.url], {
        CORDON_CLICKHOUSE_USER: 'analyst',
        CORDON_CLICKHOUSE_PASSWORD: 'from-env-pw',
      });
      assert.ok(ch.auth.length > 0 && ch.auth.every((a) => a === 'analyst:from-env-pw'), ch.auth.join(' '));

      ch.auth.length = 0;
      const pwFile = join(dir, 'ch.password');
      writeFileSync(pwFile, 'from-file-pw\n', { mode: 0o600 });
      await cordon(['query', 'SELECT 1', '--data-dir', join(dir, 'data'), '--clickhouse-url', ch.url], {
        CORDON_CLICKHOUSE_USER: 'analyst',
        CORDON_CLICKHOUSE_PASSWORD_FILE: pwFile,
      });
      assert.ok(ch.auth.length > 0 && ch.auth.every((a) => a === 'analyst:from-file-pw'), ch.auth.join(' '));

      chmodSync(pwFile, 0o644);
      const shared = await cordon(['query', 'SELECT 1', '--data-dir', join(dir, 'data'), '--clickhouse-url', ch.url], {
        CORDON_CLICKHOUSE_PASSWORD_FILE: pwFile,
      });
      assert.match(shared.stderr, /CORDON_ERR_CLI_SECRET|CORDON_ERR_CONFIG/);
      assert.ok(!shared.stderr.includes('from-file-pw'));
    } finally {
      await ch.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'a FIFO given to --pcap ends the command at once with a coded error (cordon dpi, cordon replay)',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-trust-fifo-'));
    const fifo = join(dir, 'capture.pcap');
    execFileSync('mkfifo', [fifo]);
    const rules = join(dir, 'r.rules');
    writeFileSync(rules, 'alert udp any any -> any any (msg:"x"; content:"x"; sid:1; rev:1;)\n');
    try {
      for (const args of [
        ['dpi', '--rules', rules, '--pcap', fifo],
        ['replay', '--pcap', fifo, '--data-dir', join(dir, 'data')],
      ]) {
        const t0 = Date.now();
        const r = await cordon(args, {}, 30_000);
        assert.ok(Date.now() - t0 < 25_000, `cordon ${args[0]} waited on the FIFO`);
        assert.notEqual(r.code, 0);
        assert.match(r.stderr, /CORDON_ERR_PCAP_NOT_A_FILE/, `cordon ${args[0]}: ${r.stderr}`);
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'a YAML alias bomb gives a coded error from every command that reads YAML: policy apply, inventory apply, --config',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-trust-yaml-'));
    try {
      const lines = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
      for (let i = 1; i < 9; i++)
        lines.push(
          `a${i}: &a${i} [${Array(9)
            .fill(`*a${i - 1}`)
            .join(', ')}]`,
        );
      const bomb = join(dir, 'bomb.yaml');
      writeFileSync(bomb, `${lines.join('\n')}\n`);
      const data = join(dir, 'data');
      for (const [args, code] of [
        [['policy', 'apply', bomb, '--data-dir', data], 'CORDON_ERR_POLICY_FILE'],
        [['inventory', 'apply', bomb, '--data-dir', data], 'CORDON_ERR_POLICY_FILE'],
        [['topics', 'apply', '--config', bomb, '--data-dir', data], 'CORDON_ERR_CONFIG'],
      ] as const) {
        const r = await cordon([...args]);
        assert.notEqual(r.code, 0);
        assert.match(
          r.stderr,
          new RegExp(`cordon: ${code}: .*bomb\\.yaml`),
          `cordon ${args.slice(0, 2).join(' ')}: ${r.stderr}`,
        );
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'cordon run agent with enforcement disabled keeps running until it is stopped, then exits cleanly',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-trust-agent-'));
    try {
      const data = join(dir, 'data');
      const token = (await cordon(['agents', 'token', '--vm', 'web-1', '--data-dir', data])).stdout.trim();
      assert.equal((await cordon(['topics', 'apply', '--data-dir', data])).code, 0);
      const config = join(dir, 'agent.yaml');
      writeFileSync(
        config,
        [
          'agent:',
          `  token: "${token}"`,
          `  stateDir: ${join(dir, 'state')}`,
          '  enforce: { enabled: false }',
          '  netconf: { enabled: false }',
          '',
        ].join('\n'),
      );
      const agent = spawn(process.execPath, [CLI, 'run', 'agent', '--config', config, '--data-dir', data], {
        env: { ...ENV, CORDON_LOG_LEVEL: 'info' },
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let log = '';
      agent.stderr!.on('data', (d: Buffer) => (log += d.toString()));
      const exited = new Promise<number | null>((r) => agent.on('exit', (code) => r(code)));
      try {
        const until = Date.now() + 60_000;
        while (!log.includes('Service is running.')) {
          assert.ok(Date.now() < until && agent.exitCode === null, `the agent did not start:\n${log}`);
          await new Promise((r) => setTimeout(r, 100));
        }
        await new Promise((r) => setTimeout(r, 3000));
        assert.equal(agent.exitCode, null, `the agent exited on its own:\n${log}`);
        agent.kill('SIGTERM');
        assert.equal(await exited, 0, log);
      } finally {
        if (agent.exitCode === null) agent.kill('SIGKILL');
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
