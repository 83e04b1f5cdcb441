import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { createEmbeddedBus, readAll, readTable, type Bus } from '@cordon/bus';
import { createContext, ManualClock, silentLogger } from '@cordon/runtime';
import { defineStage, runStage } from '@cordon/stage';
import { allTopicSpecs, blockKey, codecFor, TOPICS, type BlockDecision } from '@cordon/schemas';
import { ipBlockDecision, waitFor } from '@cordon/testkit';
import { followBlocks, NeverBlock, type BlockApplier, type FollowBlocksOptions } from '../src/index.js';

/**
 * Attacks on an enforcer through the blocks topic: whoever can write `cordon.blocks.v1` (a
 * compromised stage, a forged record) must not be able to cut the machine off or flood its
 * kernel with elements.
 */
const codec = codecFor(TOPICS.blocks);
const ME = 'watchdog:hv-1';

class FakeSets implements BlockApplier {
  readonly inForce = new Map<string, number>();
  applies = 0;
  targetOf(d: BlockDecision): string {
    return d.target.ip!;
  }
  async apply(d: BlockDecision, nowMs: number) {
    this.applies++;
    const ttlMs = Math.floor(d.expires_us / 1000 - nowMs);
    if (ttlMs <= 0) return null;
    this.inForce.set(d.target.ip!, ttlMs);
    return { ttlMs };
  }
  async lift(ip: string) {
    this.inForce.delete(ip);
  }
  async reconcile(keep: ReadonlySet<string>) {
    for (const ip of [...this.inForce.keys()]) if (!keep.has(ip)) this.inForce.delete(ip);
    return 0;
  }
}

const enforcerStage = (sets: FakeSets, extra: Partial<FollowBlocksOptions> = {}) =>
  defineStage({
    name: 'enforcer',
    summary: 'test',
    config: z.object({}).strict(),
    inputs: () => [],
    outputs: () => [TOPICS.blockStatus, TOPICS.alerts],
    start: async (stage) => followBlocks(stage, { enforcer: ME, applier: sets, ...extra }),
  });

const put = (ip: string, now = Date.now(), ttlMs = 600_000) => ({
  key: blockKey(ME, ip),
  value: codec.encode(ipBlockDecision({ enforcer: ME, ip, ttlMs, now })),
});

