/**
 * Watchdog records bound to their host (issue 21): a real watchdog, enrolled with a host token,
 * captures a VM's traffic on its host bridge (a network-namespace lab) and signs its packet
 * batches; dpi checks every batch before inspecting it. The attacks: host A's own (registered,
 * valid) key signing a batch that names host B's watchdog as its sensor, a batch signed by a key
 * no coordinator registered claiming to be host B's, and an unsigned batch in the name of the
 * enrolled host A. Each is a dead letter with its code and raises an alert naming no address;
 * none is ever inspected (no detection of its attacker); the genuine capture is inspected.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeHostToken } from '@cordon/agent';
import { createEmbeddedBus, createKafkaBus, readAll, type Bus, type ProduceRecord } from '@cordon/bus';
import { coordinatorStage } from '@cordon/coordinator';
import { dpiStage } from '@cordon/dpi';
import { applyPolicyFile } from '@cordon/policy';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS, type InventoryRecord, type PacketBatch } from '@cordon/schemas';
import { createRecordSigner, ed25519PublicKey, runStage, verifyRecord, type RecordSigner } from '@cordon/stage';
import {
  freshCordonTopics,
  ipBlockDecision,
  kafkaBrokers,
  makeHostsLab,
  udpFrame as ethUdp,
  waitFor,
  writeEnrollSecret,
} from '@cordon/testkit';
import { watchdogStage, type WatchdogHandle } from '@cordon/watchdog';

const ctx = createContext({ log: silentLogger });
const SID = 9100301;
const PORT = 9999;
const packets = codecFor(TOPICS.packets);

const canLab = process.getuid?.() === 0 ? false : 'needs root for network namespaces';

/** An Ethernet/IPv4/UDP frame (checksums are not checked by dpi with checksum: off). */
function udpFrame(dstMac: string, src: string, dst: string, payload: string): Buffer {
  return ethUdp(payload, { dstMac, srcMac: '02:00:00:00:00:09', src, dst, dport: PORT });
}

function batch(id: string, sensor: string, vm: string, frame: Buffer): { key: Buffer; value: Buffer } {
  const b: PacketBatch = {
    batch_id: id,
    sensor,
    vm,
    linktype: 1,
    end_of_source: false,
    recovery_of: null,
    packets: [{ ts_us: Date.now() * 1000, seq: 1, orig_len: frame.length, frame }],
  };
  return { key: Buffer.from(vm), value: packets.encode(b) };
}

