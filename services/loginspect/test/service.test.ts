import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createEmbeddedBus, readRange, type Bus, type ConsumedRecord } from '@cordon/bus';
import { codecFor, TOPICS, type LogBatch } from '@cordon/schemas';
import { createContext, Metrics, silentLogger } from '@cordon/runtime';
import { runStage } from '@cordon/stage';
import { tempDir, waitFor } from '@cordon/testkit';
import { alertIdFor, loginspectStage } from '../src/index.js';

async function readAll(bus: Bus, topic: string): Promise<ConsumedRecord[]> {
  const out: ConsumedRecord[] = [];
  await readRange(bus, topic, (r) => out.push(r));
  return out;
}

const count = async (bus: Bus, topic: string) =>
  [...(await bus.admin.endOffsets(topic)).values()].reduce((n, e) => n + Number(e), 0);

function batch(id: string, lines: string[], firstOffset = 0): LogBatch {
  let off = firstOffset;
  return {
    batch_id: id,
    agent: 'a-17',
    vm: 'vm-web-1',
    source: '/var/log/auth.log',
    format: null,
    lines: lines.map((l) => {
      const rec = { ts_us: Date.UTC(2024, 5, 1, 12) * 1000, offset: off, line: Buffer.from(`${l}\n`) };
      off += rec.line.length;
      return rec;
    }),
  };
}

test('auth failures in a log batch become alerts and a block for the shipping agent; bad records go to the DLQ', async (t) => {
  const dir = tempDir(t, 'loginspect');
  const bus = createEmbeddedBus({ dataDir: dir, ctx: createContext({ log: silentLogger }) });
  await bus.admin.ensureTopics(
    [TOPICS.logs, TOPICS.alerts, TOPICS.blocks, TOPICS.dlq].map((name) => ({
      name,
      partitions: name === TOPICS.logs ? 2 : 1,
      cleanupPolicy: name === TOPICS.blocks ? ('compact' as const) : ('delete' as const),
      retentionMs: -1,
    })),
  );
  const attack = Array.from(
    { length: 6 },
    (_, i) =>
      `Jun  1 11:59:0${i} web1 sshd[${900 + i}]: Failed password for invalid user admin from 203.0.113.50 port ${40000 + i} ssh2`,
  );
  const codec = codecFor(TOPICS.logs);
  const b1 = batch('b1', attack.slice(0, 3));
  const b2 = batch(
    'b2',
    [...attack.slice(3), 'Jun  1 11:59:30 web1 CRON[5]: (root) CMD (true)', '\u0000\u00ff binary junk'],
    b1.lines.at(-1)!.offset + 200,
  );
  const producer = bus.producer();
  const key = Buffer.from('vm-web-1|/var/log/auth.log');
  await producer.send(TOPICS.logs, [
    { key, value: codec.encode(b1) },
    { key, value: Buffer.from('not avro') },
    { key, value: codec.encode(b2) },
  ]);
  await producer.close();

  const metrics = new Metrics();
  const svc = await runStage(loginspectStage, {
    bus,
    ctx: createContext({ log: silentLogger, metrics }),
    config: { inspector: { blocks: { baseTtlS: 300 } } },
  });
  await waitFor(
    'alerts, a block and a dead letter',
    async () =>
      (await count(bus, TOPICS.alerts)) >= 6 &&
      (await count(bus, TOPICS.blocks)) >= 1 &&
      (await count(bus, TOPICS.dlq)) >= 1,
  );
  await svc.stop();

  const alerts = (await readAll(bus, TOPICS.alerts)).map((r) => ({
    key: r.key!.toString(),
    a: codecFor(TOPICS.alerts).decode(r.value!),
  }));
  assert.equal(alerts.length, 6);
  for (const { key: k, a } of alerts) {
    assert.equal(k, 'vm-web-1');
    assert.equal(a.stage, 'loginspect');
    assert.equal(a.rule_id, 'cordon:cordon-auth-sshd-failed');
    assert.equal(a.src_ip, '203.0.113.50');
    assert.equal(a.severity, 3);
    assert.match(JSON.parse(a.evidence).line as string, /Failed password/);
  }
  assert.equal(new Set(alerts.map((x) => x.a.alert_id)).size, 6);
  assert.equal(alerts[0]!.a.alert_id, alertIdFor('vm-web-1', '/var/log/auth.log', 0, 'cordon:cordon-auth-sshd-failed'));
  assert.equal(alerts[0]!.a.ts_us, Date.UTC(2024, 5, 1, 11, 59, 0) * 1000, 'alert time is the line time');

  const blocks = await readAll(bus, TOPICS.blocks);
  assert.equal(blocks.length, 1);
  assert.equal(blocks[0]!.key!.toString(), 'agent:a-17|203.0.113.50');
  const bd = codecFor(TOPICS.blocks).decode(blocks[0]!.value!);
  assert.equal(bd.enforcer, 'agent:a-17');
  assert.deepEqual({ kind: bd.target.kind, ip: bd.target.ip }, { kind: 'ip', ip: '203.0.113.50' });
  assert.equal(bd.scope, 'vm-web-1');
  assert.equal(bd.ttl_ms, 300_000);
  assert.equal(bd.expires_us - bd.created_us, 300_000_000);
  assert.equal(bd.created_us, Date.UTC(2024, 5, 1, 11, 59, 4) * 1000, 'the fifth failure, in log time');
  assert.equal(bd.reason_alert, alerts[4]!.a.alert_id);
  assert.equal(bd.status, 'requested');

  const dlq = (await readAll(bus, TOPICS.dlq)).map((r) => codecFor(TOPICS.dlq).decode(r.value!));
  assert.equal(dlq.length, 1);
  assert.equal(dlq[0]!.error_code, 'CORDON_ERR_LOGINSPECT_BAD_BATCH');
  assert.equal(dlq[0]!.value!.toString(), 'not avro');
  assert.equal(metrics.get('loginspect.lines'), 8);
  assert.equal(metrics.get('loginspect.errors'), 1);
  await bus.close();
});

