import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, readTable } from '@cordon/bus';
import { allTopicSpecs, codecFor, TOPICS } from '@cordon/schemas';
import {
  agentPolicyFor,
  applyInventoryFile,
  applyPolicyFile,
  assembleRuleset,
  blockActionFor,
  InventoryView,
  parseInventoryText,
  parsePolicyText,
  PolicyView,
  splitRuleset,
} from '../src/index.js';
import { DEFAULT_LIMITS, updateRuleSet } from '@cordon/rulesets';

const fails = (fn: () => unknown, where: RegExp) =>
  assert.throws(fn, (e: { code?: string; message: string }) => {
    assert.equal(e.code, 'CORDON_ERR_POLICY_FILE');
    assert.match(e.message, where);
    return true;
  });

test('policy errors name the line: unknown keys, bad values, bad YAML', () => {
  const text = [
    'id: web',
    'mode: prevent',
    'rules:',
    '  2010935: prevent',
    'vms:',
    '  web-1:',
    '    mode: detect',
    '    requireAgnet: true',
    'blocks:',
    '  ttlS: 60',
  ].join('\n');
  fails(() => parsePolicyText(text, 'p.yaml'), /^p\.yaml:8: unknown key "vms\.web-1\.requireAgnet"/);
  fails(() => parsePolicyText('mode: prevent\nrules:\n  "12ab": prevent\n', 'p.yaml'), /^p\.yaml:3: .*numeric sid/);
  fails(
    () => parsePolicyText('mode: prevent\nblocks:\n  ttlS: 60\n  action: explode\n', 'p.yaml'),
    /^p\.yaml:4: blocks\.action/,
  );
  fails(
    () => parsePolicyText('blocks:\n  ttlS: 600\n  maxTtlS: 60\n', 'p.yaml'),
    /^p\.yaml:3: blocks\.maxTtlS: maxTtlS must be at least ttlS/,
  );
  fails(() => parsePolicyText('mode: prevent\nrules: [\n', 'p.yaml'), /^p\.yaml:\d+: /);
  fails(() => parsePolicyText('mode: prevent\nmode: detect\n', 'p.yaml'), /^p\.yaml:2: /);
  const ok = parsePolicyText(text.replace('requireAgnet', 'requireAgent'), 'p.yaml');
  assert.equal(ok.vms['web-1']!.requireAgent, true);
  assert.equal(ok.blocks.maxTtlS, 86_400, 'defaults filled in');
});

test("agent sections: validated with the line named, a VM's fields over the default's", () => {
  fails(
    () => parsePolicyText('agents:\n  default:\n    fim:\n      paths: [etc]\n', 'p.yaml'),
    /^p\.yaml:4: agents\.default\.fim\.paths\.0: must be an absolute path/,
  );
  fails(
    () => parsePolicyText('agents:\n  vms:\n    web-1:\n      logz: []\n', 'p.yaml'),
    /^p\.yaml:4: unknown key "agents\.vms\.web-1\.logz"/,
  );
  const p = parsePolicyText(
    'agents:\n  default:\n    logs: [{ path: /var/log/auth.log }]\n    netconf: { intervalS: 60 }\n  vms:\n    web-1:\n      logs: []\n',
    'p.yaml',
  );
  assert.deepEqual(agentPolicyFor(p, 'web-1').logs, [], 'the VM replaces the default list');
  assert.equal(agentPolicyFor(p, 'web-1').netconf?.intervalS, 60, 'what the VM does not set comes from the default');
  assert.deepEqual(agentPolicyFor(p, 'db-1').logs, [{ path: '/var/log/auth.log' }]);
});

test('inventory errors name the line: bad MAC, bad IP, an address on two VMs', () => {
  const good = [
    'hosts:',
    '  hv1:',
    '    vms:',
    '      web-1:',
    '        nics:',
    '          - mac: 02:00:0A:D5:01:0A',
    '            ips: [10.213.1.10]',
    '      db-1:',
    '        nics:',
    '          - mac: 02:00:0a:d5:01:0b',
    '            ips: [10.213.1.11]',
  ];
  const inv = parseInventoryText(good.join('\n'), 'i.yaml');
  assert.equal(inv.hosts.hv1!.vms['web-1']!.nics[0]!.mac, '02:00:0a:d5:01:0a', 'MACs normalised');
  fails(
    () => parseInventoryText(good.join('\n').replace('02:00:0a:d5:01:0b', 'zz:00'), 'i.yaml'),
    /^i\.yaml:10: .*not a MAC/,
  );
  fails(
    () => parseInventoryText(good.join('\n').replace('[10.213.1.11]', '[10.213.1.10]'), 'i.yaml'),
    /^i\.yaml:11: .*also an address of web-1/,
  );
  fails(
    () => parseInventoryText(good.join('\n').replace('[10.213.1.11]', '["fe80::1%eth0"]'), 'i.yaml'),
    /^i\.yaml:11: .*plain IPv4/,
  );
  fails(
    () =>
      parseInventoryText(
        good
          .join('\n')
          .replace(
            '        nics:\n          - mac: 02:00:0a:d5:01:0b',
            '        nic:\n          - mac: 02:00:0a:d5:01:0b',
          ),
        'i.yaml',
      ),
    /^i\.yaml:9: unknown key "hosts\.hv1\.vms\.db-1\.nic"/,
  );
});

