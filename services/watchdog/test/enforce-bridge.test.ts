import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger, type Context } from '@cordon/runtime';
import { createEmbeddedBus, createKafkaBus, readTable, type Bus } from '@cordon/bus';
import { allTopicSpecs, blockKey, codecFor, TOPICS, watchdogEnforcer, type BlockDecision } from '@cordon/schemas';
import { canUseNetns, freshCordonTopics, kafkaBrokers, makeLab, ipBlockDecision, waitFor } from '@cordon/testkit';
import { runStage } from '@cordon/stage';
import { effectiveStatus, statusReport } from '@cordon/policy';
import { BridgeEnforcer, parseWatchdogConfig, watchdogStage } from '../src/index.js';

const skip = canUseNetns();
const ctx = () => createContext({ log: silentLogger });
const HOST = 'hv1';
const me = watchdogEnforcer(HOST);
const codec = codecFor(TOPICS.blocks);

const decision = (ip: string, ttlMs: number, action: 'drop' | 'reject' = 'drop'): BlockDecision =>
  ipBlockDecision({ enforcer: me, ip, ttlMs, action, scope: 'web' });

test('hostile names and targets never reach nft', () => {
  const c = ctx();
  for (const ip of [
    '1.2.3.4; flush ruleset',
    'fe80::1%eth0',
    '',
    '1.2.3.4 } ; add table x {',
    '10.0.0.256',
    '::ffff:1.2.3.4 }',
  ]) {
    assert.throws(
      () => BridgeEnforcer.targetOf(decision(ip, 1000)),
      (e: { code?: string }) => e.code === 'CORDON_ERR_WATCHDOG_BLOCK_TARGET',
    );
  }
  assert.throws(
    () =>
      BridgeEnforcer.targetOf({
        ...decision('10.0.0.1', 1000),
        target: { ...decision('10.0.0.1', 1000).target, kind: 'vm_quarantine', ip: null },
      }),
    /carries no source address/,
  );
  assert.throws(
    () => new BridgeEnforcer({ ctx: c, bridge: 'br0', table: 'x; flush ruleset' }),
    /not a plain identifier/,
  );
  assert.throws(() => new BridgeEnforcer({ ctx: c, bridge: 'br0"; flush ruleset; "' }), /not an interface name/);
  assert.throws(
    () => parseWatchdogConfig({ host: 'hv1', bridge: 'br0', enforce: { netns: 'a b' } }),
    (e: { code?: string }) => e.code === 'CORDON_ERR_WATCHDOG_CONFIG',
  );
  assert.throws(() => parseWatchdogConfig({ host: 'hv1', bridge: 'br0', bridg: 'x' }), /unknown key "bridg"/);
});

/** A decision's status as its readers see it: the watchdog's report on it (block-status topic), else `requested`. */
async function statusOf(bus: Bus, ip: string): Promise<string> {
  const k = blockKey(me, ip).toString('base64');
  const rec = (await readTable(bus, TOPICS.blocks)).get(k);
  if (!rec?.value) return 'lifted';
  const report = (await readTable(bus, TOPICS.blockStatus)).get(k);
  return effectiveStatus(codec.decode(rec.value), statusReport(report?.key ?? null, report?.value ?? null)).status;
}

