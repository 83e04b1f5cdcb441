/**
 * The recommend stage on the embedded bus: inventory, policy, netconf and flows in; one
 * recommendation per VM out, a new version only when the evidence changes, checkpoints that a
 * restart resumes from, bad snapshots to the DLQ, a removed VM's recommendation tombstoned,
 * and autoApply writing the selection (pins included) beside the policy.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus, readAll, readTable, type Bus } from '@cordon/bus';
import { applyInventoryFile, applyPolicyFile, RuleSelectionView } from '@cordon/policy';
import { createContext, silentLogger } from '@cordon/runtime';
import {
  allTopicSpecs,
  codecFor,
  TOPICS,
  type FlowRecord,
  type NetSnapshot,
  type Recommendation,
} from '@cordon/schemas';
import { runStage } from '@cordon/stage';
import { waitFor } from '@cordon/testkit';
import { recommendStage, viewOf } from '../src/index.js';

const RULES = `
alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB WEB_SERVER traversal"; flow:established,to_server; http.uri; content:"../"; sid:9000001; rev:1; metadata:signature_severity Major;)
alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB WEB_SERVER IIS exploit"; flow:established,to_server; content:"x"; sid:9000002; rev:1; metadata:affected_product Microsoft_IIS;)
alert dns any any -> $HOME_NET any (msg:"LAB DNS zone transfer request"; dns.query; content:"axfr"; sid:9000003; rev:1;)
alert tcp $EXTERNAL_NET any -> $HOME_NET 445 (msg:"LAB SMB exploit"; flow:established,to_server; content:"|ff|SMB"; sid:9000004; rev:1;)
alert ssh $EXTERNAL_NET any -> $HOME_NET $SSH_PORTS (msg:"LAB SSH old client"; flow:established,to_server; ssh.software; content:"libssh"; sid:9000005; rev:1;)
`;

const snapCodec = codecFor(TOPICS.netconf);
const flowCodec = codecFor(TOPICS.flows);
const recCodec = codecFor(TOPICS.recommendations);

/** The topic as it stands (a tombstoned VM is absent). */
async function recommendations(bus: Bus): Promise<Map<string, Recommendation>> {
  const out = new Map<string, Recommendation>();
  for (const r of (await readTable(bus, TOPICS.recommendations)).values())
    out.set(r.key!.toString(), recCodec.decode(r.value!));
  return out;
}

function snapshot(vm: string, ts: number, listening: Array<[string, number, string]>): NetSnapshot {
  return {
    agent: `agent-${vm}`,
    vm,
    ts_us: ts,
    interfaces: [],
    routes: [],
    listening: listening.map(([proto, port, process]) => ({ proto, address: '0.0.0.0', port, process })),
  };
}

let seq = 0;
function flow(dst: string, port: number, proto: number): FlowRecord {
  seq++;
  return {
    community_id: null,
    flow_id: `flow-${seq}`,
    sensor: 'hv1',
    vm: null,
    vlan: 0,
    proto,
    src_ip: `192.168.50.${seq % 200}`,
    src_port: 40000 + seq,
    dst_ip: dst,
    dst_port: port,
    first_seen_us: 1_700_000_000_000_000 + seq,
    last_seen_us: 1_700_000_000_000_500 + seq,
    pkts_toserver: 2,
    pkts_toclient: 2,
    bytes_toserver: 120,
    bytes_toclient: 300,
    tcp_flags_toserver: proto === 6 ? 0x1b : 0,
    tcp_flags_toclient: proto === 6 ? 0x1b : 0,
    end_reason: proto === 6 ? 'fin' : 'timeout',
  };
}

