import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, type Bus, type ConsumedRecord } from '@cordon/bus';
import { allTopicSpecs, codecFor, complete, TOPICS, type FlowRecord } from '@cordon/schemas';
import { createStore, type Store } from '@cordon/store';
import { createRecordSigner, runStage } from '@cordon/stage';
import { ipBlockDecision, producerRegistration } from '@cordon/testkit';
import { rowOf, sinkStage } from '../src/index.js';

/** An enforcer's report on its decision `enforcer|target`: applied, or failed with `error`. */
const statusReport = (enforcer: string, target: string, blockId: string, error: string | null = null) => ({
  key: Buffer.from(`${enforcer}|${target}`),
  value: codecFor(TOPICS.blockStatus).encode({
    block_id: blockId,
    enforcer,
    target,
    status: error ? 'failed' : 'applied',
    ts_us: 1_700_000_000_000_000,
    expires_us: 1_700_000_600_000_000,
    error,
  }),
});

/** An embedded bus with every topic and a chdb store in a temp dir; `done` closes both and removes it. */
async function sinkWorld() {
  const dir = mkdtempSync(join(tmpdir(), 'cordon-sink-'));
  const ctx = createContext({ log: silentLogger });
  const bus = createEmbeddedBus({ dataDir: dir, ctx });
  await bus.admin.ensureTopics(allTopicSpecs());
  const store = await createStore({ dataDir: join(dir, 'ch'), ctx });
  const done = async () => {
    await bus.close();
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  };
  return { ctx, bus, store, done };
}

const startSink = (o: { bus: Bus; store: Store; ctx: ReturnType<typeof createContext>; groupId?: string }) =>
  runStage(sinkStage, {
    bus: o.bus,
    ctx: o.ctx,
    config: o.groupId ? { groupId: o.groupId } : {},
    env: { store: async () => o.store },
  });

const flow = (i: number): FlowRecord =>
  complete(TOPICS.flows, {
    flow_id: `f${i}`,
    sensor: 's',
    vm: i % 2 ? 'vm-a' : null,
    vlan: 0,
    proto: 6,
    src_ip: '10.0.0.1',
    src_port: 40000 + i,
    dst_ip: i % 3 ? '10.0.0.2' : '2001:db8::2',
    dst_port: 80,
    first_seen_us: 1_700_000_000_000_000 + i,
    last_seen_us: 1_700_000_000_500_000 + i,
    pkts_toserver: 3,
    pkts_toclient: 2,
    bytes_toserver: 300,
    bytes_toclient: 2000,
    tcp_flags_toserver: 0x1b,
    tcp_flags_toclient: 0x1b,
    end_reason: 'fin',
  });

test('a record becomes a row of its table; one that does not decode throws, except a dead letter, which lands raw', () => {
  const codec = codecFor(TOPICS.flows);
  const rec = (topic: string, offset: bigint, value: Buffer): ConsumedRecord => ({
    topic,
    partition: 2,
    offset,
    key: Buffer.from('k'),
    value,
    headers: {},
    timestamp: 0,
  });
  const row = rowOf(rec(TOPICS.flows, 10n, codec.encode(flow(1))), codec.encode(flow(1)), 5);
  assert.equal(row.src_ip, '::ffff:10.0.0.1');
  assert.equal(row.vm, 'vm-a');
  assert.throws(
    () => rowOf(rec(TOPICS.flows, 11n, Buffer.from('garbage')), Buffer.from('garbage'), 5),
    /CORDON_ERR_SCHEMA_|wire format/i,
  );
  const raw = rowOf(rec(TOPICS.dlq, 3n, Buffer.from('garbage')), Buffer.from('garbage'), 5);
  assert.equal(raw.stage, 'sink');
  assert.match(String(raw.error_code), /^CORDON_ERR_SCHEMA_/);
  assert.equal(raw.source_topic, TOPICS.dlq);
});

