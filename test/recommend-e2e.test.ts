/**
 * The recommendation scan end to end on the embedded bus: two lab VMs in the inventory — an
 * HTTP server (nginx listening on tcp/80 per its agent's netconf, flows to its port 80) and a
 * DNS server (named on udp/53 and tcp/53, flows to udp/53) — the recommend stage, then
 * `cordon recommend --vm …` as an administrator runs it (a child process on the data dir). The
 * two get different rule sets, each rule with its reason; then sshd starts listening on the DNS
 * VM and its recommendation gains the SSH rules. Judged on a small hand-written rule set
 * (always) and on Emerging Threats Open from the corpus beside the checkout (skipped without).
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { readTable, type Bus } from '@cordon/bus';
import { applyInventoryFile, applyPolicyFile } from '@cordon/policy';
import { createContext, silentLogger } from '@cordon/runtime';
import { codecFor, TOPICS, type FlowRecord, type NetSnapshot } from '@cordon/schemas';
import { applyTopics, loadConfig, openBus, startService } from '@cordon/cli';
import { corpus, skipWithoutCorpus, waitFor } from '@cordon/testkit';

const CLI = join(import.meta.dirname, '..', '..', 'services', 'cli', 'bin', 'cordon.js');
const ENV = { ...process.env, CORDON_KAFKA_BROKERS: '', CORDON_CLICKHOUSE_URL: '', CORDON_LOG_LEVEL: 'warn' };

/** The hand-written set: a rule or two per protocol, and rules that fit neither VM. */
const LAB_RULES = `
alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB WEB_SERVER path traversal"; flow:established,to_server; http.uri; content:"../"; classtype:web-application-attack; sid:9200001; rev:1; metadata:attack_target Web_Server, signature_severity Major;)
alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB WEB_SERVER nginx off-by-slash"; flow:established,to_server; http.uri; content:"..;/"; sid:9200002; rev:1; metadata:affected_product Nginx, signature_severity Major;)
alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB WEB_SERVER IIS short name scan"; flow:established,to_server; http.uri; content:"~1"; sid:9200003; rev:1; metadata:affected_product Microsoft_IIS, signature_severity Major;)
alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"LAB WEB_SERVER stack trace in a response"; flow:established,to_client; file.data; content:"Traceback"; sid:9200004; rev:1;)
alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"LAB MALWARE CnC check-in"; flow:established,to_server; http.uri; content:"/gate.php"; sid:9200005; rev:1; metadata:attack_target Client_Endpoint, signature_severity Critical;)
alert dns any any -> $HOME_NET any (msg:"LAB DNS zone transfer request"; dns.query; content:"axfr"; sid:9200011; rev:1; metadata:attack_target DNS_Server, signature_severity Minor;)
alert udp $EXTERNAL_NET any -> $HOME_NET 53 (msg:"LAB DNS named version query"; content:"|07|version|04|bind|00|"; nocase; sid:9200012; rev:1;)
alert dns $HOME_NET any -> any any (msg:"LAB MALWARE lookup of a known CnC domain"; dns.query; content:"evil-cnc.example"; sid:9200013; rev:1; metadata:affected_product Windows_XP_Vista_7_8_10_Server_32_64_Bit, attack_target Client_Endpoint, signature_severity Major;)
alert tcp $EXTERNAL_NET any -> $HOME_NET 445 (msg:"LAB SMB EternalBlue probe"; flow:established,to_server; content:"|ff|SMB|32|"; sid:9200021; rev:1; metadata:attack_target SMB_Server, signature_severity Critical;)
alert smb any any -> $HOME_NET any (msg:"LAB SMB remote service creation"; flow:established,to_server; content:"svcctl"; sid:9200022; rev:1;)
alert ssh $EXTERNAL_NET any -> $HOME_NET $SSH_PORTS (msg:"LAB SSH libssh auth bypass client"; flow:established,to_server; ssh.software; content:"libssh"; sid:9200031; rev:1; metadata:signature_severity Major;)
alert tcp $EXTERNAL_NET any -> $HOME_NET 22 (msg:"LAB SSH brute force"; flow:to_server; flags:S; threshold:type both, track by_src, count 5, seconds 60; sid:9200032; rev:1;)
alert tcp $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB SCAN amap"; flow:to_server; content:"thc"; classtype:attempted-recon; sid:9200041; rev:1;)
alert tls $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB TLS old protocol"; flow:to_server; tls.version:1.0; sid:9200051; rev:1;)
`;