test(
  'embedded bus: the watchdog blocks an attacker on the host bridge, lifts, expires, and restores after a restart',
  { skip: skip ?? false, timeout: 120_000 },
  async () => {
    const dir = mkdtempSync(join(tmpdir(), 'cordon-watchdog-'));
    const c = ctx();
    try {
      await scenario(createEmbeddedBus({ dataDir: join(dir, 'bus'), ctx: c }), c);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);

test('Kafka: the same, on a real broker', { skip: skip ?? false, timeout: 180_000 }, async () => {
  const brokers = kafkaBrokers();
  await freshCordonTopics(brokers);
  const c = ctx();
  await scenario(createKafkaBus({ brokers, ctx: c }), c);
});

async function scenario(bus: Bus, c: Context): Promise<void> {
  const lab = makeLab({ tag: `w${process.pid % 100000}` });
  const producer = bus.producer();
  const server = await lab.listen('web', 8080);
  const config = { host: HOST, bridge: lab.bridge, enforce: { netns: lab.host, table: 'cordon_wd_test' } };
  const attacker = lab.vms.attacker!.ip;
  const request = (d: BlockDecision) =>
    producer.send(TOPICS.blocks, [{ key: blockKey(me, d.target.ip!), value: codec.encode(d) }]);
  const lift = (ip: string) => producer.send(TOPICS.blocks, [{ key: blockKey(me, ip), value: null }]);
  const reach = (from: string, ms = 1500) => lab.canConnect(from, 'web', 8080, ms);
  try {
    await bus.admin.ensureTopics(allTopicSpecs());
    assert.equal(await reach('attacker'), true, 'reachable before any block');
    let wd = await runStage(watchdogStage, { bus, ctx: c, config });

    // block → the attacker is cut off, the bystander is not
    await request(decision(attacker, 60_000));
    await waitFor('applied', async () => (await statusOf(bus, attacker)) === 'applied');
    assert.deepEqual(await wd.enforcer!.list(), [{ set: 'drop4', ip: attacker }]);
    assert.equal(await reach('attacker', 800), false, 'the attacker is dropped on the bridge');
    assert.equal(await reach('bystander'), true, 'the bystander still reaches the victim');

    // lift (tombstone) → reachable
    await lift(attacker);
    await waitFor('lifted', async () => !wd.active.has(attacker) && (await wd.enforcer!.list()).length === 0);
    assert.equal(await reach('attacker'), true, 'reachable after the lift');

    // TTL expiry by the kernel, with reject
    // (4 s: room for a loaded machine between the apply and the check that it holds)
    const ttlMs = 4000;
    const requested = Date.now();
    await request(decision(attacker, ttlMs, 'reject'));
    await waitFor('applied', async () => (await wd.enforcer!.list()).length === 1);
    assert.equal(await reach('attacker', 800), false, 'rejected while blocked');
    await new Promise((r) => setTimeout(r, Math.max(0, requested + ttlMs + 300 - Date.now())));
    assert.deepEqual(await wd.enforcer!.list(), [], 'the kernel expired the element');
    assert.equal(await reach('attacker'), true, 'reachable after the TTL');

    // a hostile decision is reported failed and breaks nothing
    await producer.send(TOPICS.blocks, [
      { key: blockKey(me, '1.2.3.4; flush ruleset'), value: codec.encode(decision('1.2.3.4; flush ruleset', 60_000)) },
    ]);
    await waitFor('failed', async () => (await statusOf(bus, '1.2.3.4; flush ruleset')) === 'failed');

    // restart after a host reboot (table gone): active blocks come back from the topic;
    // a block lifted while the watchdog was down does not
    await request(decision(attacker, 60_000));
    await request(decision('10.213.7.99', 60_000));
    await waitFor('both applied', async () => (await wd.enforcer!.list()).length === 2);
    await wd.stop();
    await lift('10.213.7.99');
    await wd.enforcer!.teardown();
    assert.equal(await reach('attacker'), true, 'no table, no block');
    const t0 = Date.now();
    wd = await runStage(watchdogStage, { bus, ctx: c, config });
    const restoreMs = Date.now() - t0;
    assert.deepEqual(await wd.enforcer!.list(), [{ set: 'drop4', ip: attacker }], 'restored from the topic');
    assert.equal(await reach('attacker', 800), false, 'blocked again after the restart');
    assert.ok(restoreMs < 5000, `restore took ${restoreMs} ms`);

    // restart with the table kept, a block lifted while down: reconciled away
    await wd.stop();
    await lift(attacker);
    wd = await runStage(watchdogStage, { bus, ctx: c, config });
    assert.deepEqual(await wd.enforcer!.list(), [], 'an element lifted while the watchdog was down is removed');
    assert.equal(await reach('attacker'), true);
    assert.ok(c.metrics.get('watchdog.enforce.reconciled') >= 1);
    assert.equal(
      (await readTable(bus, TOPICS.blockStatus)).has(blockKey(me, attacker).toString('base64')),
      false,
      'its report is taken back from the status topic',
    );
    await wd.stop();
  } finally {
    server.kill();
    await producer.close();
    await bus.close();
    lab.destroy();
  }
}