test(
  'the recommend stage: a recommendation per VM with reasons, new versions only on new evidence, restarts, DLQ, removal, autoApply',
  { timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-recommend-'));
    const ctx = createContext({ log: silentLogger });
    const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
    const config = { recomputeIntervalMs: 50, checkpointIntervalMs: 100, minFlows: 3 };
    try {
      await bus.admin.ensureTopics(allTopicSpecs());
      writeFileSync(join(dir, 'lab.rules'), RULES);
      writeFileSync(
        join(dir, 'policy.yaml'),
        'mode: detect\nruleFiles: [lab.rules]\nvms:\n  dns-1:\n    pinned: ["9000004"]\n',
      );
      writeFileSync(
        join(dir, 'inv.yaml'),
        'hosts:\n  hv1:\n    vms:\n      web-1:\n        guestOs: debian-12\n        nics: [{ mac: "02:00:00:00:00:0a", ips: [10.0.0.10] }]\n      dns-1:\n        guestOs: debian-12\n        nics: [{ mac: "02:00:00:00:00:35", ips: [10.0.0.53] }]\n',
      );
      await applyPolicyFile({ bus, ctx }, join(dir, 'policy.yaml'));
      await applyInventoryFile({ bus, ctx }, join(dir, 'inv.yaml'));
      const producer = bus.producer();
      await producer.send(TOPICS.netconf, [
        { key: Buffer.from('web-1'), value: snapCodec.encode(snapshot('web-1', 1, [['tcp', 80, 'nginx']])) },
        { key: Buffer.from('dns-1'), value: snapCodec.encode(snapshot('dns-1', 1, [['udp', 53, 'named']])) },
        { key: Buffer.from('x'), value: snapCodec.encode({ ...snapshot('dns-1', 2, [['tcp', 0, 'evil']]) }) },
        { key: Buffer.from('y'), value: Buffer.from('not avro') },
      ]);
      // web-1 also answers on tcp/8443 (flows only, an agent that does not see it: three flows) and on 8080 twice (not enough)
      await producer.send(
        TOPICS.flows,
        [
          ...Array.from({ length: 3 }, () => flow('10.0.0.10', 8443, 6)),
          ...Array.from({ length: 2 }, () => flow('10.0.0.10', 8080, 6)),
          ...Array.from({ length: 4 }, () => flow('10.0.0.53', 53, 17)),
        ].map((f) => ({
          key: Buffer.from(f.flow_id),
          value: flowCodec.encode(f),
        })),
      );

      let stage = await runStage(recommendStage, { bus, ctx, config });
      const first = await waitFor('recommendations for both VMs', async () => {
        const m = await recommendations(bus);
        return m.get('web-1') && m.get('dns-1') ? m : undefined;
      });
      const web = viewOf(first.get('web-1')!);
      const dns = viewOf(first.get('dns-1')!);
      assert.deepEqual(
        web.evidence.services.map((s) => s.summary),
        ['web server on tcp/80 (nginx, from netconf)', 'TLS server on tcp/8443 (seen in flows)'],
      );
      assert.deepEqual(web.evidence.ignored, ['tcp/8080: 2 answered flows, fewer than recommend.minFlows (3)']);
      assert.deepEqual(
        web.rules.map((r) => [r.sid, r.change, r.target]),
        [[9000001, 'keep', 'http']],
      );
      assert.equal(
        web.rules[0]!.reason,
        'web server on tcp/80 (nginx, from netconf); rule targets http to_server; signature_severity Major',
      );
      assert.deepEqual(
        web.drop.map((d) => [d.sid, d.reason]),
        [
          [9000002, 'affected_product Microsoft_IIS is not what serves tcp/80 (nginx)'],
          [9000003, 'rule protects dns servers; web-1 serves none (its services: tcp/80 http, tcp/8443 tls)'],
          [9000004, 'rule protects tcp 445 servers; web-1 serves none (its services: tcp/80 http, tcp/8443 tls)'],
          [9000005, 'rule protects ssh servers; web-1 serves none (its services: tcp/80 http, tcp/8443 tls)'],
        ],
      );
      assert.deepEqual(
        dns.rules.map((r) => [r.sid, r.target]),
        [
          [9000003, 'dns'],
          [9000004, 'tcp 445'],
        ],
        'DNS rules, and the pinned SMB rule',
      );
      assert.match(dns.rules[1]!.reason, /^pinned in the policy \(kept whatever the fit\)/);
      assert.equal(dns.evidence.services[0]!.summary, 'DNS server on udp/53 (bind, from netconf and flows)');
      assert.equal(dns.version, 1);

      const letters = await waitFor('the bad snapshot and the undecodable record in the DLQ', async () => {
        const l = (await readAll(bus, TOPICS.dlq)).map((r) => codecFor(TOPICS.dlq).decode(r.value!));
        return l.length >= 2 ? l : undefined;
      });
      assert.deepEqual(letters.map((l) => l.error_code).sort(), [
        'CORDON_ERR_RECOMMEND_SNAPSHOT',
        'CORDON_ERR_SCHEMA_WIRE_FORMAT',
      ]);

      // more flows to known services: no decision changes, no new version
      await producer.send(
        TOPICS.flows,
        Array.from({ length: 5 }, () => flow('10.0.0.10', 80, 6)).map((f) => ({
          key: Buffer.from(f.flow_id),
          value: flowCodec.encode(f),
        })),
      );
      await waitFor('web-1 version 2: tcp/80 now also seen in flows', async () =>
        (await recommendations(bus)).get('web-1')?.version === 2 ? true : undefined,
      );
      await new Promise((r) => setTimeout(r, 300));
      await stage.recomputeNow();
      assert.equal(
        (await recommendations(bus)).get('web-1')!.version,
        2,
        'more flows to the same services change nothing',
      );
      const flowsOf = (vm: string) => stage.facts(vm)!.services.map((s) => `${s.proto}/${s.port} ${s.flows}`);
      assert.deepEqual(flowsOf('web-1'), ['tcp/80 5', 'tcp/8443 3']);

      // a restart resumes from the checkpoints: nothing counted twice, nothing republished
      await stage.stop();
      const checkpoints = [...(await readTable(bus, TOPICS.state)).values()]
        .map((r) => codecFor(TOPICS.state).decode(r.value!))
        .filter((s) => s.stage === 'recommend');
      const flowEnds = await bus.admin.endOffsets(TOPICS.flows);
      assert.equal(
        checkpoints.filter((s) => s.input_topic === TOPICS.flows).length,
        flowEnds.size,
        'a checkpoint per flows partition',
      );
      for (const s of checkpoints.filter((c) => c.input_topic === TOPICS.flows))
        assert.equal(BigInt(s.input_offset), flowEnds.get(s.input_partition), 'written up to the end on stop');
      stage = await runStage(recommendStage, { bus, ctx, config });
      await waitFor('the evidence restored and read up to the end', () => (stage.ready() ? true : undefined));
      assert.deepEqual(flowsOf('web-1'), ['tcp/80 5', 'tcp/8443 3'], 'restored from the checkpoint, not counted again');
      await stage.recomputeNow();
      const afterRestart = await recommendations(bus);
      assert.equal(afterRestart.get('web-1')!.version, 2);
      assert.equal(afterRestart.get('dns-1')!.version, 1);

      // a new listening service on the DNS VM updates its recommendation
      await producer.send(TOPICS.netconf, [
        {
          key: Buffer.from('dns-1'),
          value: snapCodec.encode(
            snapshot('dns-1', 3, [
              ['udp', 53, 'named'],
              ['tcp', 22, 'sshd'],
            ]),
          ),
        },
      ]);
      const dns2 = await waitFor('dns-1 version 2', async () => {
        const r = (await recommendations(bus)).get('dns-1');
        return r && r.version === 2 ? viewOf(r) : undefined;
      });
      assert.deepEqual(
        dns2.rules.map((r) => [r.sid, r.target]),
        [
          [9000003, 'dns'],
          [9000004, 'tcp 445'],
          [9000005, 'ssh'],
        ],
      );
      assert.equal(dns2.rules[2]!.reason, 'SSH server on tcp/22 (openssh, from netconf); rule targets ssh to_server');

      // autoApply: the selection goes beside the policy, pins included; the next version has nothing to add or drop
      await stage.stop();
      stage = await runStage(recommendStage, { bus, ctx, config: { ...config, autoApply: true } });
      const sel = await waitFor('a selection for dns-1', async () => {
        const v = new RuleSelectionView();
        for (const r of (await readTable(bus, TOPICS.policy)).values()) v.apply(r.key, r.value);
        return v.byVm.get('dns-1');
      });
      assert.deepEqual(sel.selection.enabled, [9000003, 9000004, 9000005]);
      assert.deepEqual(sel.selection.ruleSets, ['lab.rules']);
      assert.equal(sel.selection.appliedBy, 'recommend');
      const applied = await waitFor('dns-1 recomputed against its selection', async () => {
        const r = (await recommendations(bus)).get('dns-1');
        return r && r.version === 3 ? viewOf(r) : undefined;
      });
      assert.deepEqual(applied.counts, { add: 0, keep: 3, drop: 0, byTarget: { dns: 1, ssh: 1, 'tcp 445': 1 } });

      // a VM leaves the inventory: its recommendation is tombstoned
      writeFileSync(
        join(dir, 'inv.yaml'),
        'hosts:\n  hv1:\n    vms:\n      dns-1:\n        guestOs: debian-12\n        nics: [{ mac: "02:00:00:00:00:35", ips: [10.0.0.53] }]\n',
      );
      await applyInventoryFile({ bus, ctx }, join(dir, 'inv.yaml'), { prune: true });
      await waitFor('web-1 tombstoned', async () => (!(await recommendations(bus)).has('web-1') ? true : undefined));
      assert.ok((await recommendations(bus)).has('dns-1'));
      await producer.close();
      await stage.stop();
    } finally {
      await bus.close();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