async function withBus(fn: (bus: Bus) => Promise<void>, clock?: ManualClock): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-guards-'));
  const bus = createEmbeddedBus({
    dataDir: dir,
    ctx: createContext({ log: silentLogger, ...(clock ? { clock } : {}) }),
  });
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    await fn(bus);
  } finally {
    await bus.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

const alerts = async (bus: Bus) =>
  (await readAll(bus, TOPICS.alerts)).map((r) => codecFor(TOPICS.alerts).decode(r.value!));
/** The enforcer's reports (its own topic: it writes nothing on the decisions topic), by target. */
const statuses = async (bus: Bus) =>
  new Map(
    [...(await readTable(bus, TOPICS.blockStatus)).values()]
      .map((r) => codecFor(TOPICS.blockStatus).decode(r.value!))
      .map((d) => [d.target, d.status]),
  );

/** This machine's own addresses and gateways, read independently of the code under test. */
function ownAddressesAndGateway(): string[] {
  const routes = JSON.parse(execFileSync('ip', ['-json', '-4', 'route', 'show', 'table', 'all']).toString()) as Array<{
    type?: string;
    dst?: string;
    gateway?: string;
  }>;
  return [
    ...routes.filter((r) => r.type === 'local' && r.dst && !r.dst.startsWith('127.')).map((r) => r.dst!),
    ...routes.filter((r) => r.gateway).map((r) => r.gateway!),
    ...routes.filter((r) => r.type === 'broadcast' && r.dst && !r.dst.startsWith('127.')).map((r) => r.dst!),
  ];
}

test("never-block: forged blocks of the unspecified, loopback, broadcast, multicast and link-local addresses and of this machine's own address, gateway and broadcast are refused, reported failed and alerted", async () => {
  await withBus(async (bus) => {
    const sets = new FakeSets();
    const s = await runStage(enforcerStage(sets), { bus, ctx: createContext({ log: silentLogger }) });
    try {
      const protectedTargets = [
        '0.0.0.0',
        '::',
        '255.255.255.255',
        '127.0.0.1',
        '::1',
        '224.0.0.251',
        'ff02::1',
        '169.254.169.254',
        'fe80::1',
        '::ffff:127.0.0.1',
        ...ownAddressesAndGateway(),
      ];
      const p = bus.producer();
      await p.send(TOPICS.blocks, [...protectedTargets.map((ip) => put(ip)), put('203.0.113.9')]);
      await waitFor('the attacker blocked', () => sets.inForce.has('203.0.113.9'));
      await waitFor(
        'every refusal reported',
        async () => (await statuses(bus)).size === new Set(protectedTargets).size + 1,
      );
      assert.deepEqual([...sets.inForce.keys()], ['203.0.113.9'], 'only the attacker is in force');
      const st = await statuses(bus);
      for (const ip of protectedTargets) assert.equal(st.get(ip), 'failed', ip);
      const a = await alerts(bus);
      assert.equal(a.length, 1, 'one alert for the burst');
      assert.equal(a[0]!.rule_id, 'cordon:enforce-never-block');
      assert.equal(a[0]!.src_ip, null, 'an alert about a refused block carries no address a responder could block');
      await p.close();
    } finally {
      await s.stop();
    }
  });
});

test(
  "rate: 20,000 forged blocks arriving at once put at most a minute's allowance in force, and an alert says so",
  { timeout: 120_000 },
  async () => {
    await withBus(async (bus) => {
      const sets = new FakeSets();
      const s = await runStage(enforcerStage(sets), { bus, ctx: createContext({ log: silentLogger }) });
      try {
        const p = bus.producer();
        const now = Date.now();
        const forged = Array.from({ length: 20_000 }, (_, i) =>
          put(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, now),
        );
        for (let i = 0; i < forged.length; i += 1000) await p.send(TOPICS.blocks, forged.slice(i, i + 1000));
        await waitFor('every decision handled', async () => (await statuses(bus)).size === 20_000, 120_000, 500);
        // the default: a bucket of 600, refilled at 600 a minute while the flood was handled
        const allowance = 600 + Math.ceil(((Date.now() - now) / 60_000) * 600);
        assert.ok(sets.inForce.size <= allowance, `${sets.inForce.size} blocks in force; ${allowance} were allowed`);
        assert.ok(sets.inForce.size >= 590, `${sets.inForce.size} in force: the allowance itself is applied`);
        const a = await alerts(bus);
        assert.deepEqual(
          a.map((x) => x.rule_id),
          ['cordon:enforce-rate'],
        );
        assert.ok(JSON.parse(a[0]!.evidence).code === 'CORDON_ERR_BLOCK_RATE');
        await p.close();
      } finally {
        await s.stop();
      }
    });
  },
);

test(
  'cap: 20,000 forged decisions waiting on the topic at start restore at most the cap, and an alert says so',
  { timeout: 120_000 },
  async () => {
    await withBus(async (bus) => {
      const p = bus.producer();
      const now = Date.now();
      const forged = Array.from({ length: 20_000 }, (_, i) =>
        put(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, now),
      );
      for (let i = 0; i < forged.length; i += 1000) await p.send(TOPICS.blocks, forged.slice(i, i + 1000));
      const sets = new FakeSets();
      const s = await runStage(enforcerStage(sets), { bus, ctx: createContext({ log: silentLogger }) });
      try {
        assert.equal(sets.inForce.size, 10_000, 'the default cap');
        await waitFor('the cap alert', async () => (await alerts(bus)).some((x) => x.rule_id === 'cordon:enforce-cap'));
        await p.close();
      } finally {
        await s.stop();
      }
    });
  },
);

test('guards: configured ranges are never blocked, renewals pass a full cap, the allowance refills with time', async () => {
  const clock = new ManualClock(Date.now());
  await withBus(async (bus) => {
    const sets = new FakeSets();
    const ctx = createContext({ log: silentLogger, clock });
    const s = await runStage(
      enforcerStage(sets, {
        guards: { neverBlock: ['198.51.100.0/24', '2001:db8::7'], maxBlocks: 3, maxNewPerMinute: 2 },
        localAddresses: async () => ({
          addresses: ['192.0.2.10'],
          broadcasts: ['192.0.2.255'],
          gateways: ['192.0.2.1'],
        }),
      }),
      { bus, ctx },
    );
    const p = bus.producer();
    const handled = (n: number) => waitFor(`${n} decisions handled`, async () => (await statuses(bus)).size >= n);
    try {
      await p.send(TOPICS.blocks, [
        put('198.51.100.77', clock.now()),
        put('2001:db8::7', clock.now()),
        put('192.0.2.10', clock.now()),
        put('192.0.2.1', clock.now()),
      ]);
      await handled(4);
      assert.equal(sets.inForce.size, 0);
      await p.send(TOPICS.blocks, [
        put('203.0.113.1', clock.now()),
        put('203.0.113.2', clock.now()),
        put('203.0.113.3', clock.now()),
      ]);
      await handled(7);
      assert.deepEqual([...sets.inForce.keys()].sort(), ['203.0.113.1', '203.0.113.2'], 'two a minute');
      clock.set(clock.now() + 30_000); // half a minute: one more, and then the cap of three
      await p.send(TOPICS.blocks, [put('203.0.113.4', clock.now()), put('203.0.113.5', clock.now())]);
      await handled(9);
      assert.deepEqual([...sets.inForce.keys()].sort(), ['203.0.113.1', '203.0.113.2', '203.0.113.4']);
      clock.set(clock.now() + 120_000);
      const renewed = sets.applies;
      await p.send(TOPICS.blocks, [put('203.0.113.1', clock.now(), 900_000), put('203.0.113.6', clock.now())]);
      await waitFor('the renewal', () => sets.applies > renewed);
      await waitFor('the refusal past the cap', async () => (await statuses(bus)).get('203.0.113.6') === 'failed');
      assert.equal(sets.inForce.get('203.0.113.1'), 900_000, 'a renewal adds no element: the cap does not stop it');
      // .5 met the cap at +30 s, .6 again two minutes later: a new minute, a new alert
      assert.deepEqual((await alerts(bus)).map((x) => x.rule_id).sort(), [
        'cordon:enforce-cap',
        'cordon:enforce-cap',
        'cordon:enforce-never-block',
        'cordon:enforce-rate',
      ]);
    } finally {
      await p.close();
      await s.stop();
    }
  }, clock);
});

test('a TTL past the longest a policy allows is cut to it', async () => {
  await withBus(async (bus) => {
    const sets = new FakeSets();
    const s = await runStage(enforcerStage(sets), { bus, ctx: createContext({ log: silentLogger }) });
    try {
      const p = bus.producer();
      await p.send(TOPICS.blocks, [put('203.0.113.50', Date.now(), 10 * 365 * 86_400_000)]);
      await waitFor('applied', () => sets.inForce.has('203.0.113.50'));
      assert.ok(sets.inForce.get('203.0.113.50')! <= 365 * 86_400_000);
      await p.close();
    } finally {
      await s.stop();
    }
  });
});

test('the never-block list: built-in ranges, IPv4-mapped addresses, configured ranges, local addresses', () => {
  const nb = new NeverBlock(['10.9.0.0/16']);
  nb.setLocal({
    addresses: ['192.0.2.10', '2001:db8::10'],
    broadcasts: ['192.0.2.255'],
    gateways: ['192.0.2.1', 'fe80::1'],
  });
  for (const ip of [
    '0.0.0.0',
    '0.1.2.3',
    '127.0.0.1',
    '255.255.255.255',
    '239.1.2.3',
    '169.254.0.1',
    '::',
    '::1',
    'fe80::abcd',
    'ff05::2',
    '::ffff:127.0.0.1',
    '10.9.3.4',
    '192.0.2.10',
    '2001:db8::10',
    '192.0.2.255',
    '192.0.2.1',
  ]) {
    assert.notEqual(nb.why(ip), null, ip);
  }
  for (const ip of ['203.0.113.9', '192.0.2.11', '10.8.0.1', '2001:db8::11', '8.8.8.8'])
    assert.equal(nb.why(ip), null, ip);
});
