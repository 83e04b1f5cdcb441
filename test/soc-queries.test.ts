/**
 * What SOC analysts, SIEMs and Kafka tooling get from a Cordon that ran its demo
 * (`cordon up --exit` on a fresh data dir):
 *
 * - every query of docs/queries.md and every panel of the Grafana dashboard runs on the demo's
 *   data, and alerts join their flows and blocks in one SQL statement;
 * - every flow and every dpi alert carries a Community ID that the spec's algorithm gives;
 * - a standard Confluent-wire-format Avro client that knows only a registry URL (served by
 *   `cordon schemas serve`) decodes every record of every topic, and the OCSF events of
 *   `cordon.siem.v1` validate;
 * - `cordon export` writes EVE and OCSF lines;
 * - `cordon up --exit --pcap FILE` twice on one data dir leaves `SELECT count() FROM alerts`
 *   unchanged, without FINAL.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { promisify } from 'node:util';
import { AvroDeserializer, SchemaRegistryClient, SerdeType } from '@confluentinc/schemaregistry';
import { createContext, silentLogger } from '@cordon/runtime';
import { createEmbeddedBus, readRange } from '@cordon/bus';
import { codecFor, communityId, TOPIC_MANIFEST, TOPICS, type TopicName } from '@cordon/schemas';
import { createStore, type Store } from '@cordon/store';
import { validateOcsf } from '@cordon/notify';

const ROOT = join(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'services', 'cli', 'bin', 'cordon.js');
const ENV = {
  ...process.env,
  CORDON_KAFKA_BROKERS: '',
  CORDON_CLICKHOUSE_URL: '',
  CORDON_LOG_LEVEL: 'warn',
  CORDON_METRICS_ADDR: 'off',
};
const cordon = (cwd: string, ...args: string[]) =>
  promisify(execFile)(process.execPath, [CLI, ...args], { cwd, env: ENV, maxBuffer: 64 << 20 });

let dir: string;
let store: Store;
/** `now()` in the queries: an hour after the demo capture's last packet (its clock is days back). */
let nowSql: string;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'cordon-soc-'));
  await cordon(dir, 'up', '--exit');
  store = await createStore({
    dataDir: join(dir, 'data', 'clickhouse'),
    readOnly: true,
    ctx: createContext({ log: silentLogger }),
  });
  const [r] = await store.query<{ t: string }>('SELECT toString(max(last_seen) + INTERVAL 1 HOUR) AS t FROM flows');
  nowSql = `toDateTime64('${r!.t}', 6, 'UTC')`;
});

