import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createEmbeddedBus, readAll } from '@cordon/bus';
import { createContext, silentLogger } from '@cordon/runtime';
import { allTopicSpecs, blockKey, codecFor, TOPICS, type BlockDecision } from '@cordon/schemas';
import { nftDuration } from '@cordon/native';
import { MAX_BLOCK_TTL_S } from '@cordon/policy';
import { runStage } from '@cordon/stage';
import { agentStage, makeEnrollToken, NftEnforcer } from '../src/index.js';
import { canUseNetns, ipBlockDecision, makePair, waitFor } from '@cordon/testkit';

const skip = canUseNetns();
const decision = (ip: string, ttlMs: number, now: number, action: 'drop' | 'reject' = 'drop'): BlockDecision =>
  ipBlockDecision({ enforcer: 'agent:agt-test', ip, ttlMs, now, action, scope: 'vm-test' });

test('hostile targets never reach nft', () => {
  for (const ip of ['1.2.3.4; flush ruleset', 'fe80::1%eth0', '', '1.2.3.4 } ; add table x {', '10.0.0.256']) {
    assert.throws(
      () => NftEnforcer.targetOf(decision(ip, 1000, 0)),
      (e: { code?: string }) => e.code === 'CORDON_ERR_AGENT_BLOCK_TARGET',
    );
  }
  assert.throws(
    () => new NftEnforcer({ ctx: createContext({ log: silentLogger }), table: 'x; flush ruleset' }),
    /not a plain identifier/,
  );
});

test(
  'a block drops the attacker in the guest namespace, lifts, and expires by itself',
  { skip: skip ?? false, timeout: 60_000 },
  async () => {
    const pair = makePair(`e${process.pid % 10000}`);
    const server = pair.listen(8080);
    const nft = new NftEnforcer({ ctx: createContext({ log: silentLogger }), netns: pair.vm });
    try {
      await nft.setup();
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(await pair.canConnect(8080), true, 'reachable before the block');

      const now = Date.now();
      await nft.apply(decision(pair.attackerIp, 60_000, now), now);
      assert.deepEqual(await nft.list(), [{ set: 'drop4', ip: pair.attackerIp }]);
      assert.equal(await pair.canConnect(8080, 800), false, 'dropped while blocked');

      await nft.lift(pair.attackerIp);
      assert.deepEqual(await nft.list(), []);
      assert.equal(await pair.canConnect(8080), true, 'reachable after the lift');

      await nft.apply(decision(pair.attackerIp, 2000, Date.now(), 'reject'), Date.now());
      assert.equal(await pair.canConnect(8080, 800), false, 'rejected while blocked');
      await new Promise((r) => setTimeout(r, 2500));
      assert.deepEqual(await nft.list(), [], 'the kernel expired the element');
      assert.equal(await pair.canConnect(8080), true, 'reachable after the TTL');

      // setup again (an agent restart) keeps what is in the sets
      await nft.apply(decision(pair.attackerIp, 60_000, Date.now()), Date.now());
      await nft.setup();
      assert.deepEqual(await nft.list(), [{ set: 'drop4', ip: pair.attackerIp }]);
    } finally {
      nft.close();
      server.kill();
      pair.destroy();
    }
  },
);