interface RuleRow {
  sid: number;
  msg: string | null;
  change: string;
  rule_set: string;
  target: string;
  reason: string;
}
interface View {
  vm: string;
  version: number;
  rules: RuleRow[];
  drop: Array<{ sid: number; target: string; reason: string }>;
  counts: { add: number; keep: number; drop: number; byTarget: Record<string, number> };
  evidence: { services: Array<{ summary: string }> };
}

const cordon = (args: string[]) =>
  promisify(execFile)(process.execPath, [CLI, ...args], { env: ENV, maxBuffer: 64 << 20 });

let seq = 0;
function flow(dst: string, port: number, proto: number): FlowRecord {
  seq++;
  return {
    community_id: null,
    flow_id: `lab-${seq}`,
    sensor: 'hv1',
    vm: null,
    vlan: 0,
    proto,
    src_ip: `203.0.113.${1 + (seq % 250)}`,
    src_port: 30000 + seq,
    dst_ip: dst,
    dst_port: port,
    first_seen_us: 1_760_000_000_000_000 + seq * 1000,
    last_seen_us: 1_760_000_000_000_000 + seq * 1000 + 400,
    pkts_toserver: 4,
    pkts_toclient: 4,
    bytes_toserver: 400,
    bytes_toclient: 2000,
    tcp_flags_toserver: proto === 6 ? 0x1b : 0,
    tcp_flags_toclient: proto === 6 ? 0x1b : 0,
    end_reason: proto === 6 ? 'fin' : 'timeout',
  };
}

function snapshot(vm: string, ts: number, listening: Array<[string, string, number, string]>): NetSnapshot {
  return {
    agent: `agent-${vm}`,
    vm,
    ts_us: ts,
    interfaces: [
      {
        name: 'eth0',
        mac: null,
        addresses: [vm === 'web-1' ? '10.0.0.10/24' : '10.0.0.53/24'],
        up: true,
        promiscuous: false,
      },
    ],
    listening: listening.map(([proto, address, port, process]) => ({ proto, address, port, process })),
    routes: [{ destination: '0.0.0.0/0', gateway: '10.0.0.1', dev: 'eth0' }],
  };
}

async function publish(bus: Bus, netconf: NetSnapshot[], flows: FlowRecord[]): Promise<void> {
  const p = bus.producer();
  try {
    if (netconf.length)
      await p.send(
        TOPICS.netconf,
        netconf.map((s) => ({ key: Buffer.from(s.vm), value: codecFor(TOPICS.netconf).encode(s) })),
      );
    if (flows.length)
      await p.send(
        TOPICS.flows,
        flows.map((f) => ({ key: Buffer.from(f.flow_id), value: codecFor(TOPICS.flows).encode(f) })),
      );
  } finally {
    await p.close();
  }
}

/** Run the recommend stage on the data dir until every VM has a recommendation of at least `versions`, then close it (the CLI opens the dir next). */
async function scan(
  dataDir: string,
  versions: Record<string, number>,
  before: (bus: Bus) => Promise<void>,
): Promise<void> {
  const ctx = createContext({ log: silentLogger });
  const config = loadConfig({ env: {}, flags: { dataDir } });
  const bus = openBus(config, ctx);
  try {
    await applyTopics(bus);
    await before(bus);
    const stage = await startService('recommend', {
      bus,
      ctx,
      config: { ...config, recommend: { recomputeIntervalMs: 100, checkpointIntervalMs: 200 } } as typeof config,
    });
    try {
      await waitFor(
        `recommendations ${JSON.stringify(versions)}`,
        async () => {
          const have = new Map<string, number>();
          for (const r of (await readTable(bus, TOPICS.recommendations)).values()) {
            const rec = codecFor(TOPICS.recommendations).decode(r.value!);
            have.set(rec.vm, rec.version);
          }
          return Object.entries(versions).every(([vm, v]) => (have.get(vm) ?? 0) >= v) ? true : undefined;
        },
        120_000,
      );
    } finally {
      await stage.stop();
    }
  } finally {
    await bus.close();
  }
}

async function recommendJson(dataDir: string, vm: string, extra: string[] = []): Promise<View> {
  const { stdout } = await cordon(['recommend', '--vm', vm, '--format', 'json', '--data-dir', dataDir, ...extra]);
  return JSON.parse(stdout) as View;
}

