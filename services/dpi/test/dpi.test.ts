import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Rules } from '@cordon/native';
import { communityId, protoNumber } from '@cordon/schemas';
import { corpusPath, skipWithoutCorpus, tempDir } from '@cordon/testkit';
import { runCapture, rulesCheckCommand } from '../src/index.js';

interface Expected {
  pcap: string;
  rules: string;
  expect: { sid: number; count: number }[];
  checksum_validation: boolean;
}

async function countsFor(name: string): Promise<{ want: Map<number, number>; got: Map<number, number> }> {
  const dir = join(corpusPath('suricata-verify'), name);
  const e = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
  const rules = Rules.compile([{ name: e.rules, text: readFileSync(join(dir, e.rules), 'utf8') }]);
  const got = new Map<number, number>();
  await runCapture(rules, join(dir, e.pcap), { checksum: e.checksum_validation ? 'auto' : 'off' }, (line) => {
    const a = JSON.parse(line) as { event_type: string; alert: { signature_id: number } };
    assert.equal(a.event_type, 'alert');
    got.set(a.alert.signature_id, (got.get(a.alert.signature_id) ?? 0) + 1);
  });
  return { want: new Map(e.expect.map((x) => [x.sid, x.count])), got };
}

for (const name of [
  'http-evader__http-evader-002',
  'http-evader__http-evader-200',
  'detect-icmp-id-01',
  'bug-1401-03',
  'detect-flowbits',
]) {
  test(
    `dpi reproduces Suricata's alert counts on ${name}`,
    { skip: skipWithoutCorpus('suricata-verify') },
    async () => {
      const { want, got } = await countsFor(name);
      for (const [sid, count] of want) assert.equal(got.get(sid) ?? 0, count, `sid ${sid}`);
    },
  );
}

test('rules check names every rule that failed, with its sid and reason', async (t) => {
  const dir = tempDir(t, 'rules');
  const file = join(dir, 't.rules');
  writeFileSync(
    file,
    [
      'alert http $HOME_NET any -> $EXTERNAL_NET $HTTP_PORTS (msg:"ok"; flow:established,to_server; http.uri; content:"/x"; sid:1; rev:1;)',
      'alert tcp any any -> any any (msg:"asn1"; content:"a"; asn1:oversize_length 100; sid:2;)',
      'alert foo any any -> any any (msg:"proto"; sid:3;)',
      '# alert tcp any any -> any any (msg:"disabled"; sid:4;)',
    ].join('\n'),
  );
  const lines: string[] = [];
  const code = await rulesCheckCommand(['check', file], (s) => lines.push(...s.split('\n').filter(Boolean)));
  assert.equal(code, 1);
  assert.deepEqual(JSON.parse(lines.at(-1) ?? '{}'), { rules: 3, loaded: 1, failed: 2 });
  assert.match(lines[0] ?? '', /sid 2 .*asn1/);
  assert.match(lines[1] ?? '', /sid 3 .*unsupported protocol "foo"/);
  // Grouped by reason before the totals.
  assert.deepEqual(lines.slice(2, 4).sort(), [
    '1 failed: unsupported keyword "asn1"',
    '1 failed: unsupported protocol "foo"',
  ]);
});

test('a capture whose last record is damaged is inspected up to it, with a warning', async (t) => {
  const dir = tempDir(t, 'pcap');
  const file = join(dir, 'damaged.pcap');
  // One UDP frame, then a record header claiming 4 MiB.
  const gh = Buffer.alloc(24);
  gh.writeUInt32LE(0xa1b2c3d4, 0);
  gh.writeUInt16LE(2, 4);
  gh.writeUInt16LE(4, 6);
  gh.writeUInt32LE(65535, 16);
  gh.writeUInt32LE(101, 20);
  const ip = Buffer.from('450000200000000040110000010203040506070804d204d2000c0000', 'hex');
  const payload = Buffer.from('abcd');
  const frame = Buffer.concat([ip, payload]);
  const rh = Buffer.alloc(16);
  rh.writeUInt32LE(1, 0);
  rh.writeUInt32LE(frame.length, 8);
  rh.writeUInt32LE(frame.length, 12);
  const bad = Buffer.alloc(16);
  bad.writeUInt32LE(2, 0);
  bad.writeUInt32LE(4 << 20, 8);
  bad.writeUInt32LE(4 << 20, 12);
  writeFileSync(file, Buffer.concat([gh, rh, frame, bad, Buffer.alloc(8)]));
  const rules = Rules.compile([{ name: 'r', text: 'alert udp any any -> any any (msg:"x"; content:"abcd"; sid:9;)' }]);
  const lines: string[] = [];
  const res = await runCapture(rules, file, { checksum: 'off' }, (l) => lines.push(l));
  assert.equal(res.packets, 1);
  assert.equal(lines.length, 1);
  assert.match(res.damaged ?? '', /CORDON_ERR_PCAP_BAD_LENGTH|captured bytes/);
});