test('mode resolution: VM rule > VM > rule > global > the rule action', () => {
  const p = parsePolicyText(
    'rules:\n  "100": prevent\n  "200": detect\nvms:\n  fragile:\n    mode: detect\n    rules:\n      "300": prevent\n  strict:\n    mode: prevent\nblocks:\n  action: reject\n',
    'p.yaml',
  );
  assert.equal(blockActionFor(p, null, 'any', 'alert'), null, 'no mode set: an alert rule only alerts');
  assert.equal(blockActionFor(p, null, 'any', 'drop'), 'drop', 'no mode set: a drop rule blocks');
  assert.equal(blockActionFor(p, '100', 'any', 'alert'), 'reject', 'rule prevent, policy action');
  assert.equal(blockActionFor(p, '200', 'any', 'drop'), null, 'rule detect beats the drop action');
  assert.equal(blockActionFor(p, '100', 'fragile', 'alert'), null, 'VM detect beats a global rule');
  assert.equal(blockActionFor(p, '300', 'fragile', 'alert'), 'reject', 'VM rule beats VM mode');
  assert.equal(blockActionFor(p, '200', 'strict', 'alert'), 'reject', 'VM prevent beats a global rule detect');
  assert.equal(blockActionFor(p, '100', 'strict', 'pass'), null, 'pass never blocks');
  assert.equal(blockActionFor({ ...p, mode: 'detect' }, null, 'any', 'drop'), null, 'IDS mode: drop rules only alert');
});

test('large rule files are split into parts that reassemble exactly', () => {
  const text =
    Array.from(
      { length: 40_000 },
      (_, i) => `alert tcp any any -> any any (msg:"rule ${i} ${'x'.repeat(60)}"; sid:${i + 1};)`,
    ).join('\n') + '\n';
  const parts = splitRuleset('big.rules', text);
  assert.ok(parts.length >= 2, `split into ${parts.length}`);
  for (const p of parts) assert.ok(p.data.length < 900_000, 'each part fits a default Kafka record');
  assert.equal(assembleRuleset([...parts].reverse()), text);
  assert.throws(() => assembleRuleset(parts.slice(1).concat(parts.slice(2))), /part 1 of/);
});

