import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus, readAll, type Bus } from '@cordon/bus';
import { createFimWatcher } from '@cordon/fim-scan';
import { createContext, Metrics, silentLogger } from '@cordon/runtime';
import { codecFor, TOPICS, type Alert, type FileEvent } from '@cordon/schemas';
import { runStage, StageTelemetry } from '@cordon/stage';
import { fimStage, type FimEvidence } from '../src/index.js';

async function ensureTopics(bus: Bus): Promise<void> {
  await bus.admin.ensureTopics([
    { name: TOPICS.fim, partitions: 2, cleanupPolicy: 'delete', retentionMs: -1 },
    { name: TOPICS.alerts, partitions: 2, cleanupPolicy: 'delete', retentionMs: -1 },
    { name: TOPICS.dlq, partitions: 1, cleanupPolicy: 'delete', retentionMs: -1 },
  ]);
}

const alertsOf = async (bus: Bus): Promise<Alert[]> =>
  (await readAll(bus, TOPICS.alerts)).map((r) => codecFor(TOPICS.alerts).decode(r.value!));

test('agent library → cordon.fim.v1 → processor → cordon.alerts.v1: a change in a watched tree is an alert within 2 s naming the changed attributes; bad records go to the DLQ', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-fimproc-'));
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'etc'), { recursive: true });
  writeFileSync(join(tree, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\n');
  writeFileSync(join(tree, 'etc', 'motd'), 'hello\n');
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx: createContext({ log: silentLogger }) });
  await ensureTopics(bus);
  const metrics = new Metrics();
  const ctx = createContext({ log: silentLogger, metrics });
  const producer = bus.producer();
  const fimCodec = codecFor(TOPICS.fim);
  const publish = async (events: FileEvent[]) => {
    await producer.send(
      TOPICS.fim,
      events.map((e) => ({ key: Buffer.from(`${e.vm}|${e.path}`), value: fimCodec.encode(e) })),
    );
  };
  const libMetrics = new Metrics();
  const watcher = createFimWatcher({
    policy: { paths: [tree], scanIntervalS: 0, debounceMs: 50 },
    stateDir: join(dir, 'state'),
    ctx: createContext({ log: silentLogger, metrics: libMetrics }),
    identity: { agent: 'agent-7', vm: 'vm-7' },
    onEvents: publish,
  });
  const telemetry = new StageTelemetry();
  const proc = await runStage(fimStage, {
    bus,
    ctx,
    telemetry,
    config: { rules: [{ id: 'accounts', paths: [`${tree}/etc/passwd`], severity: 1 }], maxBatchRecords: 50 },
  });
  try {
    await watcher.start();
    const t0 = Date.now();
    writeFileSync(join(tree, 'etc', 'passwd'), 'root:x:0:0::/root:/bin/sh\nevil:x:0:0::/:/bin/sh\n');
    chmodSync(join(tree, 'etc', 'motd'), 0o666);
    let alerts: Alert[] = [];
    while (Date.now() - t0 < 2000) {
      alerts = await alertsOf(bus);
      if (alerts.length >= 2) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(Date.now() - t0 < 2000, `alerts after ${Date.now() - t0} ms`);
    const passwd = alerts.find((a) => a.rule_id === 'fim:accounts')!;
    assert.ok(passwd, JSON.stringify(alerts.map((a) => a.signature)));
    assert.equal(passwd.severity, 1);
    assert.equal(passwd.vm, 'vm-7');
    const ev = JSON.parse(passwd.evidence) as FimEvidence;
    assert.deepEqual(
      ev.changes.map((c) => c.attribute).filter((a) => a === 'sha256' || a === 'size'),
      ['size', 'sha256'],
    );
    assert.equal(ev.changes.find((c) => c.attribute === 'size')!.before, 26);
    assert.equal(ev.changes.find((c) => c.attribute === 'size')!.after, 48);
    const motd = alerts.find((a) => a.signature.startsWith(`File changed: ${join(tree, 'etc', 'motd')}`))!;
    assert.deepEqual(
      (JSON.parse(motd.evidence) as FimEvidence).changes.map((c) => c.attribute),
      ['mode'],
    );

    // Garbage and an impossible event go to the DLQ; the stream goes on.
    await producer.send(TOPICS.fim, [{ key: Buffer.from('x'), value: Buffer.from('not avro') }]);
    const impossible: FileEvent = {
      event_id: 'bad',
      agent: 'a',
      vm: 'v',
      ts_us: 1,
      path: '/x',
      op: 'changed',
      scan: 'realtime',
      before: null,
      after: null,
      renamed_from: null,
      error: null,
    };
    await publish([impossible]);
    const t1 = Date.now();
    while ((await bus.admin.endOffsets(TOPICS.dlq)).get(0)! < 2n && Date.now() - t1 < 5000)
      await new Promise((r) => setTimeout(r, 50));
    const letters = (await readAll(bus, TOPICS.dlq)).map((r) => codecFor(TOPICS.dlq).decode(r.value!));
    assert.deepEqual(letters.map((l) => l.error_code).sort(), [
      'CORDON_ERR_FIMPROC_BAD_EVENT',
      'CORDON_ERR_SCHEMA_WIRE_FORMAT',
    ]);
    for (const l of letters) assert.equal(l.stage, 'fim');
  } finally {
    await watcher.stop();
    await proc.stop();
    await proc.done;
    await producer.close();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
  assert.equal(
    await telemetry.sample('cordon_stage_records_total', { stage: 'fim', topic: TOPICS.fim, outcome: 'dlq' }),
    2,
  );
  assert.equal(
    await telemetry.sample('cordon_stage_errors_total', { stage: 'fim', code: 'CORDON_ERR_FIMPROC_BAD_EVENT' }),
    1,
  );
  assert.ok(
    (await telemetry.sample('cordon_stage_records_total', { stage: 'fim', topic: TOPICS.alerts, outcome: 'out' })) >= 2,
  );
  assert.equal(libMetrics.get('fim.errors'), 0, 'the agent library met no error');
});

test('a replayed fim topic gives the same alert ids (a restarted processor re-reading its input duplicates nothing downstream)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-fimproc-'));
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx: createContext({ log: silentLogger }) });
  await ensureTopics(bus);
  const ctx = createContext({ log: silentLogger });
  const producer = bus.producer();
  const ev: FileEvent = {
    event_id: 'e-1',
    agent: 'a',
    vm: 'v',
    ts_us: 5,
    path: '/etc/shadow',
    op: 'added',
    scan: 'scheduled',
    before: null,
    after: {
      type: 'file',
      size: 1,
      mode: 0o100600,
      uid: 0,
      gid: 0,
      owner: null,
      group: null,
      inode: 1,
      mtime_us: 1,
      ctime_us: 1,
      sha256: null,
      link_target: null,
    },
    renamed_from: null,
    error: null,
  };
  await producer.send(TOPICS.fim, [{ key: Buffer.from('v|/etc/shadow'), value: codecFor(TOPICS.fim).encode(ev) }]);
  try {
    const ids: string[] = [];
    for (const group of ['g1', 'g2']) {
      const p = await runStage(fimStage, { bus, ctx, config: { groupId: group } });
      const t0 = Date.now();
      while ((await alertsOf(bus)).length < ids.length + 1 && Date.now() - t0 < 5000)
        await new Promise((r) => setTimeout(r, 50));
      await p.stop();
      ids.push((await alertsOf(bus)).at(-1)!.alert_id);
    }
    assert.equal(ids.length, 2);
    assert.equal(ids[0], ids[1]);
  } finally {
    await producer.close();
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
