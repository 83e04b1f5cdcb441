import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus, readAll, type Bus } from '@cordon/bus';
import { createContext, silentLogger, type Context } from '@cordon/runtime';
import { allTopicSpecs, codecFor, TOPICS, type PacketBatch } from '@cordon/schemas';
import { applyPolicyFile, ruleSelectionRecord } from '@cordon/policy';
import { runStage } from '@cordon/stage';
import { udpFrame, waitFor } from '@cordon/testkit';
import { dpiCommand, dpiStage, rulesCheckCommand } from '../src/index.js';
import { sidsByFile } from '../src/rule-selection.js';

/**
 * Attacks on the dpi stage through its rules: a policy record is enough to make it compile
 * anything, so a rule set must never freeze it, and must never take its old rules away before
 * the new ones are ready.
 */

let batchNo = 0;
async function sendPacket(bus: Bus, payload: string, vm: string | null = null): Promise<void> {
  const pb: PacketBatch = {
    batch_id: `t-${process.pid}-${batchNo++}`,
    sensor: 'test',
    vm,
    linktype: 1,
    end_of_source: false,
    recovery_of: null,
    packets: [{ ts_us: Date.now() * 1000, seq: 0, orig_len: udpFrame(payload).length, frame: udpFrame(payload) }],
  };
  await bus.producer().send(TOPICS.packets, [{ key: Buffer.from('k'), value: codecFor(TOPICS.packets).encode(pb) }]);
}

const rule = (sid: number, content: string) =>
  `alert udp any any -> any any (msg:"t ${sid}"; content:"${content}"; sid:${sid}; rev:1;)`;
/** Many rules that take seconds to compile, each within the content cap. */
const slowRules = (n: number) =>
  Array.from({ length: n }, (_, i) => rule(500_000 + i, `${'A'.repeat(4092)}${String(i).padStart(4, '0')}`)).join('\n');

/** The longest the event loop stood still while `fn` ran. */
async function longestStall<T>(fn: () => Promise<T>): Promise<{ value: T; stallMs: number }> {
  let last = performance.now();
  let worst = 0;
  const t = setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last);
    last = now;
  }, 10);
  try {
    const value = await fn();
    worst = Math.max(worst, performance.now() - last);
    return { value, stallMs: worst };
  } finally {
    clearInterval(t);
  }
}

async function world(
  fn: (w: {
    bus: Bus;
    ctx: Context;
    dir: string;
    policy: (rules: string) => Promise<void>;
    alerted: (sid: number) => Promise<number>;
  }) => Promise<void>,
) {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-dpi-reload-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: dir, ctx });
  let version = 0;
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    const policy = async (rules: string) => {
      const file = join(dir, `p${version++}.rules`);
      writeFileSync(file, `${rules}\n`);
      writeFileSync(join(dir, 'policy.yaml'), `id: default\nruleFiles: [${file}]\n`);
      await applyPolicyFile({ bus, ctx }, join(dir, 'policy.yaml'));
    };
    const alerted = async (sid: number) =>
      (await readAll(bus, TOPICS.alerts)).filter(
        (r) => codecFor(TOPICS.alerts).decode(r.value!).rule_id === `sid:${sid}`,
      ).length;
    await fn({ bus, ctx, dir, policy, alerted });
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test(
  'a policy with a 50,000-byte content does not freeze the dpi stage: that rule is refused with its code, the others load',
  { timeout: 300_000 },
  async () => {
    await world(async ({ bus, ctx, policy, alerted }) => {
      const s = await runStage(dpiStage, { bus, ctx });
      try {
        const { stallMs } = await longestStall(async () => {
          await policy([rule(1, 'HELLO'), rule(4242, 'A'.repeat(50_000))].join('\n'));
          await waitFor('the new rules', () => s.rules().report().rules === 2, 200_000);
          await s.compiled();
        });
        assert.ok(stallMs < 1000, `the event loop stood still for ${Math.round(stallMs)} ms`);
        const rep = s.rules().report();
        assert.equal(rep.loaded, 1);
        assert.equal(rep.failures[0]!.sid, 4242);
        assert.match(rep.failures[0]!.reason, /^CORDON_ERR_RULE_CONTENT_TOO_LONG: a content of 50000 bytes/);
        await sendPacket(bus, 'xxHELLOxx');
        await waitFor('the alert of the rule that loaded', async () => (await alerted(1)) === 1);
      } finally {
        await s.stop();
      }
    });
  },
);

