/**
 * `cordon up` as a newcomer meets it: it stays up, and from another terminal the analyst
 * queries its data, lists and lifts its blocks, tails its alerts — through the instance's
 * control socket (<data dir>/control.sock, 0600 in a 0700 data dir), not by fighting it for
 * the data dir. A command started while the instance is still starting waits for it. The
 * socket refuses other users, oversized and malformed requests with coded errors; `cordon
 * query` refuses writes and second statements, with and without a running instance.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus } from '@cordon/bus';
import { TOPICS } from '@cordon/schemas';
import { waitFor } from '@cordon/testkit';
import { controlSocketPath, MAX_REQUEST_BYTES, startControlServer } from '@cordon/cli';
import { createContext, silentLogger } from '@cordon/runtime';
import type { Store } from '@cordon/store';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');
const ROOT = join(import.meta.dirname, '..', '..');
const ENV = {
  ...process.env,
  CORDON_KAFKA_BROKERS: '',
  CORDON_CLICKHOUSE_URL: '',
  CORDON_LOG_LEVEL: 'warn',
  CORDON_LOG_FORMAT: '',
  CORDON_DATA_DIR: '',
};

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

function cordon(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [CLI, ...args],
      { env: { ...ENV, ...env }, maxBuffer: 16 << 20 },
      (err, stdout, stderr) => {
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr, ms: Date.now() - t0 });
      },
    );
  });
}

const jsonLines = (s: string) =>
  s
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);

/**
 * A raw request on the control socket, as any local program could send it. With `announce`, the
 * content-length says that many bytes but only the first kilobyte is sent: a refusal must come
 * without the server reading (or the client writing) the rest — writing it all would race the
 * server's close of the connection.
 */
function raw(
  socketPath: string,
  path: string,
  body: string | Buffer,
  headers: Record<string, string | number> = { 'content-type': 'application/json' },
  announce?: number,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const length = announce ?? Buffer.byteLength(body);
    const req = request(
      { socketPath, path, method: 'POST', headers: { ...headers, 'content-length': length } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    // the server may answer 413 and close before the whole body is sent
    req.on('error', (err: NodeJS.ErrnoException) =>
      err.code === 'EPIPE' || err.code === 'ECONNRESET' ? undefined : reject(err),
    );
    if (announce === undefined) req.end(body);
    else req.write(Buffer.from(body).subarray(0, 1024));
  });
}

const errorCode = (body: string): string => {
  const last = body.trim().split('\n').pop() ?? '';
  return (JSON.parse(last) as { error?: { code?: string } }).error?.code ?? `(no error in ${body.slice(0, 200)})`;
};