test('the sink lands flows and dead letters in ClickHouse, and a replay counts nothing twice', async () => {
  const { ctx, bus, store, done } = await sinkWorld();
  try {
    const codec = codecFor(TOPICS.flows);
    await bus
      .producer()
      .send(TOPICS.flows, [
        ...Array.from({ length: 50 }, (_, i) => ({ key: Buffer.from(`k${i}`), value: codec.encode(flow(i)) })),
        { key: Buffer.from('bad'), value: Buffer.from([0, 0, 0, 0, 99, 0xff]) },
      ]);
    const sinkRun = async (group: string) => {
      const sink = await startSink({ bus, store, ctx, groupId: group });
      const deadline = Date.now() + 30_000;
      for (;;) {
        const [flows] = await store.query<{ n: string }>('SELECT count() AS n FROM flows');
        const [dlq] = await store.query<{ n: string }>('SELECT count() AS n FROM dlq');
        if ((flows!.n === '50' && dlq!.n === '1') || Date.now() > deadline) break;
        await new Promise((r) => setTimeout(r, 100));
      }
      await sink.stop();
    };
    await sinkRun('sink-1');
    // a second group reads the same records again: the inserts carry the same batch ids
    await sinkRun('sink-2');
    const [flows] = await store.query<{ n: string; bytes: string }>(
      'SELECT count() AS n, sum(bytes_toclient) AS bytes FROM flows',
    );
    assert.deepEqual(flows, { n: '50', bytes: String(50 * 2000) });
    const dl = await store.query<{ stage: string; error_code: string; source_topic: string }>(
      'SELECT stage, error_code, source_topic FROM dlq',
    );
    assert.equal(dl.length, 1);
    assert.equal(dl[0]!.stage, 'sink');
    assert.equal(dl[0]!.source_topic, TOPICS.flows);
    assert.match(dl[0]!.error_code, /CORDON_ERR_SCHEMA_UNKNOWN_ID/);
  } finally {
    await done();
  }
});