/** A rule of a protocol: its application layer, or a transport rule on that protocol's ports only. */
const PROTO_PORTS: Record<string, RegExp> = {
  http: /^(http|tcp (\$HTTP_PORTS|80|8080))$/,
  dns: /^(dns|(udp|tcp) 53)$/,
  smb: /^(smb|dcerpc|tcp (445|139|\[139,445\]|\[445,139\]))$/,
  ssh: /^(ssh|tcp (22|\$SSH_PORTS))$/,
};
const isProto = (r: { target: string }, proto: string) => PROTO_PORTS[proto]!.test(r.target);

function report(t: TestContext, v: View): void {
  t.diagnostic(`${v.vm} v${v.version}: services ${v.evidence.services.map((s) => s.summary).join('; ')}`);
  t.diagnostic(
    `${v.vm}: run ${v.rules.length} (add ${v.counts.add}, keep ${v.counts.keep}), drop ${v.counts.drop}; by target ${JSON.stringify(v.counts.byTarget)}`,
  );
  const seen = new Set<string>();
  for (const r of v.rules) {
    if (seen.has(r.target) || seen.size >= 4) continue;
    seen.add(r.target);
    t.diagnostic(`  ${r.sid} ${r.msg}  ← ${r.reason}`);
  }
  const d = v.drop[0];
  if (d) t.diagnostic(`  dropped e.g. ${d.sid}  ← ${d.reason}`);
}

