/** The rule header and metadata parser: what it reads, what it refuses (with which reason), and that hostile text never throws. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  addrIncludes,
  isPortAgnostic,
  parseIp,
  parseRule,
  parseRuleFile,
  portIncludes,
  RuleVars,
  type ParsedRule,
  type SkipReason,
} from '../src/index.js';

const vars = new RuleVars();
const where = { ruleSet: 'test.rules', line: 1 };

function ok(text: string, v = vars): ParsedRule {
  const r = parseRule(text, v, where);
  assert.ok(r.ok, `${text}\n→ ${r.ok ? '' : `${r.reason}: ${r.detail}`}`);
  return r.rule;
}

function skipped(text: string, reason: SkipReason): void {
  const r = parseRule(text, vars, where);
  assert.ok(!r.ok, `expected a skip (${reason}): ${text}`);
  assert.equal(r.reason, reason, `${text}: ${r.detail}`);
}

const ips = (...a: string[]) => a.map((x) => parseIp(x)!);

test('an ET-style rule: header, flow direction, msg with escapes, classtype, repeated metadata keys', () => {
  const r = ok(
    'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"ET WEB_SERVER a \\"quoted\\" word\\; and more"; flow:established,to_server; http.uri; content:"/x"; ' +
      'classtype:web-application-attack; sid:2012345; rev:7; metadata:affected_product Nginx, attack_target Web_Server, deployment Perimeter, deployment Datacenter, signature_severity Major, created_at 2020_01_01;)',
  );
  assert.equal(r.action, 'alert');
  assert.equal(r.proto, 'http');
  assert.equal(r.app, 'http');
  assert.equal(r.transport, 'tcp');
  assert.equal(r.flow, 'to_server');
  assert.equal(r.sid, 2012345);
  assert.equal(r.rev, 7);
  assert.equal(r.msg, 'ET WEB_SERVER a "quoted" word; and more');
  assert.equal(r.classtype, 'web-application-attack');
  assert.deepEqual(r.metadata['deployment'], ['Perimeter', 'Datacenter']);
  assert.deepEqual(r.metadata['affected_product'], ['Nginx']);
  assert.deepEqual(r.metadata['signature_severity'], ['Major']);
  assert.equal(r.bidirectional, false);
});

test('the application layer comes from the header, app-layer-protocol, or the buffers a tcp rule uses', () => {
  assert.equal(ok('alert tcp any any -> any 8000 (msg:"x"; http.uri; content:"a"; sid:1;)').app, 'http');
  assert.equal(ok('alert tcp any any -> any any (msg:"x"; content:"a"; http_uri; sid:1;)').app, 'http');
  assert.equal(ok('alert udp any any -> any any (msg:"x"; dns.query; content:"a"; sid:1;)').app, 'dns');
  assert.equal(ok('alert tcp any any -> any any (msg:"x"; app-layer-protocol:smb; sid:1;)').app, 'smb');
  assert.equal(ok('alert tcp any any -> any any (msg:"x"; app-layer-protocol:!http; content:"a"; sid:1;)').app, null);
  assert.equal(ok('alert tcp any any -> any 445 (msg:"x"; content:"|ff|SMB"; sid:1;)').app, null);
  assert.equal(ok('alert http1 any any -> any any (msg:"x"; sid:1;)').proto, 'http');
  assert.equal(ok('alert dns any any -> any any (msg:"x"; sid:1;)').transport, null, 'DNS runs on UDP and TCP');
  assert.equal(ok('alert tcp-pkt any any -> any any (msg:"x"; sid:1;)').transport, 'tcp');
  assert.equal(ok('alert icmp any any -> any any (msg:"x"; sid:1;)').transport, 'icmp');
  assert.equal(
    ok('alert ssh any $SSH_PORTS -> any any (msg:"x"; flow:established,to_client; sid:1;)').flow,
    'to_client',
  );
  assert.equal(ok('alert tcp any any <> any any (msg:"x"; sid:1;)').bidirectional, true);
});

test('address specs: variables, negation, lists, CIDRs, IPv6, and a VM whose addresses are unknown', () => {
  const v = new RuleVars({ address: { HOME_NET: '[10.0.0.0/8,2001:db8::/32]' } });
  const home = v.addr('$HOME_NET');
  assert.ok(addrIncludes(home, ips('10.1.2.3')));
  assert.ok(addrIncludes(home, ips('2001:db8::5')));
  assert.ok(!addrIncludes(home, ips('192.168.1.1')));
  assert.ok(!addrIncludes(v.addr('$EXTERNAL_NET'), ips('10.1.2.3')));
  assert.ok(addrIncludes(v.addr('$HTTP_SERVERS'), ips('10.1.2.3')), 'server variables are $HOME_NET by default');
  const list = v.addr('[10.0.0.0/24,!10.0.0.5]');
  assert.ok(addrIncludes(list, ips('10.0.0.4')));
  assert.ok(!addrIncludes(list, ips('10.0.0.5')));
  assert.ok(addrIncludes(v.addr('[!10.0.0.5]'), ips('10.9.9.9')), 'a list of only negations is "any but"');
  assert.ok(!addrIncludes(v.addr('![$HOME_NET,1.2.3.4]'), ips('1.2.3.4')));
  assert.ok(addrIncludes(v.addr('any'), ips('8.8.8.8')));
  assert.ok(addrIncludes(v.addr('::ffff:1.2.3.0/120'), ips('::ffff:1.2.3.9')));
  assert.ok(addrIncludes(v.addr('[$HOME_NET,$HTTP_SERVERS]'), 'home'), 'no known address: the VM is in $HOME_NET');
  assert.ok(!addrIncludes(v.addr('$EXTERNAL_NET'), 'home'));
  assert.ok(!addrIncludes(v.addr('1.2.3.4'), 'home'));
  assert.ok(addrIncludes(vars.addr('$HOME_NET'), ips('192.168.7.7')), "Suricata's default HOME_NET is RFC 1918");
});

test('port specs: variables, ranges, open ends, negated lists, and which are host-wide', () => {
  const p = (s: string) => vars.ports(s);
  assert.ok(portIncludes(p('$HTTP_PORTS'), 80));
  assert.ok(!portIncludes(p('$HTTP_PORTS'), 8080));
  assert.ok(!portIncludes(p('$SHELLCODE_PORTS'), 80));
  assert.ok(portIncludes(p('$SHELLCODE_PORTS'), 81));
  assert.ok(portIncludes(p('[1024:65535,!8080]'), 3306));
  assert.ok(!portIncludes(p('[1024:65535,!8080]'), 8080));
  assert.ok(portIncludes(p('1024:'), 65535));
  assert.ok(portIncludes(p(':1023'), 0));
  assert.ok(portIncludes(p('[139,445]'), 445));
  assert.ok(portIncludes(p('$FILE_DATA_PORTS'), 110), 'nested variables resolve');
  assert.ok(!portIncludes(p('![139,445]'), 139));
  assert.ok(isPortAgnostic(p('any')));
  assert.ok(isPortAgnostic(p('!80')));
  assert.ok(isPortAgnostic(p('1024:65535')));
  assert.ok(!isPortAgnostic(p('[139,445]')));
  assert.ok(!isPortAgnostic(p('0:1023')));
});

test('a rule that does not parse is skipped with its reason, never thrown', () => {
  skipped('# alert tcp any any -> any any (msg:"x"; sid:1;)', 'not-a-rule');
  skipped('log tcp any any -> any any (msg:"x"; sid:1;)', 'not-a-rule');
  skipped('alert tcp any any -> any (msg:"x"; sid:1;)', 'header');
  skipped('alert tcp any any any -> any any (msg:"x"; sid:1;)', 'header');
  skipped('alert gopher any any -> any any (msg:"x"; sid:1;)', 'protocol');
  skipped('alert tcp any any <- any any (msg:"x"; sid:1;)', 'direction');
  skipped('alert tcp 300.1.1.1 any -> any any (msg:"x"; sid:1;)', 'address');
  skipped('alert tcp 10.0.0.0/33 any -> any any (msg:"x"; sid:1;)', 'address');
  skipped('alert tcp [10.0.0.1,,10.0.0.2] any -> any any (msg:"x"; sid:1;)', 'address');
  skipped('alert tcp [10.0.0.1 any -> any any (msg:"x"; sid:1;)', 'address');
  skipped('alert tcp any 70000 -> any any (msg:"x"; sid:1;)', 'port');
  skipped('alert tcp any 9:3 -> any any (msg:"x"; sid:1;)', 'port');
  skipped('alert tcp any 1:2:3 -> any any (msg:"x"; sid:1;)', 'port');
  skipped('alert tcp $NOPE any -> any any (msg:"x"; sid:1;)', 'variable');
  skipped('alert tcp any $NOPE_PORTS -> any any (msg:"x"; sid:1;)', 'variable');
  skipped('alert tcp any any -> any any (msg:"x"; sid:1)', 'options');
  skipped('alert tcp any any -> any any (msg:"x"; sid:1;', 'options');
  skipped('alert tcp any any -> any any msg:"x"; sid:1;', 'options');
  skipped('alert tcp any any -> any any (msg:"x"; rev:1;)', 'sid');
  skipped('alert tcp any any -> any any (msg:"x"; sid:abc;)', 'sid');
  // self-referencing variables end at the nesting limit, not in a stack overflow
  const loop = new RuleVars({ address: { A: '$B', B: '$A' } });
  const r = parseRule('alert tcp $A any -> any any (msg:"x"; sid:1;)', loop, where);
  assert.ok(!r.ok && r.reason === 'address', 'a variable cycle is refused');
});

test('a rule file: continuation lines, comments, disabled rules and skips counted with their line', () => {
  const text = [
    '# a comment',
    '',
    'alert tcp any any -> $HOME_NET 22 (msg:"ssh"; \\',
    '  sid:10; rev:1;)',
    '# alert tcp any any -> any any (msg:"off"; sid:11;)',
    'alert tcp any any -> any any (msg:"broken"; sid:12)',
    'alert udp any any -> any 53 (msg:"dns"; sid:13;)\r',
  ].join('\n');
  const f = parseRuleFile(text, 'local.rules', vars);
  assert.deepEqual(
    f.rules.map((r) => [r.sid, r.line, r.ruleSet]),
    [
      [10, 3, 'local.rules'],
      [13, 7, 'local.rules'],
    ],
  );
  assert.equal(f.disabled, 1);
  assert.deepEqual(f.skipped, [
    { ruleSet: 'local.rules', line: 6, sid: 12, reason: 'options', detail: 'the last option is not terminated by ";"' },
  ]);
});

/** A small PRNG so the fuzz is the same on every run. */
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('hostile text: mutated rules and garbage never throw, and every line is a rule or a counted skip', () => {
  const seeds = [
    'alert http $EXTERNAL_NET any -> $HOME_NET any (msg:"x"; flow:established,to_server; metadata:affected_product Nginx, deployment Perimeter; sid:2000001; rev:1;)',
    'alert tcp [10.0.0.0/8,!10.0.0.5,[1.2.3.4,$HOME_NET]] [1024:65535,!8080] <> $HOME_NET $HTTP_PORTS (msg:"y\\;z"; sid:2;)',
    'alert dns $HOME_NET any -> any any (msg:"q"; dns.query; content:"a"; sid:3;)',
  ];
  const alphabet = '[]!$,:;()"\\ -><0123456789abcdefxyzHOME_NET/.';
  const rand = rng(42);
  let rules = 0;
  let skips = 0;
  for (let i = 0; i < 20_000; i++) {
    let s = seeds[i % seeds.length]!;
    const edits = 1 + Math.floor(rand() * 4);
    for (let e = 0; e < edits; e++) {
      const at = Math.floor(rand() * s.length);
      const op = rand();
      const ch = alphabet[Math.floor(rand() * alphabet.length)]!;
      s =
        op < 0.4
          ? s.slice(0, at) + ch + s.slice(at)
          : op < 0.8
            ? s.slice(0, at) + s.slice(at + 1)
            : s.slice(0, at) + ch + s.slice(at + 1);
    }
    const r = parseRule(s, vars, where);
    if (r.ok) rules++;
    else skips++;
  }
  assert.equal(rules + skips, 20_000);
  assert.ok(rules > 0 && skips > 0, `${rules} parsed, ${skips} skipped`);
  // deep nesting and a very long line
  const deep = `alert tcp ${'['.repeat(5000)}1.2.3.4${']'.repeat(5000)} any -> any any (msg:"d"; sid:9;)`;
  const d = parseRule(deep, vars, where);
  assert.ok(!d.ok && d.reason === 'address');
  const long = `alert tcp any any -> any any (msg:"${'A'.repeat(1_000_000)}"; sid:10;)`;
  assert.ok(parseRule(long, vars, where).ok);
});