test(
  "a 7-day TTL, a repeat offender's 153,600 s and the longest a policy allows are applied with those timeouts",
  { skip: skip ?? false, timeout: 60_000 },
  async () => {
    // nft refused "100000000ms" and more (27.7 h): these blocks were never put in force
    const pair = makePair(`t${process.pid % 10000}`);
    const nft = new NftEnforcer({ ctx: createContext({ log: silentLogger }), netns: pair.vm });
    try {
      await nft.setup();
      const now = Date.now();
      const ttls = { '10.213.1.1': 604_800_000, '10.213.1.2': 153_600_000, '10.213.1.3': MAX_BLOCK_TTL_S * 1000 };
      for (const [ip, ttlMs] of Object.entries(ttls)) await nft.apply(decision(ip, ttlMs, now), now);
      const listed = JSON.parse(pair.exec(pair.vm, ['nft', '-j', 'list', 'set', 'inet', nft.table, 'drop4'])) as {
        nftables: Array<{ set?: { elem?: Array<{ elem: { val: string; timeout: number } }> } }>;
      };
      const timeouts = Object.fromEntries(
        listed.nftables.flatMap((x) => x.set?.elem ?? []).map((e) => [e.elem.val, e.elem.timeout]),
      );
      // nft prints whole seconds; a TTL applied a few ms after `now` loses at most one
      for (const [ip, ttlMs] of Object.entries(ttls))
        assert.ok(
          Math.abs(timeouts[ip]! - ttlMs / 1000) <= 1,
          `${ip}: timeout ${timeouts[ip]} s, wanted ${ttlMs / 1000} s`,
        );
    } finally {
      nft.close();
      pair.destroy();
    }
  },
);

test("nft durations are written in nft's units", () => {
  assert.equal(nftDuration(604_800_000), '7d');
  assert.equal(nftDuration(153_600_000), '1d18h40m');
  assert.equal(nftDuration(100_000_000), '1d3h46m40s');
  assert.equal(nftDuration(1), '1ms');
  assert.equal(nftDuration(90_061_001), '1d1h1m1s1ms');
  assert.throws(() => nftDuration(0), /CORDON_ERR_NATIVE_NFT|at least 1/);
});

test(
  "never-block in the guest: forged blocks of its own address, its gateway and its subnet's broadcast are refused; the attacker is blocked",
  { skip: skip ?? false, timeout: 60_000 },
  async () => {
    const pair = makePair(`n${process.pid % 10000}`);
    pair.exec(pair.vm, ['ip', 'route', 'add', 'default', 'via', '10.213.0.1']);
    const dir = mkdtempSync(join(tmpdir(), 'cordon-agent-nb-'));
    const ctx = createContext({ log: silentLogger });
    const bus = createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx });
    const blocks = codecFor(TOPICS.blocks);
    try {
      await bus.admin.ensureTopics(allTopicSpecs());
      const token = makeEnrollToken(randomBytes(32), 'vm-nb', 3_600_000, Date.now());
      const a = await runStage(agentStage, {
        bus,
        ctx,
        config: {
          token,
          stateDir: join(dir, 'state'),
          netconf: { enabled: false },
          heartbeatS: 60,
          enforce: { netns: pair.vm, table: 'cordon_nb' },
        },
      });
      try {
        const me = `agent:${a.agentId}`;
        const p = bus.producer();
        const targets = [pair.vmIp, '10.213.0.1', '10.213.0.255', pair.attackerIp];
        await p.send(
          TOPICS.blocks,
          targets.map((ip) => ({
            key: blockKey(me, ip),
            value: blocks.encode(ipBlockDecision({ enforcer: me, ip, ttlMs: 600_000 })),
          })),
        );
        // the agent's reports, on their own topic (it may not write decisions)
        const status = async () =>
          new Map(
            (await readAll(bus, TOPICS.blockStatus))
              .filter((r) => r.value)
              .map((r) => codecFor(TOPICS.blockStatus).decode(r.value!))
              .map((d) => [d.target, d.status]),
          );
        await waitFor('all four decided', async () => (await status()).size === 4);
        const st = await status();
        assert.deepEqual(Object.fromEntries(st), {
          [pair.vmIp]: 'failed',
          '10.213.0.1': 'failed',
          '10.213.0.255': 'failed',
          [pair.attackerIp]: 'applied',
        });
        assert.deepEqual(await a.enforcer!.list(), [{ set: 'drop4', ip: pair.attackerIp }]);
        await p.close();
      } finally {
        await a.enforcer?.teardown();
        await a.stop();
      }
    } finally {
      await bus.close();
      pair.destroy();
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
