/** The fit function on hand-written rules: which rule protects which VM, and the reason it says. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { FlowRecord, NetSnapshot } from '@cordon/schemas';
import {
  buildFacts,
  fit,
  parseRule,
  PartitionEvidence,
  prepareRule,
  RuleVars,
  type Candidate,
  type FitOptions,
  type VmFacts,
  type VmInventory,
} from '../src/index.js';

const vars = new RuleVars();
const OPTS: FitOptions = {
  clientRules: 'observed',
  minSeverity: 'Minor',
  deployments: new Set(['Perimeter', 'Internet', 'Datacenter', 'Internal', 'alert_only']),
  homeNet: vars.addr('$HOME_NET'),
};

function rule(text: string): Candidate {
  const r = parseRule(text, vars, { ruleSet: 'lab.rules', line: 1 });
  assert.ok(r.ok, text);
  return prepareRule(r.rule);
}

function snapshot(vm: string, listening: Array<[string, string, number, string | null]>): NetSnapshot {
  return {
    agent: `agent-${vm}`,
    vm,
    ts_us: 1_000,
    interfaces: [],
    routes: [],
    listening: listening.map(([proto, address, port, process]) => ({ proto, address, port, process })),
  };
}

let flowSeq = 0;
function flow(src: string, dst: string, dport: number, proto = 6): FlowRecord {
  flowSeq++;
  return {
    community_id: null,
    flow_id: `f${flowSeq}`,
    sensor: 'lab',
    vm: null,
    vlan: 0,
    proto,
    src_ip: src,
    src_port: 40000 + flowSeq,
    dst_ip: dst,
    dst_port: dport,
    first_seen_us: 1_000_000 * flowSeq,
    last_seen_us: 1_000_000 * flowSeq + 500,
    pkts_toserver: 3,
    pkts_toclient: 3,
    bytes_toserver: 300,
    bytes_toclient: 900,
    tcp_flags_toserver: proto === 6 ? 0x1b : 0,
    tcp_flags_toclient: proto === 6 ? 0x1b : 0,
    end_reason: 'fin',
  };
}

function facts(vm: VmInventory, ev: PartitionEvidence): VmFacts {
  return buildFacts(vm, [ev], { minFlows: 3, maxAgeS: 86_400, tlsDecrypted: false });
}

const WEB: VmInventory = { id: 'web-1', name: 'web-1', guestOs: 'debian-12', ips: ['10.0.0.10'] };
const DNS: VmInventory = { id: 'dns-1', name: 'dns-1', guestOs: 'debian-12', ips: ['10.0.0.53'] };
const known = (ip: string) => ['10.0.0.10', '10.0.0.53', '10.0.0.80'].includes(ip);
const flowOpts = { maxPorts: 100, minFlows: 3 };

function lab(): { web: VmFacts; dns: VmFacts; ev: PartitionEvidence } {
  const ev = new PartitionEvidence();
  ev.setSnapshot(
    snapshot('web-1', [
      ['tcp', '0.0.0.0', 80, 'nginx'],
      ['tcp6', '::', 80, 'nginx'],
      ['tcp', '127.0.0.1', 25, 'master'],
    ]),
  );
  ev.setSnapshot(
    snapshot('dns-1', [
      ['udp', '0.0.0.0', 53, 'named'],
      ['tcp', '0.0.0.0', 53, 'named'],
    ]),
  );
  for (let i = 0; i < 5; i++) ev.addFlow(flow('203.0.113.7', '10.0.0.10', 80), known, flowOpts);
  for (let i = 0; i < 5; i++) ev.addFlow(flow('10.0.0.99', '10.0.0.53', 53, 17), known, flowOpts);
  return { web: facts(WEB, ev), dns: facts(DNS, ev), ev };
}

function fits(c: Candidate, f: VmFacts, o = OPTS): string {
  const r = fit(c, f, o);
  assert.ok(r.fits, `expected ${c.rule.msg} to fit ${f.name}: ${r.reason}`);
  return r.reason;
}

function misses(c: Candidate, f: VmFacts, o = OPTS): string {
  const r = fit(c, f, o);
  assert.ok(!r.fits, `expected ${c.rule.msg} not to fit ${f.name}: ${r.reason}`);
  return r.reason;
}

test('the lab facts: services from netconf and flows, loopback ignored, software and products named', () => {
  const { web, dns } = lab();
  assert.deepEqual(
    web.services.map((s) => [s.proto, s.port, s.app, s.software, s.products, s.flows]),
    [['tcp', 80, ['http'], 'nginx', ['Nginx'], 5]],
  );
  assert.equal(web.services[0]!.summary, 'web server on tcp/80 (nginx, from netconf and flows)');
  assert.deepEqual(web.ignored, ['tcp/25 on 127.0.0.1 (master): listens on loopback only']);
  assert.deepEqual(
    dns.services.map((s) => `${s.proto}/${s.port} ${s.app.join('+')} ${s.software}`),
    ['tcp/53 dns bind', 'udp/53 dns bind'],
  );
  assert.deepEqual(web.os, { family: 'linux', role: 'server' });
});

test('HTTP rules fit the web server and not the DNS server; DNS rules the other way round; SMB neither', () => {
  const { web, dns } = lab();
  const http = rule(
    'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB WEB_SERVER traversal"; flow:established,to_server; http.uri; content:"../"; classtype:web-application-attack; sid:9100001; rev:1; metadata:affected_product Nginx, signature_severity Major;)',
  );
  assert.equal(
    fits(http, web),
    'web server on tcp/80 (nginx, from netconf and flows); rule targets http to_server; affected_product Nginx matches nginx on tcp/80; signature_severity Major',
  );
  assert.equal(
    misses(http, dns),
    'rule protects http servers; dns-1 serves none (its services: tcp/53 dns, udp/53 dns)',
  );

  const dnsRule = rule(
    'alert dns any any -> $HOME_NET any (msg:"LAB DNS zone transfer"; dns.query; content:"a"; sid:9100002; rev:1;)',
  );
  assert.match(
    fits(dnsRule, dns),
    /^DNS server on tcp\/53 \(bind, from netconf\), DNS server on udp\/53 \(bind, from netconf and flows\); rule targets dns to_server$/,
  );
  assert.match(misses(dnsRule, web), /^rule protects dns servers; web-1 serves none/);

  const smb = rule(
    'alert tcp $EXTERNAL_NET any -> $HOME_NET 445 (msg:"LAB SMB exploit"; flow:established,to_server; content:"|ff|SMB"; sid:9100003; rev:1; metadata:attack_target SMB_Server;)',
  );
  assert.equal(misses(smb, web), 'rule protects tcp 445 servers; web-1 serves none (its services: tcp/80 http)');
  assert.match(misses(smb, dns), /^rule protects tcp 445 servers/);

  const httpPorts = rule(
    'alert tcp $EXTERNAL_NET any -> $HTTP_SERVERS $HTTP_PORTS (msg:"LAB web attack on HTTP_PORTS"; flow:to_server; content:"x"; sid:9100004; rev:1;)',
  );
  assert.match(fits(httpPorts, web), /rule targets tcp \$HTTP_PORTS to_server$/);
  assert.match(misses(httpPorts, dns), /rule protects tcp \$HTTP_PORTS servers/);
});

test('responses from the server (flow:to_client, source ports) fit its service', () => {
  const { web, dns } = lab();
  const resp = rule(
    'alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"LAB WEB_SERVER 500 page leaks a stack trace"; flow:from_server,established; content:"Traceback"; sid:9100010; rev:1;)',
  );
  assert.match(fits(resp, web), /rule targets http to_client$/);
  const udpResp = rule(
    'alert udp $HOME_NET 53 -> any any (msg:"LAB DNS response too large"; dsize:>4000; sid:9100011; rev:1;)',
  );
  assert.match(fits(udpResp, dns), /DNS server on udp\/53 .*rule targets udp 53 to_client$/);
  misses(udpResp, web);
});

test('host-wide rules (any port) fit a VM that exposes a service of that transport', () => {
  const { web, dns } = lab();
  const scan = rule(
    'alert tcp $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB SCAN amap"; flow:to_server; content:"thc"; classtype:attempted-recon; sid:9100020; rev:1;)',
  );
  assert.equal(
    fits(scan, web),
    'web-1 exposes web server on tcp/80 (nginx, from netconf and flows); rule targets tcp any to any port of the VM (host-wide)',
  );
  assert.match(fits(scan, dns), /dns-1 exposes DNS server on tcp\/53/);
  const udpScan = rule(
    'alert udp $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB SCAN udp"; content:"THC"; sid:9100021; rev:1;)',
  );
  assert.match(misses(udpScan, web), /^rule protects udp any servers; web-1 serves none/);
  const ev = new PartitionEvidence();
  const quiet = facts({ id: 'idle', name: 'idle', guestOs: 'debian-12', ips: ['10.0.0.80'] }, ev);
  assert.match(misses(scan, quiet), /^rule protects tcp any servers; idle serves none \(its services: none\)/);
});

test('client rules need the VM to be seen connecting out', () => {
  const { web, ev } = lab();
  const cnc = rule(
    'alert http $HOME_NET any -> $EXTERNAL_NET any (msg:"LAB MALWARE CnC check-in"; flow:established,to_server; http.uri; content:"/gate.php"; sid:9100030; rev:1; metadata:attack_target Client_Endpoint, signature_severity Major;)',
  );
  assert.equal(misses(cnc, web), 'rule watches http clients; web-1 was not seen connecting out to http');
  for (let i = 0; i < 3; i++) ev.addFlow(flow('10.0.0.10', '198.51.100.9', 80), known, flowOpts);
  const out = facts(WEB, ev);
  assert.equal(
    fits(cnc, out),
    'web-1 connects out to tcp/80 http (seen in flows); rule watches it as a http client; signature_severity Major',
  );
  assert.equal(
    misses(cnc, out, { ...OPTS, clientRules: 'never' }),
    'rule watches http clients; client-side rules are off (recommend.clientRules: never)',
  );
});

test('affected_product: the server software, the guest OS, client software and devices', () => {
  const { web } = lab();
  const iis = rule(
    'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB IIS exploit"; flow:to_server; content:"x"; sid:9100040; rev:1; metadata:affected_product Microsoft_IIS, attack_target Web_Server;)',
  );
  assert.equal(misses(iis, web), 'affected_product Microsoft_IIS is not what serves tcp/80 (nginx)');
  // an agentless web server: the software is not known, the rule is kept and says so
  const ev = new PartitionEvidence();
  for (let i = 0; i < 4; i++) ev.addFlow(flow('203.0.113.7', '10.0.0.80', 80), known, flowOpts);
  const agentless = facts({ id: 'web-2', name: 'web-2', guestOs: null, ips: ['10.0.0.80'] }, ev);
  assert.equal(agentless.services[0]!.summary, 'web server on tcp/80 (seen in flows)');
  assert.match(
    fits(iis, agentless),
    /affected_product Microsoft_IIS \(the software on tcp\/80 is not known: no agent\)$/,
  );

  const win = rule(
    'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB Windows web exploit"; flow:to_server; content:"x"; sid:9100041; rev:1; metadata:affected_product Windows_XP_Vista_7_8_10_Server_32_64_Bit;)',
  );
  assert.equal(
    misses(win, web),
    'affected_product Windows_XP_Vista_7_8_10_Server_32_64_Bit is for windows; web-1 runs debian-12 (linux)',
  );
  assert.match(fits(win, agentless), /\(guest OS unknown\)$/);

  const wp = rule(
    'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB WordPress plugin"; flow:to_server; content:"wp-content"; sid:9100042; rev:1; metadata:affected_product Wordpress_Plugins, signature_severity Critical;)',
  );
  assert.match(
    fits(wp, web),
    /affected_product Wordpress_Plugins \(an application on the server, not visible from processes\); signature_severity Critical$/,
  );

  const router = rule(
    'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB router exploit"; flow:to_server; content:"x"; sid:9100043; rev:1; metadata:affected_product Netgear_Router;)',
  );
  assert.equal(
    misses(router, web),
    'affected_product Netgear_Router is a device (router, camera, controller), not a VM',
  );
});

test("the clients' product: a malware DNS lookup for Windows clients fits the resolver that sees it", () => {
  const { dns } = lab();
  const lookup = rule(
    'alert dns $HOME_NET any -> any any (msg:"LAB MALWARE lookup"; dns.query; content:"evil.example"; sid:9100050; rev:1; metadata:affected_product Windows_XP_Vista_7_8_10_Server_32_64_Bit, attack_target Client_Endpoint, signature_severity Major;)',
  );
  assert.match(
    fits(lookup, dns),
    /rule targets dns to_server; affected_product Windows_XP_Vista_7_8_10_Server_32_64_Bit \(the clients', attack_target Client_Endpoint\); signature_severity Major$/,
  );
});

test('severity, deployment and attack_target narrow what fits', () => {
  const { web, dns } = lab();
  const info = rule(
    'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB INFO"; flow:to_server; content:"x"; sid:9100060; rev:1; metadata:signature_severity Informational;)',
  );
  assert.equal(misses(info, web), 'signature_severity Informational is below recommend.minSeverity (Minor)');
  assert.ok(fit(info, web, { ...OPTS, minSeverity: 'Informational' }).fits);
  const decrypt = rule(
    'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB decrypted"; flow:to_server; content:"x"; sid:9100061; rev:1; metadata:deployment SSLDecrypt;)',
  );
  assert.equal(misses(decrypt, web), 'deployment SSLDecrypt: not where the sensor is (recommend.deployments)');
  const smbTarget = rule(
    'alert tcp $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB SMB worm"; flow:to_server; content:"x"; sid:9100062; rev:1; metadata:attack_target SMB_Server;)',
  );
  assert.equal(misses(smbTarget, web), 'attack_target SMB_Server: web-1 serves no smb');
  misses(smbTarget, dns);
});

test('addresses: a VM outside $HOME_NET gets no $HOME_NET rules; one with no known address is taken to be inside', () => {
  const ev = new PartitionEvidence();
  ev.setSnapshot(snapshot('pub', [['tcp', '0.0.0.0', 80, 'nginx']]));
  ev.setSnapshot(snapshot('noaddr', [['tcp', '0.0.0.0', 80, 'apache2']]));
  const pub = facts({ id: 'pub', name: 'pub', guestOs: 'ubuntu-24.04', ips: ['203.0.113.5'] }, ev);
  const noaddr = facts({ id: 'noaddr', name: 'noaddr', guestOs: 'ubuntu-24.04', ips: [] }, ev);
  const http = rule(
    'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB web"; flow:to_server; content:"x"; sid:9100070; rev:1;)',
  );
  assert.equal(
    misses(http, pub),
    "rule's addresses ($EXTERNAL_NET -> $HOME_NET) do not include pub as a server (203.0.113.5: outside $HOME_NET)",
  );
  assert.match(fits(http, noaddr), /web server on tcp\/80 \(apache, from netconf\)/);
  const anyHttp = rule(
    'alert http any any -> any any (msg:"LAB web any"; flow:to_server; content:"y"; sid:9100071; rev:1;)',
  );
  assert.ok(fit(anyHttp, pub, OPTS).fits);
});

test('a web server on 443 speaks TLS to the sensor: TLS rules, and HTTP rules only when the sensor decrypts', () => {
  const ev = new PartitionEvidence();
  ev.setSnapshot(snapshot('tls-1', [['tcp', '0.0.0.0', 443, 'nginx']]));
  const inv = { id: 'tls-1', name: 'tls-1', guestOs: 'debian-12', ips: ['10.0.0.44'] };
  const plain = buildFacts(inv, [ev], { minFlows: 3, maxAgeS: 86_400, tlsDecrypted: false });
  const decrypted = buildFacts(inv, [ev], { minFlows: 3, maxAgeS: 86_400, tlsDecrypted: true });
  assert.deepEqual(plain.services[0]!.app, ['tls']);
  assert.deepEqual(decrypted.services[0]!.app, ['tls', 'http']);
  const http = rule(
    'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB web"; flow:to_server; content:"x"; sid:9100080; rev:1;)',
  );
  const tls = rule(
    'alert tls $EXTERNAL_NET any -> $HOME_NET any (msg:"LAB tls"; flow:to_server; tls.sni; content:"x"; sid:9100081; rev:1;)',
  );
  assert.match(misses(http, plain), /^rule protects http servers/);
  assert.match(fits(tls, plain), /^web server on tcp\/443 \(nginx, from netconf\); rule targets tls to_server$/);
  assert.ok(fit(http, decrypted, OPTS).fits);
});