test('cordon rules check on a rule with a 50,000-byte content ends within 5 s, naming the sid and the code', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-rules-big-'));
  try {
    const file = join(dir, 'big.rules');
    writeFileSync(file, `${rule(4242, 'A'.repeat(50_000))}\n${rule(1, 'HELLO')}\n`);
    const lines: string[] = [];
    const t0 = performance.now();
    const code = await rulesCheckCommand(['check', file], (s) => lines.push(...s.split('\n').filter(Boolean)));
    const ms = performance.now() - t0;
    assert.ok(ms < 5000, `${Math.round(ms)} ms`);
    assert.equal(code, 1);
    assert.match(lines[0]!, /^sid 4242 .*big\.rules:1: CORDON_ERR_RULE_CONTENT_TOO_LONG/);
    assert.deepEqual(JSON.parse(lines.at(-1)!), { rules: 2, loaded: 1, failed: 1 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('cordon dpi with a 50,000-byte content: the rule is refused with its sid and code, the capture is inspected with the others', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-dpi-big-'));
  const write = process.stderr.write.bind(process.stderr);
  const stdout = process.stdout.write.bind(process.stdout);
  const err: string[] = [];
  const out: string[] = [];
  try {
    const rules = join(dir, 'big.rules');
    writeFileSync(rules, `${rule(4242, 'A'.repeat(50_000))}\n${rule(1, 'HELLO')}\n`);
    const frame = udpFrame('xxHELLOxx');
    const head = Buffer.alloc(24);
    head.writeUInt32LE(0xa1b2c3d4, 0);
    head.writeUInt16LE(2, 4);
    head.writeUInt16LE(4, 6);
    head.writeUInt32LE(65535, 16);
    head.writeUInt32LE(1, 20);
    const rec = Buffer.alloc(16);
    rec.writeUInt32LE(1_700_000_000, 0);
    rec.writeUInt32LE(frame.length, 8);
    rec.writeUInt32LE(frame.length, 12);
    const pcap = join(dir, 'one.pcap');
    writeFileSync(pcap, Buffer.concat([head, rec, frame]));
    process.stderr.write = ((s: string) => (err.push(String(s)), true)) as typeof process.stderr.write;
    process.stdout.write = ((s: string) => (out.push(String(s)), true)) as typeof process.stdout.write;
    const t0 = performance.now();
    const code = await dpiCommand({ rules: [rules], pcap, checksum: 'auto', stats: false });
    const ms = performance.now() - t0;
    process.stderr.write = write;
    process.stdout.write = stdout;
    assert.equal(code, 0);
    assert.ok(ms < 5000, `${Math.round(ms)} ms`);
    assert.match(err.join(''), /rule 4242 \(.*big\.rules:1\) not loaded: CORDON_ERR_RULE_CONTENT_TOO_LONG/);
    // (the test runner shares stdout: only the EVE lines are ours)
    const eve = out
      .flatMap((chunk) => chunk.split('\n'))
      .filter((l) => l.startsWith('{') && l.includes('"event_type":"alert"'));
    assert.deepEqual(
      eve.map((l) => (JSON.parse(l) as { alert: { signature_id: number } }).alert.signature_id),
      [1],
    );
  } finally {
    process.stderr.write = write;
    process.stdout.write = stdout;
    rmSync(dir, { recursive: true, force: true });
  }
});

test(
  'while a large rule set compiles, packets keep being inspected with the rules in force',
  { timeout: 300_000 },
  async () => {
    await world(async ({ bus, ctx, policy, alerted }) => {
      const s = await runStage(dpiStage, { bus, ctx });
      try {
        await policy(rule(1, 'HELLO'));
        await waitFor('the first rules', () => s.rules().report().loaded === 1);
        const old = s.rules();
        const { stallMs } = await longestStall(async () => {
          await policy([rule(1, 'HELLO'), rule(2, 'WORLD'), slowRules(600)].join('\n'));
          // the new set is compiling now; the old one answers meanwhile
          const t0 = performance.now();
          await sendPacket(bus, 'xxHELLOxx');
          await waitFor('an alert under the old rules', async () => (await alerted(1)) === 1, 60_000, 20);
          assert.equal(s.rules(), old, 'the alert came while the old set was still in force');
          assert.ok(
            performance.now() - t0 < 2000,
            `${Math.round(performance.now() - t0)} ms for one packet during the compilation`,
          );
          await s.compiled();
        });
        assert.ok(stallMs < 1000, `the event loop stood still for ${Math.round(stallMs)} ms`);
        assert.equal(s.rules().report().loaded, 602);
        await sendPacket(bus, 'xxWORLDxx');
        await waitFor('the new rule', async () => (await alerted(2)) === 1);
      } finally {
        await s.stop();
      }
    });
  },
);

test(
  'a rule set that takes longer than compileTimeoutS is not applied: the old one keeps serving',
  { timeout: 300_000 },
  async () => {
    await world(async ({ bus, ctx, policy, alerted }) => {
      const s = await runStage(dpiStage, { bus, ctx, config: { compileTimeoutS: 0.2 } });
      try {
        await policy(rule(1, 'HELLO'));
        await waitFor('the first rules', () => s.rules().report().loaded === 1);
        const old = s.rules();
        await policy([rule(2, 'WORLD'), slowRules(600)].join('\n'));
        const timeouts = () =>
          [...ctx.metrics.counters()]
            .filter(([k]) => k.endsWith('rules_compile_timeouts'))
            .reduce((n, [, v]) => n + v, 0);
        await waitFor('the time limit to pass', () => timeouts() === 1, 60_000);
        await s.compiled(); // the abandoned compilation has ended too
        assert.equal(s.rules(), old, 'the slow set was given up');
        await sendPacket(bus, 'xxHELLOxx WORLD');
        await waitFor('the old rule answers', async () => (await alerted(1)) === 1);
        assert.equal(await alerted(2), 0, 'the abandoned rule never fired');
        // a later set that compiles in time is applied as usual
        await policy(rule(3, 'AGAIN'));
        await waitFor('the next rules', () => s.rules().report().rules === 1 && s.rules() !== old);
      } finally {
        await s.stop();
      }
    });
  },
);

test(
  "a VM's rule selection: its left-out rules stop alerting for it, not for other VMs nor for rules of other files; a bad selection record changes nothing",
  { timeout: 120_000 },
  async () => {
    await world(async ({ bus, ctx, policy }) => {
      const s = await runStage(dpiStage, { bus, ctx });
      const select = async (vm: string, ruleSets: string[], enabled: number[], version: number) => {
        const r = ruleSelectionRecord(
          {
            vm,
            policy: 'default',
            ruleSets,
            enabled,
            recommendation: { version, digest: `d${version}` },
            appliedBy: 'test',
          },
          version,
          Date.now() * 1000,
        );
        await bus.producer().send(TOPICS.policy, [r]);
      };
      /** The sids alerted per VM, in order. */
      const alerts = async () => {
        const by: Record<string, string[]> = {};
        for (const r of await readAll(bus, TOPICS.alerts)) {
          const a = codecFor(TOPICS.alerts).decode(r.value!);
          (by[a.vm ?? '-'] ??= []).push(a.rule_id);
        }
        return by;
      };
      try {
        // the policy's one rule file is p0.rules
        await policy([rule(1, 'HELLO'), rule(2, 'WORLD')].join('\n'));
        await waitFor('the rules', () => s.rules().report().loaded === 2);
        await select('web-1', ['p0.rules'], [1], 1);
        await select('app-1', ['other.rules'], [], 1);
        await waitFor('the selections', () => s.selection('web-1') !== null && s.selection('app-1') !== null);
        // one partition (one key): the packets are inspected in the order sent
        await sendPacket(bus, 'HELLO WORLD', 'web-1');
        await sendPacket(bus, 'HELLO WORLD', 'app-1');
        await sendPacket(bus, 'HELLO WORLD', 'db-1');
        await waitFor('the last packet inspected', async () => (await alerts())['db-1']?.length === 2);
        assert.deepEqual(await alerts(), {
          'web-1': ['sid:1'],
          'app-1': ['sid:1', 'sid:2'],
          'db-1': ['sid:1', 'sid:2'],
        });

        // a selection record that does not decode is skipped: web-1 keeps the one it had
        const bad = ruleSelectionRecord(
          {
            vm: 'web-1',
            policy: 'default',
            ruleSets: ['p0.rules'],
            enabled: [],
            recommendation: { version: 2, digest: 'd2' },
            appliedBy: 'test',
          },
          2,
          Date.now() * 1000,
        );
        await bus.producer().send(TOPICS.policy, [{ key: bad.key, value: Buffer.from('not a policy record') }]);
        // taking the selection away (a tombstone): every rule alerts for web-1 again
        await sendPacket(bus, 'HELLO WORLD', 'web-1');
        await sendPacket(bus, 'HELLO WORLD', 'db-1');
        await waitFor('the second round', async () => (await alerts())['db-1']?.length === 4);
        assert.deepEqual((await alerts())['web-1'], ['sid:1', 'sid:1'], 'still selected after the bad record');
        await bus.producer().send(TOPICS.policy, [{ key: bad.key, value: null }]);
        await waitFor('the selection gone', () => s.selection('web-1') === null);
        await sendPacket(bus, 'HELLO WORLD', 'web-1');
        await waitFor('every rule for web-1', async () => (await alerts())['web-1']?.length === 4);
        assert.deepEqual((await alerts())['web-1'], ['sid:1', 'sid:1', 'sid:1', 'sid:2']);
        const deselected = [...ctx.metrics.counters()]
          .filter(([k]) => k.endsWith('alerts_deselected'))
          .reduce((n, [, v]) => n + v, 0);
        assert.equal(deselected, 2, 'each left-out alert counted');
      } finally {
        await s.stop();
      }
    });
  },
);

test('where a sid comes from: rules joined at a trailing backslash, # lines left out, the sid option (not a sid: spelled inside another)', () => {
  const files = sidsByFile([
    {
      name: 'a.rules',
      text: [
        'alert udp any any -> any any (msg:"x"; content:"A"; sid:1; rev:1;)',
        '# alert udp any any -> any any (msg:"off"; content:"B"; sid:2; rev:1;)',
        'alert udp any any -> any any (msg:"spells sid:9; in its message"; \\',
        '  content:"C"; sid:3; rev:1;)',
        'alert tcp any any -> any any (msg:"z"; sid:5; rev:1; reference:url,example.com/?a= sid:8;)',
        'not a rule (sid:6;)',
        '',
      ].join('\n'),
    },
    { name: 'b.rules', text: 'alert tcp any any -> any any (msg:"y"; sid:1; rev:2;)\n' },
  ]);
  assert.deepEqual(
    [...files].sort(([x], [y]) => x - y),
    [
      [1, ['a.rules', 'b.rules']],
      [3, ['a.rules']],
      [5, ['a.rules']],
    ],
  );
});