test(
  'cordon up stays up; other processes query it, list and lift its blocks through its control socket; Ctrl-C stops it',
  { timeout: 300_000 },
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-control-'));
    const dataDir = join(dir, 'data');
    const socket = controlSocketPath(dataDir);
    const dd = ['--data-dir', dataDir];
    const t0 = Date.now();
    const up = spawn(process.execPath, [CLI, 'up', ...dd, '--metrics-addr', 'off'], {
      env: ENV,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    up.stdout.on('data', (b: Buffer) => (stdout += b.toString()));
    up.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
    const exited = new Promise<number | null>((resolve) => up.on('exit', (code) => resolve(code)));
    try {
      await t.test('a command started before the instance is ready succeeds once it is', async () => {
        await waitFor('the control socket', () => existsSync(socket), 120_000, 20);
        assert.ok(!stdout.includes('Cordon is running'), 'the query starts before the instance is ready');
        const q = await cordon(['query', '--format', 'json', 'SELECT count() AS n FROM alerts', ...dd], {
          CORDON_LOG_LEVEL: 'info',
        });
        assert.equal(q.code, 0, q.stderr);
        assert.ok(stdout.includes('Cordon is running'), 'it answered once the instance was ready');
        // whether it found the instance still starting depends on how fast each side loads: the
        // test below holds an instance in "starting" to see the wait itself
        t.diagnostic(
          /waiting for it/.test(q.stderr)
            ? `the query waited ${q.ms} ms for the instance`
            : 'the instance was ready before the query looked',
        );
        assert.ok(Number(jsonLines(q.stdout)[0]!.n) > 0, `the demo's alerts: ${q.stdout}`);
        assert.doesNotMatch(stderr, /CORDON_ERR/, 'the instance was not disturbed');
      });

      await t.test('the socket is 0600 in a 0700 data dir; another user is refused', () => {
        assert.equal(statSync(socket).mode & 0o777, 0o600);
        assert.equal(statSync(dataDir).mode & 0o777, 0o700);
        if (process.getuid?.() !== 0 || spawnSync('setpriv', ['--version']).status !== 0) {
          t.diagnostic('not root or no setpriv: the other-user check is skipped');
          return;
        }
        const probe = `require('node:http').request({ socketPath: ${JSON.stringify(socket)}, path: '/v1/status' }, (r) => console.log('answered', r.statusCode)).on('error', (e) => console.log(e.code)).end()`;
        const asNobody = () =>
          spawnSync('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', process.execPath, '-e', probe], {
            encoding: 'utf8',
          });
        assert.equal(asNobody().stdout.trim(), 'EACCES', 'the 0700 data dir keeps nobody out');
        // and with the dir opened to others by hand, the socket's own mode still does
        chmodSync(dataDir, 0o711);
        try {
          assert.equal(asNobody().stdout.trim(), 'EACCES', 'the 0600 socket keeps nobody out');
        } finally {
          chmodSync(dataDir, 0o700);
        }
      });

      await t.test('too large, malformed and unknown requests are refused with coded errors', async () => {
        const big = await raw(
          socket,
          '/v1/op/query',
          JSON.stringify({ sql: `SELECT '${'x'.repeat(2048)}'` }),
          { 'content-type': 'application/json' },
          MAX_REQUEST_BYTES + 1,
        );
        assert.equal(big.status, 413);
        assert.equal(errorCode(big.body), 'CORDON_ERR_CONTROL_REQUEST_TOO_LARGE');
        const notJson = await raw(socket, '/v1/op/query', '{"sql": SELECT');
        assert.equal(notJson.status, 400);
        assert.equal(errorCode(notJson.body), 'CORDON_ERR_CONTROL_BAD_REQUEST');
        const extra = await raw(socket, '/v1/op/blocks-list', JSON.stringify({ all: true, limit: 5 }));
        assert.equal(extra.status, 400, 'unknown fields are refused');
        assert.match(extra.body, /limit/);
        const unknown = await raw(socket, '/v1/op/shell', JSON.stringify({}));
        assert.equal(unknown.status, 404);
        assert.equal(errorCode(unknown.body), 'CORDON_ERR_CONTROL_NOT_FOUND');
      });

      await t.test('cordon query refuses writes and second statements, at the client and at the instance', async () => {
        for (const [sql, code] of [
          ['SELECT 1; DROP TABLE blocks', 'CORDON_ERR_QUERY_ONE_STATEMENT'],
          ['TRUNCATE TABLE blocks', 'CORDON_ERR_QUERY_READ_ONLY'],
        ] as const) {
          const r = await cordon(['query', sql, ...dd]);
          assert.equal(r.code, 1);
          assert.match(r.stderr, new RegExp(code));
          // the instance checks for itself, whatever the client did
          const direct = await raw(socket, '/v1/op/query', JSON.stringify({ sql }));
          assert.equal(errorCode(direct.body), code);
        }
        // past the keyword check, ClickHouse's readonly = 1 is what refuses
        const settings = await raw(socket, '/v1/op/query', JSON.stringify({ sql: 'SELECT 1 SETTINGS readonly = 0' }));
        assert.equal(errorCode(settings.body), 'CORDON_ERR_QUERY_READ_ONLY');
        const still = await cordon(['query', '--format', 'json', 'SELECT count() AS n FROM blocks', ...dd]);
        assert.equal(still.code, 0, still.stderr);
        assert.ok(Number(jsonLines(still.stdout)[0]!.n) > 0, 'the blocks table is intact');
      });

      await t.test('a socket that others could use is refused by the client', async () => {
        chmodSync(socket, 0o666);
        try {
          const r = await cordon(['blocks', 'list', ...dd]);
          assert.equal(r.code, 1);
          assert.match(r.stderr, /CORDON_ERR_CONTROL_UNSAFE_SOCKET.*mode is 666/);
        } finally {
          chmodSync(socket, 0o600);
        }
      });

      await t.test(
        "blocks list shows the demo's blocks, one JSON line each; policy apply --dry-run writes nothing",
        async () => {
          const list = await cordon(['blocks', 'list', '--format', 'json', ...dd]);
          assert.equal(list.code, 0, list.stderr);
          const blocks = jsonLines(list.stdout);
          assert.ok(blocks.length >= 1, list.stdout);
          for (const b of blocks) assert.equal(b.active, true);
          assert.ok(
            blocks.some((b) => b.enforcer === 'watchdog:hv1' && b.target === '203.0.113.66' && b.ttl_s === 3600),
          );

          const policy = join(dir, 'policy.yaml');
          writeFileSync(
            policy,
            `id: default\nmode: detect\nruleFiles: [${JSON.stringify(join(ROOT, 'rules', 'demo', 'demo.rules'))}]\n`,
          );
          const dry = await cordon(['policy', 'apply', policy, '--dry-run', ...dd]);
          assert.equal(dry.code, 0, dry.stderr);
          assert.match(
            dry.stdout,
            /would write [1-9]\d* record\(s\) to cordon\.policy\.v1 \(dry run: nothing was written\)/,
          );
          const again = await cordon(['policy', 'apply', policy, '--dry-run', ...dd]);
          assert.equal(again.stdout, dry.stdout, 'the dry run changed nothing');
        },
      );

      await t.test('blocks lift writes a tombstone: the block is gone from the list', async () => {
        const lift = await cordon(['blocks', 'lift', '198.51.100.23', '--reason', 'test', ...dd]);
        assert.equal(lift.code, 0, lift.stderr);
        assert.match(lift.stdout, /^lifted: 198\.51\.100\.23 on agent:agt-[0-9a-f]+/m);
        const after = jsonLines((await cordon(['blocks', 'list', '--format', 'json', ...dd])).stdout);
        assert.ok(!after.some((b) => b.target === '198.51.100.23'), 'lifted');
        const twice = await cordon(['blocks', 'lift', '198.51.100.23', ...dd]);
        assert.equal(twice.code, 1);
        assert.match(twice.stderr, /CORDON_ERR_BLOCK_NOT_FOUND/);
      });

      await t.test('after 60 s it is still running; SIGINT stops it with exit 0 within 10 s', async () => {
        const left = 60_000 - (Date.now() - t0);
        if (left > 0) await new Promise((r) => setTimeout(r, left));
        assert.equal(up.exitCode, null, `still running after ${Math.round((Date.now() - t0) / 1000)} s:\n${stderr}`);
        const alerts = await cordon(['alerts', 'tail', '--since', '1d', '--format', 'json', ...dd]);
        assert.equal(alerts.code, 0, alerts.stderr);
        assert.ok(jsonLines(alerts.stdout).length > 0, "alerts tail shows the demo's alerts");
        const stopAt = Date.now();
        up.kill('SIGINT');
        assert.equal(await exited, 0, stderr);
        assert.ok(Date.now() - stopAt < 10_000, `stopped in ${Date.now() - stopAt} ms`);
        assert.ok(!existsSync(socket), 'the socket is removed on stop');
      });

      await t.test(
        'records produced = rows in ClickHouse; with no instance, query opens the data dir itself and still refuses writes',
        async () => {
          const bus = createEmbeddedBus({ dataDir });
          const produced: Record<string, number> = {};
          try {
            for (const topic of [TOPICS.flows, TOPICS.alerts]) {
              produced[topic] = [...(await bus.admin.endOffsets(topic)).values()].reduce((a, b) => a + Number(b), 0);
            }
          } finally {
            await bus.close();
          }
          const rows = await cordon([
            'query',
            '--format',
            'json',
            'SELECT (SELECT count() FROM flows) AS flows, (SELECT count() FROM alerts) AS alerts',
            ...dd,
          ]);
          assert.equal(rows.code, 0, rows.stderr);
          const r = jsonLines(rows.stdout)[0]!;
          assert.ok(produced[TOPICS.flows]! > 0);
          assert.equal(Number(r.flows), produced[TOPICS.flows], 'every flow record on the topic is a row');
          assert.equal(Number(r.alerts), produced[TOPICS.alerts], 'every alert on the topic is a row');
          for (const [sql, code] of [
            ['SELECT 1; DROP TABLE blocks', 'CORDON_ERR_QUERY_ONE_STATEMENT'],
            ['TRUNCATE TABLE blocks', 'CORDON_ERR_QUERY_READ_ONLY'],
            ['SELECT 1 SETTINGS readonly = 0', 'CORDON_ERR_QUERY_READ_ONLY'],
          ] as const) {
            const q = await cordon(['query', sql, ...dd]);
            assert.equal(q.code, 1, `${sql}: ${q.stdout}`);
            assert.match(q.stderr, new RegExp(code));
          }
          const blocks = await cordon(['query', '--format', 'json', 'SELECT count() AS n FROM blocks', ...dd]);
          assert.ok(Number(jsonLines(blocks.stdout)[0]!.n) > 0, 'nothing was dropped or truncated');
        },
      );
    } finally {
      up.kill('SIGKILL');
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'a command started while the instance is still starting waits for it, then gets its answer',
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-control-wait-'));
    // an instance held in "starting": the control socket is up, the answer is a stand-in store's
    const store = { query: () => Promise.resolve([{ n: 42 }]) } as unknown as Store;
    const control = await startControlServer({
      ctx: createContext({ log: silentLogger }),
      dataDir: dir,
      version: 'test',
      bus: () => Promise.reject(new Error('no bus here')),
      readStore: () => Promise.resolve(store),
    });
    try {
      // ready once the command says it waits (a timer raced the command's own start under load)
      const child = spawn(process.execPath, [CLI, 'query', '--format', 'json', 'SELECT 42 AS n', '--data-dir', dir], {
        env: { ...ENV, CORDON_LOG_LEVEL: 'info' },
      });
      const q = { code: -1, stdout: '', stderr: '' };
      child.stdout.on('data', (b: Buffer) => (q.stdout += b.toString()));
      child.stderr.on('data', (b: Buffer) => {
        q.stderr += b.toString();
        if (/waiting for it/.test(q.stderr)) control.setState('ready');
      });
      q.code = await new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? 1)));
      assert.equal(q.code, 0, q.stderr);
      assert.match(q.stderr, /Cordon is starting on this data dir: waiting for it/);
      assert.deepEqual(jsonLines(q.stdout), [{ n: 42 }]);
      // and a wait that runs out says who holds the data dir and what to do
      control.setState('starting');
      const late = await cordon(['query', 'SELECT 1', '--data-dir', dir, '--wait', '1s']);
      assert.equal(late.code, 1);
      assert.match(
        late.stderr,
        new RegExp(
          `CORDON_ERR_CONTROL_WAIT_TIMEOUT: process ${process.pid} holds the data dir .* still starting after 1 s`,
        ),
      );
    } finally {
      await control.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