test('a row ClickHouse refuses becomes a dead letter; the rest of its batch lands', async () => {
  const { ctx, bus, store, done } = await sinkWorld();
  try {
    const codec = codecFor(TOPICS.flows);
    const bad = { ...flow(7), flow_id: 'backwards', last_seen_us: flow(7).first_seen_us - 1 }; // breaks CHECK seen_in_order
    await bus.producer().send(
      TOPICS.flows,
      [flow(1), bad, flow(2), flow(3)].map((f) => ({ key: Buffer.from('same'), value: codec.encode(f) })),
    );
    const sink = await startSink({ bus, store, ctx });
    const deadline = Date.now() + 30_000;
    let rows: Array<{ flow_id: string }> = [];
    let letters: Array<{ error_code: string; source_offset: string }> = [];
    while (Date.now() < deadline) {
      rows = await store.query('SELECT flow_id FROM flows ORDER BY flow_id');
      letters = await store.query('SELECT error_code, source_offset FROM dlq');
      if (rows.length === 3 && letters.length === 1) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await sink.stop();
    assert.deepEqual(
      rows.map((r) => r.flow_id),
      ['f1', 'f2', 'f3'],
    );
    assert.equal(letters.length, 1);
    assert.equal(letters[0]!.error_code, 'CORDON_ERR_STORE_BAD_ROW');
    assert.equal(String(letters[0]!.source_offset), '1');
  } finally {
    await done();
  }
});

test("alerts, block decisions, their enforcers' reports and file events land in their tables; a tombstone is not a row", async () => {
  const { ctx, bus, store, done } = await sinkWorld();
  try {
    const p = bus.producer();
    await p.send(TOPICS.alerts, [
      {
        key: Buffer.from('vm-a'),
        value: codecFor(TOPICS.alerts).encode({
          alert_id: 'a1',
          ts_us: 1_700_000_000_000_000,
          stage: 'loginspect',
          vm: 'vm-a',
          sensor: null,
          rule_id: 'cordon:ssh-bruteforce',
          rule_rev: 1,
          signature: 'SSH brute force',
          severity: 2,
          category: 'auth',
          action: 'drop',
          src_ip: '10.213.0.66',
          src_port: null,
          dst_ip: null,
          dst_port: null,
          proto: null,
          flow_id: null,
          evidence: '{"lines":5}',
        }),
      },
    ]);
    const block = {
      block_id: 'b1',
      enforcer: 'agent:agt-1',
      target: {
        kind: 'ip' as const,
        ip: '10.213.0.66',
        proto: null,
        src_ip: null,
        src_port: null,
        dst_ip: null,
        dst_port: null,
        vm: null,
      },
      scope: 'vm-a',
      action: 'drop' as const,
      ttl_ms: 600_000,
      created_us: 1_700_000_000_000_000,
      expires_us: 1_700_000_600_000_000,
      reason_alert: 'a1',
      status: 'requested' as const,
    };
    await p.send(TOPICS.blocks, [
      { key: Buffer.from('agent:agt-1|10.213.0.66'), value: codecFor(TOPICS.blocks).encode(block) },
      { key: Buffer.from('agent:agt-1|10.213.0.66'), value: null },
    ]);
    // the enforcer's report on it, on its own topic, then taken back when the block is lifted
    await p.send(TOPICS.blockStatus, [
      {
        key: Buffer.from('agent:agt-1|10.213.0.66'),
        value: codecFor(TOPICS.blockStatus).encode({
          block_id: 'b1',
          enforcer: 'agent:agt-1',
          target: '10.213.0.66',
          status: 'applied',
          ts_us: 1_700_000_000_500_000,
          expires_us: 1_700_000_600_000_000,
          error: null,
        }),
      },
      { key: Buffer.from('agent:agt-1|10.213.0.66'), value: null },
    ]);
    const attrs = {
      type: 'file',
      size: 5,
      mode: 0o100644,
      uid: 0,
      gid: 0,
      owner: 'root',
      group: 'root',
      inode: 12,
      mtime_us: 1,
      ctime_us: 1,
      sha256: 'ab',
      link_target: null,
    };
    await p.send(TOPICS.fim, [
      {
        key: Buffer.from('vm-a|/etc/passwd'),
        value: codecFor(TOPICS.fim).encode({
          event_id: 'e1',
          agent: 'agt-1',
          vm: 'vm-a',
          ts_us: 1_700_000_000_000_000,
          path: '/etc/passwd',
          op: 'changed',
          scan: 'realtime',
          before: attrs,
          after: { ...attrs, size: 6, sha256: 'cd' },
          renamed_from: null,
          error: null,
        }),
      },
    ]);
    const sink = await startSink({ bus, store, ctx });
    const deadline = Date.now() + 30_000;
    let counts = '';
    while (Date.now() < deadline) {
      const [r] = await store.query<{ a: string; b: string; s: string; f: string }>(
        'SELECT (SELECT count() FROM alerts) AS a, (SELECT count() FROM blocks) AS b, (SELECT count() FROM block_status) AS s, (SELECT count() FROM fim_events) AS f',
      );
      counts = `${r!.a}/${r!.b}/${r!.s}/${r!.f}`;
      if (counts === '1/1/1/1') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    await sink.stop();
    assert.equal(counts, '1/1/1/1');
    const [a] = await store.query<{ src_addr: string; rule_id: string }>('SELECT src_addr, rule_id FROM alerts');
    assert.deepEqual(a, { src_addr: '10.213.0.66', rule_id: 'cordon:ssh-bruteforce' });
    // a block's history: its decision (blocks) and its enforcer's reports (block_status), by block id
    const history = await store.query<{ status: string }>(
      `SELECT status FROM (SELECT ts, status FROM blocks WHERE block_id = 'b1'
                          UNION ALL SELECT ts, status FROM block_status WHERE block_id = 'b1') ORDER BY ts`,
    );
    assert.deepEqual(
      history.map((s) => s.status),
      ['requested', 'applied'],
    );
    const [f] = await store.query<{ after: string }>('SELECT after FROM fim_events');
    assert.equal(JSON.parse(f!.after).sha256, 'cd');
  } finally {
    await done();
  }
});

test("an agent's signed block status lands; one it signed for another enforcer's key is a dead letter (CORDON_ERR_RECORD_MISBOUND), never a row", async () => {
  const { ctx, bus, store, done } = await sinkWorld();
  try {
    const agent = createRecordSigner('agt-1', generateKeyPairSync('ed25519').privateKey);
    const p = bus.producer();
    await p.send(TOPICS.producers, [producerRegistration(agent, { vm: 'vm-a' })]);
    const report = (enforcer: string, target: string, blockId: string) =>
      statusReport(enforcer, target, blockId, 'CORDON_ERR_BLOCK_NEVER_BLOCK');
    await p.send(
      TOPICS.blockStatus,
      agent.signAll(TOPICS.blockStatus, [
        report('agent:agt-1', '203.0.113.5', 'own'),
        // the compromised agent speaks for the watchdog's decision
        report('watchdog:hv1', '203.0.113.6', 'theirs'),
      ]),
    );
    const sink = await runStage(sinkStage, { bus, ctx, env: { store: async () => store }, verifyRecords: true });
    try {
      let counts = '';
      for (const deadline = Date.now() + 30_000; Date.now() < deadline && counts !== '1/1';) {
        const [r] = await store.query<{ s: string; d: string }>(
          'SELECT (SELECT count() FROM block_status) AS s, (SELECT count() FROM dlq) AS d',
        );
        counts = `${r!.s}/${r!.d}`;
        if (counts !== '1/1') await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(counts, '1/1', 'the own report a row, the other one a dead letter');
    } finally {
      await sink.stop();
    }
    assert.deepEqual(await store.query('SELECT block_id, enforcer, error FROM block_status'), [
      { block_id: 'own', enforcer: 'agent:agt-1', error: 'CORDON_ERR_BLOCK_NEVER_BLOCK' },
    ]);
    const [dl] = await store.query<{ error_code: string }>('SELECT error_code FROM dlq');
    assert.equal(dl!.error_code, 'CORDON_ERR_RECORD_MISBOUND');
    await p.close();
  } finally {
    await done();
  }
});

test('alerts sent again as new records (a replay under another sensor) are not counted twice; the hourly roll-up agrees; retention comes from the configuration', async () => {
  const { ctx, bus, store, done } = await sinkWorld();
  try {
    const codec = codecFor(TOPICS.alerts);
    const alert = (i: number, sensor: string) =>
      codec.encode({
        alert_id: `a${i}`,
        ts_us: 1_700_000_000_000_000 + i * 1_000_000,
        stage: 'dpi',
        vm: null,
        sensor,
        rule_id: `sid:${1 + (i % 3)}`,
        rule_rev: 1,
        signature: `rule ${i % 3}`,
        severity: 2,
        category: null,
        action: 'alert',
        src_ip: '203.0.113.66',
        src_port: 4000 + i,
        dst_ip: '10.0.0.10',
        dst_port: 80,
        proto: 'TCP',
        flow_id: String(i),
        evidence: '{}',
        community_id: `1:c${i}`,
        mitre_tactic_ids: ['TA0001'],
        cves: ['CVE-2021-44228'],
      });
    const send = (sensor: string) =>
      bus.producer().send(
        TOPICS.alerts,
        Array.from({ length: 30 }, (_, i) => ({ key: Buffer.from(sensor), value: alert(i, sensor) })),
      );
    const sink = await runStage(sinkStage, {
      bus,
      ctx,
      config: { retentionDays: { alerts: 30, talkers_hourly: 90 } },
      env: { store: async () => store },
    });
    const count = async () => Number((await store.query<{ n: string }>('SELECT count() AS n FROM alerts'))[0]!.n);
    await send('replay:a.pcap');
    for (const deadline = Date.now() + 30_000; (await count()) < 30 && Date.now() < deadline;)
      await new Promise((r) => setTimeout(r, 100));
    await send('second-look');
    // the second copy is read and skipped: wait for the sink to have consumed it
    for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
      const done = await bus.admin.committedOffsets('cordon-sink', TOPICS.alerts);
      if ([...done.values()].reduce((a, b) => a + Number(b), 0) >= 60) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    await sink.stop();
    assert.equal(await count(), 30, 'count() without FINAL: each alert once');
    const [r] = await store.query<{ n: string }>('SELECT sum(alerts) AS n FROM alerts_hourly');
    assert.equal(r!.n, '30', 'the hourly roll-up counted each alert once');
    const [c] = await store.query<{ n: string }>(
      "SELECT count() AS n FROM alerts WHERE has(cves, 'CVE-2021-44228') AND has(mitre_tactic_ids, 'TA0001')",
    );
    assert.equal(c!.n, '30');
    const ttl = await store.query<{ name: string; engine_full: string }>(
      "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase() AND name IN ('alerts', 'talkers_hourly', 'flows') ORDER BY name",
    );
    assert.match(ttl[0]!.engine_full, /TTL toDateTime\(ingested_at\) \+ toIntervalDay\(30\)/);
    assert.match(ttl[1]!.engine_full, /toIntervalDay\(180\)/, "flows keep their migration's retention");
    assert.match(ttl[2]!.engine_full, /TTL ingested \+ toIntervalDay\(90\)/);
  } finally {
    await done();
  }
});

test("a watchdog's block status is bound to its host: signed for another host's key, or unsigned in the name of an enrolled watchdog, it is a dead letter; an unenrolled watchdog's unsigned report still lands", async () => {
  const { ctx, bus, store, done } = await sinkWorld();
  try {
    const hv1 = createRecordSigner('watchdog:hv1', generateKeyPairSync('ed25519').privateKey);
    const p = bus.producer();
    // what the coordinator publishes for a watchdog enrolled with a host token for hv1
    await p.send(TOPICS.producers, [producerRegistration(hv1, { host: 'hv1' }, 'host-token:test')]);
    const report = statusReport;
    await p.send(
      TOPICS.blockStatus,
      hv1.signAll(TOPICS.blockStatus, [
        report('watchdog:hv1', '203.0.113.5', 'own'),
        // hv1's key speaks for hv2's decision
        report('watchdog:hv2', '203.0.113.6', 'other-host'),
      ]),
    );
    await p.send(TOPICS.blockStatus, [
      // unsigned, in the name of the enrolled hv1
      report('watchdog:hv1', '203.0.113.7', 'unsigned-enrolled'),
      // unsigned, from a watchdog with no key (not enrolled yet): passes, as before
      report('watchdog:hv3', '203.0.113.8', 'unsigned-unenrolled'),
    ]);
    const sink = await runStage(sinkStage, { bus, ctx, env: { store: async () => store }, verifyRecords: true });
    try {
      let counts = '';
      for (const deadline = Date.now() + 30_000; Date.now() < deadline && counts !== '2/2';) {
        const [r] = await store.query<{ s: string; d: string }>(
          'SELECT (SELECT count() FROM block_status) AS s, (SELECT count() FROM dlq) AS d',
        );
        counts = `${r!.s}/${r!.d}`;
        if (counts !== '2/2') await new Promise((res) => setTimeout(res, 100));
      }
      assert.equal(counts, '2/2');
    } finally {
      await sink.stop();
    }
    assert.deepEqual(await store.query('SELECT block_id FROM block_status ORDER BY block_id'), [
      { block_id: 'own' },
      { block_id: 'unsigned-unenrolled' },
    ]);
    assert.deepEqual(await store.query('SELECT error_code FROM dlq ORDER BY error_code'), [
      { error_code: 'CORDON_ERR_RECORD_MISBOUND' },
      { error_code: 'CORDON_ERR_RECORD_UNSIGNED' },
    ]);
    await p.close();
  } finally {
    await done();
  }
});

test('block decisions delivered again in batches cut elsewhere (a sink restarted mid-batch) land once; a decision re-addressed to another enforcer is its own row', async () => {
  const { ctx, bus, store, done } = await sinkWorld();
  try {
    const decision = (i: number, enforcer = 'agent:agt-1') => ({
      key: Buffer.from(`${enforcer}|198.18.0.${i}`),
      value: codecFor(TOPICS.blocks).encode({
        ...ipBlockDecision({
          enforcer,
          ip: `198.18.0.${i}`,
          ttlMs: 600_000,
          now: 1_700_000_000_000 + i,
          scope: 'vm-a',
        }),
        block_id: `b${i}`,
      }),
    });
    // b0 again, re-addressed when the VM's protector changed: the same decision, another enforcer
    await bus
      .producer()
      .send(TOPICS.blocks, [...Array.from({ length: 10 }, (_, i) => decision(i)), decision(0, 'watchdog:h2')]);
    const rows = async () =>
      (
        await store.query<{ n: string; ids: string }>(
          'SELECT count() AS n, uniqExact(block_id, enforcer) AS ids FROM blocks',
        )
      )[0]!;
    const landAll = async (groupId: string, maxBatchRecords: number) => {
      const sink = await runStage(sinkStage, {
        bus,
        ctx,
        config: { groupId, topics: [TOPICS.blocks], maxBatchRecords },
        env: { store: async () => store },
      });
      for (const deadline = Date.now() + 30_000; Date.now() < deadline;) {
        const done = await bus.admin.committedOffsets(groupId, TOPICS.blocks);
        if ([...done.values()].reduce((a, b) => a + Number(b), 0) >= 11) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      await sink.stop();
    };
    await landAll('first', 4); // batches 0-3, 4-7, 8-10
    assert.deepEqual(await rows(), { n: '11', ids: '11' });
    // Nothing committed for this group: every record comes again, in batches 0-2, 3-5, …, whose
    // offset-derived insert tokens the first inserts never carried.
    await landAll('again', 3);
    assert.deepEqual(await rows(), { n: '11', ids: '11' }, 'each decision once, the re-addressed one included');
  } finally {
    await done();
  }
});