test('a malformed batch is a typed error, not a crash', async () => {
  const { Engine } = await import('@cordon/native');
  const e = new Engine(Rules.compile([]), { checksum: 'off' });
  assert.throws(
    () =>
      e.processBatch({
        data: Buffer.alloc(4),
        offsets: Uint32Array.from([0, 99]),
        tsUs: Float64Array.from([0]),
        linktypes: Uint32Array.from([1]),
      }),
    /CORDON_ERR_NATIVE_BAD_BATCH|out of range/,
  );
  // hostile bytes: random frames decode to errors, never a panic
  const frames = Buffer.alloc(64 * 100);
  for (let i = 0; i < frames.length; i++) frames[i] = (i * 2654435761) >>> 24;
  const offs = Uint32Array.from({ length: 101 }, (_, i) => i * 64);
  e.processBatch({ data: frames, offsets: offs, tsUs: new Float64Array(100), linktypes: new Uint32Array(100).fill(1) });
  assert.equal(e.stats().packets, 100);
});

interface EveAlert {
  src_ip: string;
  dest_ip: string;
  src_port?: number;
  dest_port?: number;
  proto: string;
  icmp_type?: number;
  icmp_code?: number;
  community_id?: string;
  alert: { signature_id: number; metadata?: Record<string, string[]> };
}

async function eveLines(pcapDir: string, rulesText: string): Promise<EveAlert[]> {
  const dir = join(corpusPath('suricata-verify'), pcapDir);
  const e = JSON.parse(readFileSync(join(dir, 'expected.json'), 'utf8')) as Expected;
  const out: EveAlert[] = [];
  await runCapture(
    Rules.compile([{ name: 't.rules', text: rulesText }]),
    join(dir, e.pcap),
    { checksum: 'off' },
    (line) => out.push(JSON.parse(line) as EveAlert),
  );
  return out;
}

test(
  'EVE alerts carry the Community ID of their flow (ICMP: type and code, no ports), as the spec computes it',
  { skip: skipWithoutCorpus('suricata-verify') },
  async () => {
    const lines = [
      ...(await eveLines('detect-icmp-id-01', 'alert icmp any any -> any any (msg:"icmp"; sid:1;)')),
      ...(await eveLines(
        'http-evader__http-evader-002',
        'alert tcp any any -> any any (msg:"tcp"; flow:established; sid:2;)',
      )),
    ];
    const icmp = lines.filter((l) => l.alert.signature_id === 1);
    const tcp = lines.filter((l) => l.alert.signature_id === 2);
    assert.ok(icmp.length > 0 && tcp.length > 0, `alerts: ${icmp.length} icmp, ${tcp.length} tcp`);
    for (const l of icmp) {
      assert.equal(typeof l.icmp_type, 'number');
      assert.equal(l.src_port, undefined, 'ICMP has no ports');
    }
    for (const l of lines) {
      const proto = protoNumber(l.proto)!;
      const icmpLine = l.icmp_type !== undefined;
      const want = communityId({
        proto,
        srcIp: l.src_ip,
        dstIp: l.dest_ip,
        srcPort: icmpLine ? l.icmp_type : l.src_port,
        dstPort: icmpLine ? l.icmp_code : l.dest_port,
      });
      assert.equal(
        l.community_id,
        want,
        `${l.proto} ${l.src_ip}:${l.src_port ?? l.icmp_type} > ${l.dest_ip}:${l.dest_port ?? l.icmp_code}`,
      );
    }
  },
);

test(
  "EVE alerts carry the rule's metadata as Suricata prints it: values listed per key, entries without a value left out",
  { skip: skipWithoutCorpus('suricata-verify') },
  async () => {
    const rule =
      'alert tcp any any -> any any (msg:"m"; flow:established; metadata: attack_target Web_Server, created_at 2019_07_26, attack_target Server; metadata:mitre_technique_id T1190, novalue; sid:3;)';
    const lines = await eveLines('http-evader__http-evader-002', rule);
    assert.ok(lines.length > 0);
    assert.deepEqual(lines[0]!.alert.metadata, {
      attack_target: ['Web_Server', 'Server'],
      created_at: ['2019_07_26'],
      mitre_technique_id: ['T1190'],
    });
    const bare = await eveLines(
      'http-evader__http-evader-002',
      'alert tcp any any -> any any (msg:"m"; flow:established; sid:4;)',
    );
    assert.equal(bare[0]!.alert.metadata, undefined, 'no metadata keyword, no metadata object');
  },
);
