/**
 * Alert webhooks end to end on the embedded bus: a target that is down for the first half of
 * the run receives every alert exactly once, in order, after it comes back; every request is
 * signed and the receiver refuses a tampered one; a target that refuses alerts for good sends
 * them to the DLQ after its retry budget.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request, type IncomingMessage, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, readRange } from '@cordon/bus';
import { allTopicSpecs, codecFor, TOPICS } from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { waitFor } from '@cordon/testkit';
import { notifyStage, SIGNATURE_HEADER, TIMESTAMP_HEADER, verifyWebhook } from '../src/index.js';
import { alert } from './fixtures.js';

const SECRET = 'test-webhook-secret-0123456789';

const bodyOf = (req: IncomingMessage) =>
  new Promise<string>((res) => {
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => res(Buffer.concat(parts).toString('utf8')));
  });

/** A receiver as a SOC would write one: verifies the signature and the replay window, else 401. */
function receiver(got: string[], refused: string[]): Server {
  return createServer(async (req, res) => {
    const body = await bodyOf(req);
    try {
      verifyWebhook(
        SECRET,
        { timestamp: req.headers[TIMESTAMP_HEADER] as string, signature: req.headers[SIGNATURE_HEADER] as string },
        body,
        Math.floor(Date.now() / 1000),
      );
    } catch (err) {
      refused.push((err as Error).message);
      res.writeHead(401).end();
      return;
    }
    got.push(JSON.parse(body).alert_id);
    res.writeHead(204).end();
  });
}

const freePort = async (): Promise<number> => {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  await new Promise((r) => s.close(r));
  return port;
};

test(
  'a webhook target down for the first half of the run gets every alert once, in order; bad signatures are refused; a refusing target dead-letters',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-notify-'));
    const ctx = createContext({ log: silentLogger });
    const bus = createEmbeddedBus({ dataDir: dir, ctx });
    await bus.admin.ensureTopics(allTopicSpecs());
    process.env.CORDON_TEST_HOOK_SECRET = SECRET;
    const port = await freePort();
    const refusing = createServer((req, res) => void bodyOf(req).then(() => res.writeHead(400).end()));
    await new Promise<void>((r) => refusing.listen(0, '127.0.0.1', r));
    const got: string[] = [];
    const refused: string[] = [];
    let server: Server | undefined;
    const stage = await runStage(notifyStage, {
      bus,
      ctx,
      config: {
        siem: { enabled: false },
        silence: { enabled: false },
        webhooks: [
          {
            name: 'soc',
            url: `http://127.0.0.1:${port}/hook`,
            secretEnv: 'CORDON_TEST_HOOK_SECRET',
            retry: { maxAttempts: 10_000, initialMs: 50, maxMs: 400 },
            fromBeginning: true,
          },
          {
            name: 'broken',
            url: `http://127.0.0.1:${(refusing.address() as AddressInfo).port}/`,
            secretEnv: 'CORDON_TEST_HOOK_SECRET',
            retry: { maxAttempts: 3, initialMs: 10, maxMs: 20 },
            fromBeginning: true,
            filter: { maxSeverity: 1 },
          },
        ],
      },
    });
    try {
      const codec = codecFor(TOPICS.alerts);
      const publish = (from: number, n: number) =>
        bus.producer().send(
          TOPICS.alerts,
          Array.from({ length: n }, (_, k) => ({
            key: Buffer.from('web-1'),
            value: codec.encode(alert(from + k, { severity: (from + k) % 2 ? 1 : 3 })),
          })),
        );
      // first half: the target is down, the sender keeps retrying the first alert
      await publish(0, 20);
      await new Promise((r) => setTimeout(r, 2000));
      assert.equal(got.length, 0);
      // the target comes back; more alerts arrive meanwhile
      server = receiver(got, refused);
      await new Promise<void>((r) => server!.listen(port, '127.0.0.1', r));
      await publish(20, 20);
      await waitFor('all 40 alerts at the receiver', () => got.length >= 40, 60_000);
      await new Promise((r) => setTimeout(r, 500));
      assert.deepEqual(
        got,
        Array.from({ length: 40 }, (_, i) => `a${String(i).padStart(4, '0')}`),
        'every alert, once, in order',
      );

      // a request whose body was changed after signing is refused by the receiver
      const body = JSON.stringify({ alert_id: 'forged' });
      const status = await new Promise<number>((res, rej) => {
        const req = request(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: '/hook',
            headers: {
              [TIMESTAMP_HEADER]: String(Math.floor(Date.now() / 1000)),
              [SIGNATURE_HEADER]: `v1=${'0'.repeat(64)}`,
            },
          },
          (r) => {
            r.resume();
            res(r.statusCode ?? 0);
          },
        );
        req.on('error', rej);
        req.end(body);
      });
      assert.equal(status, 401);
      assert.equal(refused.length, 1);
      assert.ok(!got.includes('forged'));

      // the refusing target: its 20 severity-1 alerts are dead letters with the webhook's code
      const letters = await waitFor(
        'dead letters of the refusing target',
        async () => {
          const out: string[] = [];
          await readRange(bus, TOPICS.dlq, (r) => {
            if (r.value) out.push(codecFor(TOPICS.dlq).decode(r.value).error_code);
          });
          return out.length >= 20 ? out : null;
        },
        30_000,
      );
      assert.equal(letters.length, 20);
      assert.ok(letters.every((c) => c === 'CORDON_ERR_NOTIFY_WEBHOOK_FAILED'));
    } finally {
      await stage.stop();
      await bus.close();
      server?.close();
      refusing.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