async function scenario(bus: Bus, dir: string, tag: string): Promise<void> {
  const lab = makeHostsLab({ tag, hosts: ['hva', 'hvb'], vms: { vm1: 'hva' }, subnet: 61 });
  const running: Array<{ stop(): Promise<void> }> = [];
  try {
    const vm = lab.vms.vm1!;
    const { secret, file: secretFile } = writeEnrollSecret(dir);
    writeFileSync(
      join(dir, 'wd.rules'),
      `alert udp any any -> any ${PORT} (msg:"CORDON watchdog signing"; content:"CORDON-WD-SIGN"; classtype:attempted-admin; sid:${SID}; rev:1;)\n`,
    );
    writeFileSync(join(dir, 'policy.yaml'), 'id: default\nmode: detect\nruleFiles: [wd.rules]\n');
    await applyPolicyFile({ bus, ctx, dataDir: dir }, join(dir, 'policy.yaml'));
    const inv: InventoryRecord = {
      kind: 'vm',
      id: 'vm1',
      name: 'vm1',
      host: 'hva',
      power: 'on',
      guest_os: null,
      nics: [{ mac: vm.mac, ips: [vm.ip], network: null }],
      updated_us: Date.now() * 1000,
      cluster: null,
      connection: null,
      snapshot: null,
      template: false,
      connector: 'file',
      source: 'test',
    };
    const p = bus.producer();
    await p.send(TOPICS.inventory, [{ key: Buffer.from('vm:vm1'), value: codecFor(TOPICS.inventory).encode(inv) }]);

    running.push(
      await runStage(coordinatorStage, {
        bus,
        ctx,
        config: { enrollSecretFile: secretFile, tickMs: 50 },
        env: { dataDir: dir },
      }),
    );
    // dpi checks producer signatures (as on Kafka, whatever the bus)
    running.push(
      await runStage(dpiStage, { bus, ctx, config: { checksum: 'off' }, env: { dataDir: dir }, verifyRecords: true }),
    );
    const wd = (await runStage(watchdogStage, {
      bus,
      ctx,
      config: {
        host: 'hva',
        bridge: lab.hosts.hva!.bridge,
        capture: { enabled: true, netns: lab.hosts.hva!.ns, pollMs: 20 },
        enforce: { enabled: true, netns: lab.hosts.hva!.ns, table: 'cordon_wdsig' },
        statusIntervalMs: 200,
        enroll: { token: makeHostToken(secret, 'hva', 3_600_000, Date.now()), stateDir: join(dir, 'wd-hva') },
      },
      env: { dataDir: dir },
    })) as unknown as WatchdogHandle & { stop(): Promise<void> };
    running.push(wd);
    const hostA: RecordSigner = wd.enrollment!.signer;
    lab.powerOn('vm1');

    // the genuine capture: the attacker on the fabric sends to vm1, the watchdog of hva sees it
    const send = `const s=require('node:dgram').createSocket('udp4');s.send('CORDON-WD-SIGN genuine','${PORT}','${vm.ip}',()=>s.close());`;
    const alerts = async () => (await readAll(bus, TOPICS.alerts)).map((r) => codecFor(TOPICS.alerts).decode(r.value!));
    const detected = await waitFor(
      'the genuine capture inspected',
      async () => {
        lab.exec(lab.attacker.ns, [process.execPath, '-e', send]);
        return (await alerts()).find((a) => a.rule_id === `sid:${SID}`) ?? null;
      },
      60_000,
      300,
    );
    assert.equal(detected.sensor, 'watchdog:hva');
    assert.equal(detected.src_ip, lab.attacker.ip);
    const genuineBatch = (await readAll(bus, TOPICS.packets)).find(
      (r) => packets.decode(r.value!).sensor === 'watchdog:hva',
    )!;
    assert.equal(genuineBatch.headers['cordon-agent']?.toString(), 'watchdog:hva', "the watchdog's batches are signed");

    // its enforcement reports are signed too: a decision for it, applied on its bridge
    const decision = ipBlockDecision({ enforcer: 'watchdog:hva', ip: '198.51.100.50', ttlMs: 600_000 });
    await p.send(TOPICS.blocks, [
      { key: Buffer.from('watchdog:hva|198.51.100.50'), value: codecFor(TOPICS.blocks).encode(decision) },
    ]);
    const status = await waitFor('the block applied and reported', async () =>
      (await readAll(bus, TOPICS.blockStatus)).find((r) => r.key?.toString() === 'watchdog:hva|198.51.100.50'),
    );
    assert.equal(codecFor(TOPICS.blockStatus).decode(status.value!).status, 'applied');
    const registered = codecFor(TOPICS.producers).decode(
      (await readAll(bus, TOPICS.producers)).find((r) => r.key?.toString() === 'watchdog:hva')!.value!,
    );
    assert.ok(
      verifyRecord(
        ed25519PublicKey(registered.public_key),
        TOPICS.blockStatus,
        status.key,
        status.value,
        'watchdog:hva',
        status.headers,
      ),
      "the report verifies under the host's registered key",
    );

    // the attacks, with frames of their own attackers
    const mallory = createRecordSigner('watchdog:hvb', generateKeyPairSync('ed25519').privateKey);
    const frame = (src: string) => udpFrame(vm.mac, src, vm.ip, `CORDON-WD-SIGN from ${src}`);
    const attacks: ProduceRecord[] = [
      // host A's genuine key speaking as host B's watchdog
      hostA.sign(TOPICS.packets, batch('misbound', 'watchdog:hvb', 'vm1', frame('198.51.100.7'))),
      // a key nobody registered, claiming host B
      mallory.sign(TOPICS.packets, batch('forged', 'watchdog:hvb', 'vm1', frame('198.51.100.8'))),
      // no signature, in the name of the enrolled host A
      batch('unsigned', 'watchdog:hva', 'vm1', frame('198.51.100.9')),
    ];
    await p.send(TOPICS.packets, attacks);
    await p.close();

    const dlq = await waitFor(
      'three dead letters',
      async () => {
        const d = (await readAll(bus, TOPICS.dlq)).map((r) => codecFor(TOPICS.dlq).decode(r.value!));
        return d.filter((x) => x.source_topic === TOPICS.packets).length >= 3 ? d : null;
      },
      30_000,
    );
    const byBatch = Object.fromEntries(
      dlq
        .filter((x) => x.source_topic === TOPICS.packets)
        .map((d) => [packets.decode(d.value!).batch_id, d.error_code]),
    );
    assert.deepEqual(byBatch, {
      misbound: 'CORDON_ERR_RECORD_MISBOUND',
      forged: 'CORDON_ERR_RECORD_FORGED',
      unsigned: 'CORDON_ERR_RECORD_UNSIGNED',
    });
    await new Promise((r) => setTimeout(r, 1000));
    const all = await alerts();
    const refusals = all.filter((a) => a.category === 'record-trust');
    assert.deepEqual(refusals.map((a) => a.rule_id).sort(), [
      'cordon:record-forged',
      'cordon:record-misbound',
      'cordon:record-unsigned',
    ]);
    for (const a of refusals) assert.equal(a.src_ip, null, 'a refusal alert names no address');
    const misbound = refusals.find((a) => a.rule_id === 'cordon:record-misbound')!;
    assert.match(JSON.parse(misbound.evidence).message, /names sensor watchdog:hvb, its signer is watchdog:hva/);
    // never inspected: no detection names the forged batches' attackers, nor host B
    const detections = all.filter((a) => a.rule_id === `sid:${SID}`);
    assert.ok(detections.length >= 1);
    assert.deepEqual([...new Set(detections.map((a) => a.src_ip))], [lab.attacker.ip]);
    assert.deepEqual([...new Set(detections.map((a) => a.sensor))], ['watchdog:hva']);
  } finally {
    for (const s of running.reverse()) await s.stop().catch(() => undefined);
    lab.destroy();
  }
}