test('threshold counts survive a restart: the checkpoint carries them, the fifth failure still blocks', async (t) => {
  const dir = tempDir(t, 'loginspect-ckpt');
  const bus = createEmbeddedBus({ dataDir: dir, ctx: createContext({ log: silentLogger }) });
  await bus.admin.ensureTopics(
    [TOPICS.logs, TOPICS.alerts, TOPICS.blocks, TOPICS.dlq, TOPICS.state].map((name) => ({
      name,
      partitions: name === TOPICS.logs ? 2 : 1,
      cleanupPolicy: name === TOPICS.blocks || name === TOPICS.state ? ('compact' as const) : ('delete' as const),
      retentionMs: -1,
    })),
  );
  const attack = Array.from(
    { length: 5 },
    (_, i) =>
      `Jun  1 11:59:0${i} web1 sshd[${900 + i}]: Failed password for invalid user admin from 203.0.113.50 port ${40000 + i} ssh2`,
  );
  const codec = codecFor(TOPICS.logs);
  const key = Buffer.from('vm-web-1|/var/log/auth.log');
  const b1 = batch('b1', attack.slice(0, 3));
  const b2 = batch('b2', attack.slice(3), b1.lines.at(-1)!.offset + 200);
  const producer = bus.producer();
  try {
    const m1 = new Metrics();
    const first = await runStage(loginspectStage, { bus, ctx: createContext({ log: silentLogger, metrics: m1 }) });
    await producer.send(TOPICS.logs, [{ key, value: codec.encode(b1) }]);
    await waitFor('three alerts', async () => (await count(bus, TOPICS.alerts)) >= 3);
    await first.stop();
    assert.equal(await count(bus, TOPICS.blocks), 0, 'three failures do not block');
    assert.ok((m1.get('loginspect.checkpoints') ?? 0) >= 1, 'stopping checkpoints the partition');

    const m2 = new Metrics();
    const second = await runStage(loginspectStage, { bus, ctx: createContext({ log: silentLogger, metrics: m2 }) });
    await producer.send(TOPICS.logs, [{ key, value: codec.encode(b2) }]);
    await waitFor('the block', async () => (await count(bus, TOPICS.blocks)) >= 1);
    await second.stop();
    assert.equal(m2.get('loginspect.restored'), 1);
    const bd = codecFor(TOPICS.blocks).decode((await readAll(bus, TOPICS.blocks))[0]!.value!);
    assert.equal(
      bd.created_us,
      Date.UTC(2024, 5, 1, 11, 59, 4) * 1000,
      'the fifth failure, counted across the restart',
    );
    const ids = (await readAll(bus, TOPICS.alerts)).map((r) => codecFor(TOPICS.alerts).decode(r.value!).alert_id);
    assert.equal(new Set(ids).size, 5, 'one alert per failure');

    // a checkpoint that does not decode: the partition starts empty, the record goes to the DLQ
    await producer.send(TOPICS.state, [
      {
        key: Buffer.from(
          `loginspect|${TOPICS.logs}|${[...(await bus.admin.endOffsets(TOPICS.logs)).entries()].find(([, e]) => e > 0n)![0]}`,
        ),
        value: Buffer.from('garbage'),
      },
    ]);
    const m3 = new Metrics();
    const third = await runStage(loginspectStage, { bus, ctx: createContext({ log: silentLogger, metrics: m3 }) });
    await waitFor('the dead letter', async () =>
      (await readAll(bus, TOPICS.dlq)).some(
        (r) => codecFor(TOPICS.dlq).decode(r.value!).error_code === 'CORDON_ERR_LOGINSPECT_STATE',
      ),
    );
    await third.stop();
  } finally {
    await producer.close();
    await bus.close();
  }
});
