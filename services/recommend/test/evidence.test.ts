/** Evidence from flows and netconf: what counts as a service, what is ignored and why, checkpoints, hostile snapshots. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { complete, TOPICS, type FlowRecord, type NetSnapshot } from '@cordon/schemas';
import {
  answered,
  buildFacts,
  checkSnapshot,
  classifyGuestOs,
  decisionKey,
  PartitionEvidence,
  softwareOf,
} from '../src/index.js';

const VM = { id: 'app-1', name: 'app-1', guestOs: 'windows2019srv_64Guest', ips: ['10.1.0.5'] };
const known = (ip: string) => ip === '10.1.0.5';
const opts = { maxPorts: 8, minFlows: 3 };
const factsOpts = { minFlows: 3, maxAgeS: 3600, tlsDecrypted: false };

function flow(p: Partial<FlowRecord>): FlowRecord {
  return complete(TOPICS.flows, {
    flow_id: 'f',
    sensor: 's',
    vm: null,
    vlan: 0,
    proto: 6,
    src_ip: '198.51.100.1',
    src_port: 50000,
    dst_ip: '10.1.0.5',
    dst_port: 80,
    first_seen_us: 1_000_000,
    last_seen_us: 2_000_000,
    pkts_toserver: 3,
    pkts_toclient: 3,
    bytes_toserver: 200,
    bytes_toclient: 400,
    tcp_flags_toserver: 0x1b,
    tcp_flags_toclient: 0x1b,
    end_reason: 'fin',
    ...p,
  });
}

test('a flow counts when the server answered: SYN-ACK or data back without a reset (TCP), anything back (UDP)', () => {
  assert.ok(answered(flow({})));
  assert.ok(!answered(flow({ tcp_flags_toclient: 0x14 })), 'RST-ACK: a closed port');
  assert.ok(!answered(flow({ tcp_flags_toclient: 0, pkts_toclient: 0 })), 'no answer: a filtered port');
  assert.ok(answered(flow({ tcp_flags_toclient: 0x18 })), 'mid-stream: data back, no reset');
  assert.ok(answered(flow({ proto: 17, tcp_flags_toclient: 0, pkts_toclient: 1 })));
  assert.ok(!answered(flow({ proto: 17, tcp_flags_toclient: 0, pkts_toclient: 0 })));
});

test('ports become services at minFlows answered flows; fewer, older and unanswered ones are said why not', () => {
  const ev = new PartitionEvidence();
  const t = (s: number) => s * 1_000_000;
  // tcp/80: 3 answered flows → a service; the third one is what changes a decision
  assert.deepEqual(
    ev.addFlow(flow({ first_seen_us: t(10_000), last_seen_us: t(10_001) }), known, opts),
    ['10.1.0.5'],
    'a new port',
  );
  assert.deepEqual(ev.addFlow(flow({ first_seen_us: t(10_002), last_seen_us: t(10_003) }), known, opts), []);
  assert.deepEqual(
    ev.addFlow(flow({ first_seen_us: t(10_004), last_seen_us: t(10_005) }), known, opts),
    ['10.1.0.5'],
    'minFlows reached',
  );
  // tcp/8080: two → not yet
  for (let i = 0; i < 2; i++)
    ev.addFlow(flow({ dst_port: 8080, first_seen_us: t(10_000), last_seen_us: t(10_000) }), known, opts);
  // tcp/21: old → aged out
  for (let i = 0; i < 5; i++) ev.addFlow(flow({ dst_port: 21, first_seen_us: t(1), last_seen_us: t(2) }), known, opts);
  // tcp/445: scanned, closed
  for (let i = 0; i < 5; i++) ev.addFlow(flow({ dst_port: 445, tcp_flags_toclient: 0x14 }), known, opts);
  // the VM connects out to 443
  for (let i = 0; i < 3; i++)
    ev.addFlow(
      flow({
        src_ip: '10.1.0.5',
        dst_ip: '93.184.216.34',
        dst_port: 443,
        first_seen_us: t(10_000),
        last_seen_us: t(10_000),
      }),
      known,
      opts,
    );
  // nothing to do with the VM
  assert.deepEqual(ev.addFlow(flow({ src_ip: '1.1.1.1', dst_ip: '2.2.2.2' }), known, opts), []);
  const f = buildFacts(VM, [ev], factsOpts);
  assert.deepEqual(
    f.services.map((s) => [s.proto, s.port, s.flows, s.fromNetconf, s.summary]),
    [['tcp', 80, 3, false, 'web server on tcp/80 (seen in flows)']],
  );
  assert.deepEqual(
    f.outbound.map((o) => [o.proto, o.port, o.app, o.flows]),
    [['tcp', 443, ['tls'], 3]],
  );
  assert.deepEqual(f.ignored, [
    'tcp/21: last answered flow 1970-01-01T00:00:02.000Z, older than recommend.maxAgeS before the newest flow',
    'tcp/8080: 2 answered flows, fewer than recommend.minFlows (3)',
  ]);
  assert.deepEqual(f.os, { family: 'windows', role: 'server' });
});

test('evidence is summed over partitions, and a checkpoint restores it exactly', () => {
  const a = new PartitionEvidence();
  const b = new PartitionEvidence();
  a.addFlow(flow({ first_seen_us: 5, last_seen_us: 6 }), known, opts);
  b.addFlow(flow({ first_seen_us: 1, last_seen_us: 9 }), known, opts);
  b.addFlow(flow({}), known, opts);
  b.setSnapshot({
    agent: 'ag',
    vm: 'app-1',
    ts_us: 7,
    interfaces: [{ name: 'eth0', mac: null, addresses: ['10.1.0.5/24', 'fe80::1/64'], up: true, promiscuous: false }],
    routes: [],
    listening: [{ proto: 'tcp', address: '0.0.0.0', port: 3306, process: 'mysqld' }],
  });
  const f = buildFacts(VM, [a, b], factsOpts);
  assert.deepEqual(
    f.services.map((s) => `${s.proto}/${s.port} ${s.flows} ${s.first}-${s.last}`),
    ['tcp/80 3 1-2000000', 'tcp/3306 0 null-null'],
  );
  assert.deepEqual(f.addresses, ['10.1.0.5'], 'link-local and prefix lengths dropped');
  const restored = [PartitionEvidence.restore(a.serialize()), PartitionEvidence.restore(b.serialize())];
  assert.deepEqual(buildFacts(VM, restored, factsOpts), f);
  assert.throws(() => PartitionEvidence.restore(Buffer.from('{"v":2}')));
  assert.throws(() => PartitionEvidence.restore(Buffer.from('not json')));
});

test('an older or equal snapshot does not replace a newer one; the decision key ignores counters', () => {
  const ev = new PartitionEvidence();
  const snap = (ts: number, port: number): NetSnapshot => ({
    agent: 'ag',
    vm: 'app-1',
    ts_us: ts,
    interfaces: [],
    routes: [],
    listening: [{ proto: 'tcp', address: '0.0.0.0', port, process: 'sshd' }],
  });
  assert.ok(ev.setSnapshot(snap(10, 22)));
  assert.ok(!ev.setSnapshot(snap(5, 2222)), 'older');
  assert.ok(!ev.setSnapshot(snap(11, 22)), 'newer but the same sockets: no decision changes');
  const before = decisionKey(buildFacts(VM, [ev], factsOpts));
  for (let i = 0; i < 10; i++) ev.addFlow(flow({ dst_port: 22 }), known, opts);
  const withFlows = buildFacts(VM, [ev], factsOpts);
  assert.notEqual(decisionKey(withFlows), before, 'the service is now also seen in flows');
  ev.addFlow(flow({ dst_port: 22 }), known, opts);
  assert.equal(
    decisionKey(buildFacts(VM, [ev], factsOpts)),
    decisionKey(withFlows),
    'one more flow changes no decision',
  );
});

test('ports per address are capped and counted: an address answering on every port does not grow without bound', () => {
  const ev = new PartitionEvidence();
  for (let p = 1; p <= 20; p++) ev.addFlow(flow({ dst_port: p }), known, opts);
  assert.equal(ev.inbound.get('10.1.0.5')!.size, 8);
  assert.equal(ev.capped, 12);
});

test('a hostile snapshot is refused with what is wrong with it', () => {
  const base: NetSnapshot = { agent: 'ag', vm: 'app-1', ts_us: 1, interfaces: [], routes: [], listening: [] };
  const sock = (p: Partial<NetSnapshot['listening'][number]>) => ({
    ...base,
    listening: [{ proto: 'tcp', address: '0.0.0.0', port: 80, process: 'nginx', ...p }],
  });
  assert.equal(checkSnapshot(sock({}), 10), null);
  assert.match(checkSnapshot(sock({ port: 0 }), 10)!, /port 0 is out of range/);
  assert.match(checkSnapshot(sock({ port: 70000 }), 10)!, /out of range/);
  assert.match(checkSnapshot(sock({ proto: 'raw' }), 10)!, /not tcp, tcp6, udp or udp6/);
  assert.match(checkSnapshot(sock({ address: '0.0.0.0; rm -rf' }), 10)!, /not an IP address/);
  assert.match(checkSnapshot(sock({ process: 'a\u0007b' }), 10)!, /control characters/);
  assert.match(checkSnapshot({ ...base, vm: '' }, 10)!, /vm is empty/);
  assert.match(
    checkSnapshot({ ...base, listening: Array.from({ length: 11 }, () => sock({}).listening[0]!) }, 10)!,
    /11 listening sockets, more than/,
  );
});

test('process names and guest OS strings as platforms and agents report them', () => {
  assert.equal(softwareOf('nginx')?.products[0], 'Nginx');
  assert.equal(softwareOf('/usr/sbin/apache2')?.name, 'apache');
  assert.equal(softwareOf('nginx: worker process')?.name, 'nginx');
  assert.equal(softwareOf('w3wp.exe')?.products[0], 'Microsoft_IIS');
  assert.equal(softwareOf('named')?.app, 'dns');
  assert.equal(softwareOf('1234'), null);
  assert.deepEqual(classifyGuestOs('debian12_64Guest'), { family: 'linux', role: 'server' });
  assert.deepEqual(classifyGuestOs('windows9_64Guest'), { family: 'windows', role: 'client' });
  assert.deepEqual(classifyGuestOs('Microsoft Windows Server 2022'), { family: 'windows', role: 'server' });
  assert.deepEqual(classifyGuestOs('http://ubuntu.com/ubuntu/24.04'), { family: 'linux', role: 'server' });
  assert.deepEqual(classifyGuestOs('freebsd13_64Guest'), { family: 'bsd', role: 'server' });
  assert.deepEqual(classifyGuestOs('otherGuest'), { family: 'unknown', role: 'unknown' });
  assert.deepEqual(classifyGuestOs(null), { family: 'unknown', role: 'unknown' });
});