test('apply writes policy, rulesets and inventory once; unchanged files write nothing', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-policy-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    writeFileSync(
      join(dir, 'web.rules'),
      'alert http any any -> any any (msg:"x"; content:"/etc/passwd"; sid:1000001; rev:1;)\n',
    );
    writeFileSync(
      join(dir, 'policy.yaml'),
      'id: default\nmode: prevent\nruleFiles: [web.rules]\nblocks:\n  ttlS: 30\n',
    );
    const r1 = await applyPolicyFile({ bus, ctx }, join(dir, 'policy.yaml'));
    assert.deepEqual([r1.version, r1.changed, r1.written], [1, true, 2]);
    const r2 = await applyPolicyFile({ bus, ctx }, join(dir, 'policy.yaml'));
    assert.deepEqual([r2.version, r2.changed, r2.written], [1, false, 0]);
    writeFileSync(join(dir, 'policy.yaml'), 'id: default\nmode: detect\nruleFiles: [web.rules]\n');
    const dry = await applyPolicyFile({ bus, ctx }, join(dir, 'policy.yaml'), { dryRun: true });
    assert.deepEqual(
      [dry.version, dry.records, dry.written],
      [2, 1, 0],
      'a dry run counts what it would write and writes nothing',
    );
    const r3 = await applyPolicyFile({ bus, ctx }, join(dir, 'policy.yaml'));
    assert.deepEqual([r3.version, r3.written], [2, 1], 'only the policy record changed');
    const view = new PolicyView();
    for (const r of (await readTable(bus, TOPICS.policy)).values()) view.apply(r.key, r.value);
    assert.equal(view.policies.get('default')!.doc.mode, 'detect');
    assert.match(assembleRuleset(view.rulesetParts('web.rules')), /sid:1000001/);

    writeFileSync(
      join(dir, 'inv.yaml'),
      'hosts:\n  hv1:\n    vms:\n      web-1:\n        nics:\n          - mac: 02:00:0a:d5:01:0a\n            ips: [10.213.1.10]\n',
    );
    const i1 = await applyInventoryFile({ bus, ctx }, join(dir, 'inv.yaml'));
    assert.deepEqual(i1, { hosts: 1, vms: 1, records: 2, written: 2, pruned: 0 });
    assert.equal((await applyInventoryFile({ bus, ctx }, join(dir, 'inv.yaml'))).written, 0);
    writeFileSync(join(dir, 'inv.yaml'), 'hosts:\n  hv1: {}\n');
    assert.deepEqual(await applyInventoryFile({ bus, ctx }, join(dir, 'inv.yaml'), { prune: true }), {
      hosts: 1,
      vms: 0,
      records: 1,
      written: 1,
      pruned: 1,
    });
    const inv = new InventoryView();
    for (const r of (await readTable(bus, TOPICS.inventory)).values()) inv.apply(r.key, r.value);
    assert.equal(inv.vms.size, 0);
    assert.ok(inv.hosts.has('hv1'));
    assert.equal(
      codecFor(TOPICS.inventory).decode([...(await readTable(bus, TOPICS.inventory)).values()][0]!.value!).kind,
      'host',
    );

    // a policy file that fails validation writes nothing
    writeFileSync(join(dir, 'policy.yaml'), 'id: default\nmode: prevnt\n');
    await assert.rejects(applyPolicyFile({ bus, ctx }, join(dir, 'policy.yaml')), /policy\.yaml:2: mode/);
    const after = new PolicyView();
    for (const r of (await readTable(bus, TOPICS.policy)).values()) after.apply(r.key, r.value);
    assert.equal(after.policies.get('default')!.version, 2);
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a YAML alias bomb in a policy or inventory file is a coded error naming the file, not an uncoded crash or a memory blow-up', () => {
  // nine aliases of nine aliases … of nine strings: 9^9 (387 million) strings once expanded
  const lines = ['a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]'];
  for (let i = 1; i < 9; i++)
    lines.push(
      `a${i}: &a${i} [${Array(9)
        .fill(`*a${i - 1}`)
        .join(', ')}]`,
    );
  const bomb = `${lines.join('\n')}\n`;
  for (const parse of [parsePolicyText, parseInventoryText]) {
    assert.throws(
      () => parse(bomb, 'bomb.yaml'),
      (e: { code?: string; message: string }) =>
        e.code === 'CORDON_ERR_POLICY_FILE' && /bomb\.yaml/.test(e.message) && /alias/.test(e.message),
    );
  }
  // a few aliases, as people use them, still work
  const ok = parsePolicyText('id: default\nrules: &r { "1000": prevent }\nvms: { web-1: { rules: *r } }\n', 'ok.yaml');
  assert.equal(ok.vms['web-1']!.rules['1000'], 'prevent');
});

test("YARA rule sets the agents' malware sections name are published apart from the dpi's rulesets", async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-policy-yara-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    const data = join(dir, 'data');
    const rule = 'rule Local_Marker : test { strings: $a = "marker" condition: $a }\n';
    writeFileSync(join(dir, 'local.yar'), rule);
    await updateRuleSet(
      { location: join(dir, 'local.yar') },
      { dataDir: data, sidecars: false, now: () => new Date(), limits: DEFAULT_LIMITS },
    );
    writeFileSync(
      join(dir, 'policy.yaml'),
      [
        'id: default',
        'agents:',
        '  default:',
        '    malware: { ruleSets: [local], quarantine: true }',
        '  vms:',
        '    db-1:',
        '      malware: { enabled: false }',
        '',
      ].join('\n'),
    );
    await applyPolicyFile({ bus, ctx, dataDir: data }, join(dir, 'policy.yaml'));
    const view = new PolicyView();
    for (const r of (await readTable(bus, TOPICS.policy)).values()) view.apply(r.key, r.value);
    const doc = view.policies.get('default')!.doc;
    assert.deepEqual(doc.rulesets, [], 'no dpi loads them');
    assert.deepEqual(
      doc.yaraRulesets!.map((r) => [r.name, r.set]),
      [['yara/local/local.yar', 'local']],
    );
    assert.equal(assembleRuleset(view.rulesetParts('yara/local/local.yar')), rule);
    assert.equal(agentPolicyFor(doc, 'web-1').malware?.quarantine, true);
    assert.equal(agentPolicyFor(doc, 'db-1').malware?.enabled, false);

    // a set that is not installed is a coded error naming the policy file
    writeFileSync(join(dir, 'policy.yaml'), 'id: default\nagents:\n  default:\n    malware: { ruleSets: [nope] }\n');
    await assert.rejects(
      applyPolicyFile({ bus, ctx, dataDir: data }, join(dir, 'policy.yaml')),
      (e: { code?: string; message: string }) =>
        e.code === 'CORDON_ERR_RULES_NOT_INSTALLED' && /policy\.yaml/.test(e.message),
    );
    // and an unknown key in the malware section names it
    writeFileSync(join(dir, 'policy.yaml'), 'id: default\nagents:\n  default:\n    malware: { quarantin: true }\n');
    await assert.rejects(applyPolicyFile({ bus, ctx, dataDir: data }, join(dir, 'policy.yaml')), /quarantin/);
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