after(async () => {
  await store?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** The numbered queries of docs/queries.md. */
function docQueries(): Map<number, { title: string; sql: string }> {
  const text = readFileSync(join(ROOT, 'docs', 'queries.md'), 'utf8');
  const out = new Map<number, { title: string; sql: string }>();
  for (const m of text.matchAll(/^### (\d+)\. (.+)\n[\s\S]*?```sql\n([\s\S]*?)```/gm))
    out.set(Number(m[1]), { title: m[2]!, sql: m[3]! });
  return out;
}

test(
  'every query of docs/queries.md runs on the demo data and finds what the demo did',
  { timeout: 300_000 },
  async () => {
    const queries = docQueries();
    assert.ok(queries.size >= 20, `${queries.size} queries`);
    const rows = new Map<number, Array<Record<string, any>>>();
    for (const [n, q] of queries) {
      try {
        rows.set(n, await store.query(q.sql.replaceAll('now()', nowSql)));
      } catch (err) {
        assert.fail(`query ${n} (${q.title}) failed: ${(err as Error).message}`);
      }
    }
    assert.ok(
      rows.get(1)!.some((r) => r.rule_id === 'sid:1900001'),
      'top signatures include the path traversal',
    );
    // 3: alert → flow → blocks in one statement
    const chain = rows.get(3)!;
    const traversal = chain.find((r) => r.rule_id === 'sid:1900001');
    assert.ok(traversal, JSON.stringify(chain));
    assert.match(traversal.flow_id, /^[0-9a-f]{32}$/, 'the alert found its flow');
    assert.equal(traversal.target, '203.0.113.66', 'and the block it caused');
    assert.equal(traversal.enforcer, 'watchdog:hv1');
    assert.ok(
      chain.every((r) => /^[0-9a-f]{32}$/.test(r.flow_id)),
      'every dpi alert joins its flow by Community ID',
    );
    assert.ok(
      rows.get(4)!.some((r) => String(r.what).startsWith('alert')) && rows.get(4)!.some((r) => r.what === 'flow'),
      "one VM's timeline has alerts and flows",
    );
    assert.ok(rows.get(5)!.length > 0, 'top talkers from the roll-up');
    const [all] = await store.query<{ n: string }>('SELECT count() AS n FROM alerts');
    const hourly = rows.get(6)!.reduce((s, r) => s + Number(r.alerts), 0);
    const [recent] = await store.query<{ n: string }>(
      `SELECT count() AS n FROM alerts WHERE ts >= ${nowSql} - INTERVAL 7 DAY`,
    );
    assert.equal(hourly, Number(recent!.n), 'the hourly roll-up counts what the alerts table holds');
    assert.ok(Number(all!.n) > 0);
    assert.ok(
      rows.get(11)!.some((r) => r.src_addr === '203.0.113.66'),
      'the web attacker among the attackers',
    );
    assert.ok(
      rows.get(12)!.some((r) => r.target === '203.0.113.66'),
      'its block in force',
    );
    assert.ok(
      rows.get(14)!.some((r) => String(r.http_url).includes('../../etc/passwd')),
      'the URL of the path traversal',
    );
    assert.ok(
      rows.get(16)!.some((r) => r.kind === 'alert') && rows.get(16)!.some((r) => r.kind === 'flow'),
      'a Community ID pivots from the alert to its flow',
    );
    assert.ok(
      rows.get(18)!.some((r) => r.src_addr === '192.168.66.6' && Number(r.ports) >= 10),
      'the port scan',
    );
    assert.ok(
      rows.get(19)!.some((r) => r.src_addr === '198.51.100.23' && r.vm === 'db-1'),
      'the SSH brute force',
    );
  },
);

test(
  'every panel of the Grafana dashboard runs, its macros expanded as the ClickHouse data source does',
  { timeout: 120_000 },
  async () => {
    const dash = JSON.parse(readFileSync(join(ROOT, 'infra', 'grafana', 'cordon-soc-dashboard.json'), 'utf8'));
    const [range] = await store.query<{ from: string; to: string }>(
      `SELECT toString(toStartOfDay(min(first_seen)) - INTERVAL 1 DAY) AS from, toString(now() + INTERVAL 1 HOUR) AS to FROM flows`,
    );
    const expand = (sql: string, vm: string | null) =>
      sql
        .replace(
          /\$__timeFilter\(([^)]+)\)/g,
          `$1 >= toDateTime('${range!.from}') AND $1 <= toDateTime('${range!.to}')`,
        )
        .replace(/\$__timeInterval\(([^)]+)\)/g, 'toStartOfInterval(toDateTime($1), INTERVAL 3600 second)')
        .replace(
          /\$__conditionalAll\((.*), \$vm\)\)/g,
          (_, cond: string) => `${vm === null ? '1=1' : cond.replace('${vm:singlequote}', `'${vm}'`)})`,
        );
    let nonEmpty = 0;
    for (const vm of [null, 'web-1']) {
      for (const p of dash.panels) {
        for (const t of p.targets) {
          assert.equal(t.datasource.type, 'grafana-clickhouse-datasource');
          const sql = expand(t.rawSql, vm);
          assert.doesNotMatch(sql, /\$__|\$\{?vm/, `every macro expanded in "${p.title}"`);
          let r: unknown[];
          try {
            r = await store.query(sql);
          } catch (err) {
            assert.fail(`panel "${p.title}" (vm ${vm ?? 'All'}) failed: ${(err as Error).message}\n${sql}`);
          }
          if (r.length) nonEmpty++;
        }
      }
    }
    assert.ok(nonEmpty >= dash.panels.length, `most panels show data (${nonEmpty} of ${dash.panels.length * 2})`);
    for (const v of dash.templating.list) assert.ok((await store.query(v.query)).length > 0, `variable ${v.name}`);
  },
);

test('every flow and every dpi alert carries the Community ID the spec gives', async () => {
  const flows = await store.query<{
    proto: number;
    src_addr: string;
    dst_addr: string;
    src_port: number;
    dst_port: number;
    community_id: string;
  }>('SELECT proto, src_addr, dst_addr, src_port, dst_port, community_id FROM flows');
  assert.ok(flows.length > 50);
  for (const f of flows) {
    assert.match(f.community_id, /^1:[A-Za-z0-9+/]{27}=$/);
    if (f.proto === 6 || f.proto === 17)
      assert.equal(
        f.community_id,
        communityId({ proto: f.proto, srcIp: f.src_addr, dstIp: f.dst_addr, srcPort: f.src_port, dstPort: f.dst_port }),
      );
  }
  const ids = new Set(flows.map((f) => f.community_id));
  const alerts = await store.query<{ rule_id: string; community_id: string }>(
    "SELECT rule_id, community_id FROM alerts WHERE stage = 'dpi'",
  );
  assert.ok(alerts.length >= 4);
  for (const a of alerts) assert.ok(ids.has(a.community_id), `${a.rule_id}: its Community ID is a flow's`);
});

test(
  'a Confluent-wire-format Avro client that knows only the registry URL decodes every topic; the SIEM topic is valid OCSF',
  { timeout: 120_000 },
  async () => {
    const serve = spawn(process.execPath, [CLI, 'schemas', 'serve', '--listen', '127.0.0.1:0'], {
      env: ENV,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const url = await new Promise<string>((res, rej) => {
        createInterface({ input: serve.stdout! }).once('line', res);
        serve.once('exit', (c) => rej(new Error(`cordon schemas serve exited ${c}`)));
      });
      const client = new SchemaRegistryClient({ baseURLs: [url] });
      const deserializer = new AvroDeserializer(client, SerdeType.VALUE, {});
      const bus = createEmbeddedBus({ dataDir: join(dir, 'data'), ctx: createContext({ log: silentLogger }) });
      const decoded = new Map<string, number>();
      try {
        for (const topic of Object.keys(TOPIC_MANIFEST) as TopicName[]) {
          const values: Buffer[] = [];
          await readRange(bus, topic, (r) => {
            if (r.value) values.push(r.value);
          });
          for (const v of values) {
            const theirs = await deserializer.deserialize(topic, v);
            const ours = codecFor(topic).decode(v);
            assert.deepEqual(
              JSON.parse(JSON.stringify(theirs)),
              JSON.parse(JSON.stringify(ours)),
              `${topic}: the registry client decodes what Cordon wrote`,
            );
            if (topic === TOPICS.siem) assert.deepEqual(validateOcsf(JSON.parse((ours as { json: string }).json)), []);
          }
          decoded.set(topic, values.length);
        }
      } finally {
        await bus.close();
      }
      for (const t of [
        TOPICS.packets,
        TOPICS.flows,
        TOPICS.alerts,
        TOPICS.blocks,
        TOPICS.logs,
        TOPICS.policy,
        TOPICS.inventory,
        TOPICS.siem,
      ]) {
        assert.ok((decoded.get(t) ?? 0) > 0, `${t} had records to decode (${JSON.stringify([...decoded])})`);
      }
      // the SIEM topic holds OCSF for every alert and flow
      const [c] = await store.query<{ a: string; f: string }>(
        'SELECT (SELECT count() FROM alerts) AS a, (SELECT count() FROM flows) AS f',
      );
      assert.ok(decoded.get(TOPICS.siem)! >= Number(c!.a) + Number(c!.f));
    } finally {
      serve.kill('SIGTERM');
    }
  },
);

test(
  'cordon export writes Suricata EVE JSON and OCSF lines, to stdout or a rotated file; cordon evidence writes the alerted flow as a pcap',
  { timeout: 120_000 },
  async () => {
    await store.close(); // the export opens the data dir itself (no instance runs)
    try {
      const { stdout: eve } = await cordon(dir, 'export', '--format', 'eve');
      const lines = eve
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as Record<string, any>);
      const alerts = lines.filter((l) => l.event_type === 'alert');
      const flows = lines.filter((l) => l.event_type === 'flow');
      assert.ok(alerts.length >= 4 && flows.length > 50);
      const traversal = alerts.find((l) => l.alert.signature_id === 1900001)!;
      assert.match(traversal.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+0000$/);
      assert.equal(traversal.alert.severity, 1);
      assert.equal(traversal.alert.action, 'allowed');
      assert.equal(typeof traversal.flow_id, 'number');
      assert.ok(
        flows.some((f) => f.community_id === traversal.community_id),
        'the alert and its flow share the community_id',
      );
      assert.ok(flows.every((f) => typeof f.flow.start === 'string' && typeof f.flow_id === 'number'));

      const { stdout: ocsf } = await cordon(dir, 'export', '--format', 'ocsf');
      const events = ocsf
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l));
      assert.ok(events.length >= alerts.length + flows.length);
      for (const e of events) assert.deepEqual(validateOcsf(e), [], JSON.stringify(e));
      assert.ok(
        events.some((e) => e.class_uid === 3002),
        'the SSH failures as Authentication',
      );

      // the packets of the alerted flow, as a pcap: as many as the flow counted
      const ev = join(dir, 'evidence.pcap');
      const { stdout: report } = await cordon(dir, 'evidence', '--alert', traversal.cordon.alert_id, '--output', ev);
      const flow = flows.find((f) => f.community_id === traversal.community_id)!;
      assert.equal(JSON.parse(report).packets, flow.flow.pkts_toserver + flow.flow.pkts_toclient);
      assert.equal(readFileSync(ev).readUInt32LE(0), 0xa1b2c3d4, 'a pcap file');

      const file = join(dir, 'eve.json');
      await cordon(dir, 'export', '--format', 'eve', '--output', file, '--rotate-mb', '1');
      assert.equal(readFileSync(file, 'utf8'), eve);
      assert.ok(statSync(file).size < 1024 * 1024);
    } finally {
      store = await createStore({
        dataDir: join(dir, 'data', 'clickhouse'),
        readOnly: true,
        ctx: createContext({ log: silentLogger }),
      });
    }
  },
);

test(
  'cordon up --exit --pcap FILE twice on one data dir leaves SELECT count() FROM alerts unchanged',
  { timeout: 300_000 },
  async () => {
    const dir2 = mkdtempSync(join(tmpdir(), 'cordon-replay-twice-'));
    try {
      copyFileSync(join(dir, 'data', 'demo', 'demo.pcap'), join(dir2, 'capture.pcap'));
      const count = async () => {
        const { stdout } = await cordon(
          dir2,
          'query',
          '--format',
          'json',
          'SELECT count() AS n, uniqExact(alert_id) AS ids FROM alerts',
        );
        return JSON.parse(stdout.trim()) as { n: string; ids: string };
      };
      await cordon(dir2, 'up', '--exit', '--pcap', 'capture.pcap');
      const first = await count();
      assert.ok(Number(first.n) >= 4, `alerts after the first replay: ${first.n}`);
      await cordon(dir2, 'up', '--exit', '--pcap', 'capture.pcap');
      const second = await count();
      assert.deepEqual(second, first, 'the same alerts, counted once, without FINAL');
      assert.equal(second.n, second.ids);
    } finally {
      rmSync(dir2, { recursive: true, force: true });
    }
  },
);