test(
  "a watchdog's signed capture is inspected; its key speaking for another host, an unregistered key and an unsigned batch in its name are dead letters with alerts (embedded bus)",
  { timeout: 180_000, skip: canLab },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-wd-sign-'));
    const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
    try {
      await bus.admin.ensureTopics(allTopicSpecs());
      await scenario(bus, dir, 'wdsge');
    } finally {
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'the same on real Kafka',
  { timeout: 240_000, skip: canLab || (process.env.KAFKA_BROKERS ? false : 'KAFKA_BROKERS is not set') },
  async () => {
    const brokers = kafkaBrokers();
    await freshCordonTopics(brokers);
    const dir = mkdtempSync(join(tmpdir(), 'cordon-wd-sign-k-'));
    const bus = createKafkaBus({ brokers, ctx });
    try {
      await bus.admin.ensureTopics(allTopicSpecs());
      await scenario(bus, dir, 'wdsgk');
    } finally {
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test(
  'trust.requireSigned: packets: an unsigned batch of any sensor (a replay) is refused; by default it is inspected',
  { timeout: 60_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-wd-require-'));
    const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
    try {
      await bus.admin.ensureTopics(allTopicSpecs());
      writeFileSync(
        join(dir, 'wd.rules'),
        `alert udp any any -> any ${PORT} (msg:"CORDON watchdog signing"; content:"CORDON-WD-SIGN"; sid:${SID}; rev:1;)\n`,
      );
      writeFileSync(join(dir, 'policy.yaml'), 'id: default\nmode: detect\nruleFiles: [wd.rules]\n');
      await applyPolicyFile({ bus, ctx, dataDir: dir }, join(dir, 'policy.yaml'));
      const p = bus.producer();
      const mac = '52:54:00:00:00:01';
      await p.send(TOPICS.packets, [
        batch('replay-1', 'replay:a.pcap', 'vm1', udpFrame(mac, '192.0.2.1', '10.0.0.1', 'CORDON-WD-SIGN one')),
      ]);
      const run = (requireSigned: string[]) =>
        runStage(dpiStage, {
          bus,
          ctx,
          config: { checksum: 'off', groupId: `cordon-dpi-${requireSigned.length}` },
          env: { dataDir: dir },
          verifyRecords: true,
          requireSigned,
        });
      const lenient = await run([]);
      await waitFor('the unsigned replay inspected', async () =>
        (await readAll(bus, TOPICS.alerts)).some(
          (r) => codecFor(TOPICS.alerts).decode(r.value!).rule_id === `sid:${SID}`,
        ),
      );
      await lenient.stop();
      const strict = await run([TOPICS.packets]);
      try {
        const d = await waitFor('the unsigned replay refused', async () =>
          (await readAll(bus, TOPICS.dlq))
            .map((r) => codecFor(TOPICS.dlq).decode(r.value!))
            .find((x) => x.source_topic === TOPICS.packets),
        );
        assert.equal(d.error_code, 'CORDON_ERR_RECORD_UNSIGNED');
      } finally {
        await strict.stop();
        await p.close();
      }
    } finally {
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
