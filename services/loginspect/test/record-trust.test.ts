/**
 * Records bound to their producer, attacked through loginspect: whoever can write `logs` (any
 * Kafka client; a compromised agent) tries to get an address blocked by shipping auth failures
 * as another VM's agent. Every forgery goes to the DLQ with its code and raises one alert that
 * carries no address; none becomes a block. The genuine agent's batch is inspected as before.
 * On the embedded bus with the check switched on, and on real Kafka (its default there).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus, createKafkaBus, readAll, type Bus } from '@cordon/bus';
import { allTopicSpecs, codecFor, TOPICS, type LogBatch } from '@cordon/schemas';
import { createContext, silentLogger } from '@cordon/runtime';
import { createRecordSigner, runStage, type RecordSigner } from '@cordon/stage';
import { freshCordonTopics, kafkaBrokers, producerRegistration, waitFor } from '@cordon/testkit';
import { loginspectStage } from '../src/index.js';

const logs = codecFor(TOPICS.logs);

function failures(ip: string, agent: string, vm: string, id: string): { key: Buffer; value: Buffer } {
  const lines = Array.from(
    { length: 6 },
    (_, i) =>
      `Jun  1 11:59:0${i} web1 sshd[${900 + i}]: Failed password for invalid user admin from ${ip} port ${40000 + i} ssh2`,
  );
  let offset = 0;
  const batch: LogBatch = {
    batch_id: id,
    agent,
    vm,
    source: '/var/log/auth.log',
    format: null,
    lines: lines.map((l) => {
      const rec = { ts_us: Date.UTC(2024, 5, 1, 12) * 1000, offset, line: Buffer.from(`${l}\n`) };
      offset += rec.line.length;
      return rec;
    }),
  };
  return { key: Buffer.from(`${vm}|/var/log/auth.log`), value: logs.encode(batch) };
}

const signerFor = (producer: string): RecordSigner =>
  createRecordSigner(producer, generateKeyPairSync('ed25519').privateKey);

async function attack(bus: Bus): Promise<void> {
  await bus.admin.ensureTopics(allTopicSpecs({ partitions: { [TOPICS.logs]: 2 } }));
  const a = signerFor('agt-aaaa'); // enrolled for vm-web-1
  const b = signerFor('agt-bbbb'); // enrolled for vm-db-1
  const mallory = signerFor('agt-aaaa'); // claims to be agent A, with a key of its own
  // a batch B signed, its producer header then changed to A
  const swapped = b.sign(TOPICS.logs, failures('198.51.100.5', 'agt-aaaa', 'vm-web-1', 'swapped'));
  swapped.headers!['cordon-agent'] = Buffer.from('agt-aaaa');
  const producer = bus.producer();
  await producer.send(TOPICS.producers, [
    producerRegistration(a, { vm: 'vm-web-1' }),
    producerRegistration(b, { vm: 'vm-db-1' }),
  ]);
  await producer.send(TOPICS.logs, [
    // a forged batch claiming agent A's VM, signed with another key
    mallory.sign(TOPICS.logs, failures('198.51.100.1', 'agt-aaaa', 'vm-web-1', 'forged')),
    // agent A, genuinely signed, speaking for VM B (its key is valid: its binding is not)
    a.sign(TOPICS.logs, failures('198.51.100.2', 'agt-aaaa', 'vm-db-1', 'misbound-vm')),
    // agent B signing a batch that names agent A on A's VM
    b.sign(TOPICS.logs, failures('198.51.100.3', 'agt-aaaa', 'vm-web-1', 'misbound-agent')),
    // no signature at all
    failures('198.51.100.4', 'agt-aaaa', 'vm-web-1', 'unsigned'),
    swapped,
    // the real agent A on its own VM
    a.sign(TOPICS.logs, failures('203.0.113.50', 'agt-aaaa', 'vm-web-1', 'genuine')),
  ]);
  await producer.close();

  const svc = await runStage(loginspectStage, {
    bus,
    ctx: createContext({ log: silentLogger }),
    config: { inspector: { blocks: { baseTtlS: 300 } } },
    verifyRecords: true,
  });
  try {
    await waitFor(
      'five dead letters and the genuine batch blocked',
      async () => (await readAll(bus, TOPICS.dlq)).length >= 5 && (await readAll(bus, TOPICS.blocks)).length >= 1,
      60_000,
    );
    // nothing more comes of the forgeries a moment later
    await new Promise((r) => setTimeout(r, 500));
  } finally {
    await svc.stop();
  }

  const dlq = (await readAll(bus, TOPICS.dlq)).map((r) => codecFor(TOPICS.dlq).decode(r.value!));
  const byBatch = new Map(dlq.map((d) => [logs.decode(d.value!).batch_id, d.error_code]));
  assert.deepEqual(Object.fromEntries(byBatch), {
    forged: 'CORDON_ERR_RECORD_FORGED',
    'misbound-vm': 'CORDON_ERR_RECORD_MISBOUND',
    'misbound-agent': 'CORDON_ERR_RECORD_MISBOUND',
    unsigned: 'CORDON_ERR_RECORD_UNSIGNED',
    swapped: 'CORDON_ERR_RECORD_FORGED',
  });

  const blocks = (await readAll(bus, TOPICS.blocks)).map((r) => codecFor(TOPICS.blocks).decode(r.value!));
  assert.deepEqual(
    blocks.map((d) => [d.enforcer, d.target.ip, d.scope]),
    [['agent:agt-aaaa', '203.0.113.50', 'vm-web-1']],
    'only the genuine batch blocks; no forged address is ever blocked',
  );

  const alerts = (await readAll(bus, TOPICS.alerts)).map((r) => codecFor(TOPICS.alerts).decode(r.value!));
  const refusals = alerts.filter((a) => a.category === 'record-trust');
  // one alert per kind (rate-limited: the second misbound and forged records only count)
  assert.deepEqual(refusals.map((a) => a.rule_id).sort(), [
    'cordon:record-forged',
    'cordon:record-misbound',
    'cordon:record-unsigned',
  ]);
  for (const a of refusals) {
    assert.equal(a.src_ip, null, 'a refusal alert names no address, so it can never become a block');
    assert.equal(a.dst_ip, null);
    assert.equal(a.stage, 'loginspect');
  }
  // the genuine batch's inspection alerts: only the genuine attacker
  const inspected = alerts.filter((a) => a.category !== 'record-trust');
  assert.ok(inspected.length >= 5);
  assert.deepEqual([...new Set(inspected.map((a) => a.src_ip))], ['203.0.113.50']);
}

test(
  'forged, misbound and unsigned log batches are dead letters and one alert each, never a block; the genuine one is inspected (embedded bus)',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-rec-trust-'));
    const bus = createEmbeddedBus({ dataDir: dir, ctx: createContext({ log: silentLogger }) });
    try {
      await attack(bus);
    } finally {
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'the same on real Kafka',
  { timeout: 180_000, skip: process.env.KAFKA_BROKERS ? false : 'KAFKA_BROKERS is not set' },
  async () => {
    const brokers = kafkaBrokers();
    await freshCordonTopics(brokers);
    const bus = createKafkaBus({ brokers, ctx: createContext({ log: silentLogger }) });
    try {
      await attack(bus);
    } finally {
      await bus.close();
    }
  },
);