async function labScan(t: TestContext, withEt: boolean): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-recommend-e2e-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const dataDir = join(dir, 'data');
  writeFileSync(join(dir, 'lab.rules'), LAB_RULES);
  const et = withEt
    ? readdirSync(corpus('et-open')!)
        .filter((f) => f.endsWith('.rules'))
        .sort()
        .map((f) => join(corpus('et-open')!, f))
    : [];
  writeFileSync(
    join(dir, 'policy.yaml'),
    `id: default\nmode: detect\nruleFiles:\n${['lab.rules', ...et].map((f) => `  - ${JSON.stringify(f)}`).join('\n')}\n`,
  );
  writeFileSync(
    join(dir, 'inventory.yaml'),
    [
      'hosts:',
      '  hv1:',
      '    vms:',
      '      web-1:',
      '        power: on',
      '        guestOs: debian-12',
      '        nics: [{ mac: "52:54:00:00:00:0a", ips: [10.0.0.10] }]',
      '      dns-1:',
      '        power: on',
      '        guestOs: debian-12',
      '        nics: [{ mac: "52:54:00:00:00:35", ips: [10.0.0.53] }]',
      '',
    ].join('\n'),
  );

  await scan(dataDir, { 'web-1': 1, 'dns-1': 1 }, async (bus) => {
    const ctx = createContext({ log: silentLogger });
    await applyInventoryFile({ bus, ctx }, join(dir, 'inventory.yaml'));
    await applyPolicyFile({ bus, ctx, dataDir }, join(dir, 'policy.yaml'));
    await publish(
      bus,
      [
        snapshot('web-1', 1_000, [
          ['tcp', '0.0.0.0', 80, 'nginx'],
          ['tcp6', '::', 80, 'nginx'],
          ['tcp', '127.0.0.1', 25, 'master'],
        ]),
        snapshot('dns-1', 1_000, [
          ['udp', '0.0.0.0', 53, 'named'],
          ['tcp', '0.0.0.0', 53, 'named'],
          ['tcp', '127.0.0.1', 953, 'named'],
        ]),
      ],
      [
        ...Array.from({ length: 6 }, () => flow('10.0.0.10', 80, 6)),
        ...Array.from({ length: 6 }, () => flow('10.0.0.53', 53, 17)),
      ],
    );
  });

  const web = await recommendJson(dataDir, 'web-1');
  const dns = await recommendJson(dataDir, 'dns-1');
  report(t, web);
  report(t, dns);
  const table = (await cordon(['recommend', '--vm', 'dns-1', '--data-dir', dataDir, '--rule-set', 'lab.rules'])).stdout;
  for (const line of table.split('\n').slice(0, 14)) t.diagnostic(`| ${line}`);

  for (const v of [web, dns]) {
    assert.ok(v.rules.length > 0);
    for (const r of [...v.rules, ...v.drop])
      assert.ok(r.reason.length > 20, `${v.vm} ${r.sid} has a reason: ${r.reason}`);
    for (const r of v.rules) assert.ok(r.msg, `${r.sid} has its msg`);
  }
  // the HTTP server: HTTP rules, no DNS or SMB ones
  assert.ok(web.rules.filter((r) => isProto(r, 'http')).length >= (withEt ? 1000 : 3));
  assert.deepEqual(
    web.rules.filter((r) => isProto(r, 'dns') || isProto(r, 'smb')).map((r) => `${r.sid} ${r.target}`),
    [],
  );
  // the DNS server: DNS rules, no HTTP or SMB ones
  assert.ok(dns.rules.filter((r) => isProto(r, 'dns')).length >= (withEt ? 500 : 3));
  assert.deepEqual(
    dns.rules
      .filter((r) => isProto(r, 'http') || isProto(r, 'smb') || r.target === 'tls')
      .map((r) => `${r.sid} ${r.target}`),
    [],
  );
  assert.deepEqual(
    dns.rules.filter((r) => isProto(r, 'ssh')).map((r) => r.sid),
    [],
    'no sshd yet',
  );

  // the hand-written rules say exactly why
  const lab = (v: View, sid: number) => v.rules.find((r) => r.sid === sid);
  assert.equal(
    lab(web, 9200002)!.reason,
    'web server on tcp/80 (nginx, from netconf and flows); rule targets http to_server; affected_product Nginx matches nginx on tcp/80; signature_severity Major',
  );
  assert.equal(
    lab(web, 9200004)!.reason,
    'web server on tcp/80 (nginx, from netconf and flows); rule targets http to_client',
  );
  assert.equal(lab(web, 9200003), undefined, 'the IIS rule is not for an nginx server');
  assert.equal(
    web.drop.find((d) => d.sid === 9200003)!.reason,
    'affected_product Microsoft_IIS is not what serves tcp/80 (nginx)',
  );
  assert.equal(lab(web, 9200005), undefined, 'no outbound HTTP from web-1: no CnC client rule');
  assert.match(
    lab(dns, 9200012)!.reason,
    /^DNS server on udp\/53 \(bind, from netconf and flows\); rule targets udp 53 to_server$/,
  );
  assert.match(lab(dns, 9200013)!.reason, /the clients', attack_target Client_Endpoint/);
  assert.equal(
    dns.drop.find((d) => d.sid === 9200021)!.reason,
    'rule protects tcp 445 servers; dns-1 serves none (its services: tcp/53 dns, udp/53 dns)',
  );
  assert.ok(lab(web, 9200041) && lab(dns, 9200041), 'the host-wide scan rule fits both');
  const webSet = new Set(web.rules.map((r) => r.sid));
  const dnsSet = new Set(dns.rules.map((r) => r.sid));
  assert.ok([...webSet].some((s) => !dnsSet.has(s)) && [...dnsSet].some((s) => !webSet.has(s)), 'different rule sets');

  // sshd starts listening on the DNS VM: its recommendation gains the SSH rules
  await scan(dataDir, { 'dns-1': 2 }, async (bus) => {
    await publish(
      bus,
      [
        snapshot('dns-1', 2_000, [
          ['udp', '0.0.0.0', 53, 'named'],
          ['tcp', '0.0.0.0', 53, 'named'],
          ['tcp', '0.0.0.0', 22, 'sshd'],
        ]),
      ],
      [],
    );
  });
  const dns2 = await recommendJson(dataDir, 'dns-1');
  report(t, dns2);
  assert.equal(dns2.version, 2);
  const ssh = dns2.rules.filter((r) => isProto(r, 'ssh'));
  assert.deepEqual(
    ssh.filter((r) => r.rule_set === 'lab.rules').map((r) => [r.sid, r.reason]),
    [
      [9200031, 'SSH server on tcp/22 (openssh, from netconf); rule targets ssh to_server; signature_severity Major'],
      [9200032, 'SSH server on tcp/22 (openssh, from netconf); rule targets tcp 22 to_server'],
    ],
  );
  assert.ok(
    dns2.rules.filter((r) => isProto(r, 'dns')).length === dns.rules.filter((r) => isProto(r, 'dns')).length,
    'the DNS rules stay',
  );
  const web2 = await recommendJson(dataDir, 'web-1');
  assert.equal(web2.version, web.version, 'web-1 did not change');
}

test(
  'cordon recommend on the lab: the HTTP and DNS servers get different rule sets, each rule with its reason; sshd adds the SSH rules (hand-written rules)',
  { timeout: 300_000 },
  async (t) => {
    await labScan(t, false);
  },
);

test(
  'the same with Emerging Threats Open as the candidate set',
  { skip: skipWithoutCorpus('et-open'), timeout: 600_000 },
  async (t) => {
    await labScan(t, true);
  },
);
