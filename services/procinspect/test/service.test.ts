/**
 * The procinspect stage on a bus: signed process events from an agent become alerts with the
 * process tree; whoever can write the topic cannot frame another VM — a forged, misbound or
 * unsigned event is dead-lettered with its code and alerted, never inspected — and a record
 * that is not a ProcessEvent goes to the DLQ with CORDON_ERR_PROCINSPECT_BAD_EVENT.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus, readAll, type ProduceRecord } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, complete, TOPICS, type ProcessEvent } from '@cordon/schemas';
import { createRecordSigner, runStage, type RecordSigner } from '@cordon/stage';
import { producerRegistration, waitFor } from '@cordon/testkit';
import { procinspectStage } from '../src/index.js';

const codec = codecFor(TOPICS.processes);
const signerFor = (producer: string): RecordSigner =>
  createRecordSigner(producer, generateKeyPairSync('ed25519').privateKey);

function event(id: string, agent: string, vm: string, o: Partial<ProcessEvent> = {}): ProduceRecord {
  const e = complete(TOPICS.processes, {
    event_id: id,
    agent,
    vm,
    ts_us: Date.now() * 1000,
    kind: 'exec',
    source: 'connector',
    pid: 4242,
    ppid: 4241,
    sid: 4000,
    uid: 33,
    euid: 33,
    image: '/usr/bin/dash',
    argv: ['sh', '-c', 'id'],
    command_line: 'sh -c id',
    parent_image: '/usr/sbin/nginx',
    ancestors: [
      { pid: 4241, image: '/usr/sbin/nginx', command_line: 'nginx: worker process', uid: 33, start_us: 0 },
      { pid: 4000, image: '/usr/sbin/nginx', command_line: 'nginx: master process', uid: 0, start_us: 0 },
    ],
    ...o,
  } as ProcessEvent);
  return { key: Buffer.from(vm), value: codec.encode(e) };
}

test('signed process events become alerts with their tree; forged, misbound, unsigned and undecodable ones are dead-lettered', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-procinspect-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: dir, ctx });
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    const a = signerFor('agt-aaaa'); // enrolled for vm-web-1
    const b = signerFor('agt-bbbb'); // enrolled for vm-db-1
    const mallory = signerFor('agt-aaaa');
    const p = bus.producer();
    await p.send(TOPICS.producers, [
      producerRegistration(a, { vm: 'vm-web-1' }),
      producerRegistration(b, { vm: 'vm-db-1' }),
    ]);
    await p.send(TOPICS.processes, [
      mallory.sign(TOPICS.processes, event('forged', 'agt-aaaa', 'vm-web-1')),
      a.sign(TOPICS.processes, event('misbound', 'agt-aaaa', 'vm-db-1')),
      event('unsigned', 'agt-aaaa', 'vm-web-1'),
      a.sign(TOPICS.processes, { key: Buffer.from('vm-web-1'), value: Buffer.from('not avro at all') }),
      a.sign(TOPICS.processes, event('genuine', 'agt-aaaa', 'vm-web-1')),
      a.sign(
        TOPICS.processes,
        event('benign', 'agt-aaaa', 'vm-web-1', {
          image: '/usr/bin/ls',
          parent_image: '/usr/bin/bash',
          argv: ['ls'],
          command_line: 'ls',
        }),
      ),
    ]);
    await p.close();
    const svc = await runStage(procinspectStage, { bus, ctx, verifyRecords: true });
    try {
      await waitFor(
        'four dead letters and the genuine alert',
        async () =>
          (await readAll(bus, TOPICS.dlq)).length >= 4 &&
          (await readAll(bus, TOPICS.alerts)).some(
            (r) => codecFor(TOPICS.alerts).decode(r.value!).stage === 'procinspect',
          ),
        30_000,
      );
      await new Promise((r) => setTimeout(r, 300));
    } finally {
      await svc.stop();
    }
    const dlq = (await readAll(bus, TOPICS.dlq)).map((r) => codecFor(TOPICS.dlq).decode(r.value!));
    const codes = dlq.map((d) => {
      try {
        return [codec.decode(d.value!).event_id, d.error_code];
      } catch {
        return ['(garbage)', d.error_code];
      }
    });
    assert.deepEqual(Object.fromEntries(codes), {
      forged: 'CORDON_ERR_RECORD_FORGED',
      misbound: 'CORDON_ERR_RECORD_MISBOUND',
      unsigned: 'CORDON_ERR_RECORD_UNSIGNED',
      '(garbage)': 'CORDON_ERR_PROCINSPECT_BAD_EVENT',
    });
    const alerts = (await readAll(bus, TOPICS.alerts)).map((r) => codecFor(TOPICS.alerts).decode(r.value!));
    const found = alerts.filter((x) => x.stage === 'procinspect' && x.category !== 'record-trust');
    assert.deepEqual(
      found.map((x) => [x.vm, x.rule_id, x.sensor]),
      [['vm-web-1', 'cordon:cordon-proc-service-shell', 'agent:agt-aaaa']],
      'only the genuine event is inspected',
    );
    const ev = JSON.parse(found[0]!.evidence) as { event_id: string; tree: Array<{ pid: number; image: string }> };
    assert.equal(ev.event_id, 'genuine');
    assert.deepEqual(
      ev.tree.map((t) => t.pid),
      [4242, 4241, 4000],
    );
    assert.deepEqual(
      alerts
        .filter((x) => x.category === 'record-trust')
        .map((x) => x.rule_id)
        .sort(),
      ['cordon:record-forged', 'cordon:record-misbound', 'cordon:record-unsigned'],
    );
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
