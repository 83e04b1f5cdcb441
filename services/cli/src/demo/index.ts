import { statSync, writeFileSync, mkdirSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { childContext, type Context } from '@cordon/runtime';
import { readTable, type Bus } from '@cordon/bus';
import type { Store } from '@cordon/store';
import { codecFor, TOPICS, type LogBatch } from '@cordon/schemas';
import { applyInventoryFile, applyPolicyFile, inventoryRecords, readInventoryFile } from '@cordon/policy';
import { listInstalled } from '@cordon/rulesets';
import { demoTrafficFrames } from '../demo-capture.js';
import { formatTable } from '../format.js';
import { replayCapture, type ReplayReport } from '../replay.js';
import { DEMO_AGENT_ID, DEMO_NET, demoAttackFrames, demoAuthLog } from './attacks.js';
import { pcapFile } from './frames.js';

/**
 * `cordon up`'s demo: a small network under attack, detected and blocked, and the result
 * read back from ClickHouse.
 *
 * 1. `prepareDemo` (before the services start, so the dpi and the responder start with them):
 *    the demo policy (rules/demo/policy.yaml: the demo rules, detect mode, path traversal in
 *    prevent mode with a one-hour block) and inventory (rules/demo/inventory.yaml) go on their
 *    topics through the same code as `cordon policy apply` / `cordon inventory apply`; the
 *    capture (everyday traffic + attacks, reproducible from a seed) is written to the data dir.
 * 2. `runDemo` (services running): the capture is replayed to `packets`, db-1's auth log with
 *    an SSH brute force is published to `logs` as the agent on db-1 would, the pipeline is
 *    drained, and the summary is printed from ClickHouse: flows, alerts by rule and severity,
 *    block decisions with their TTL and expiry, and what to run next.
 *
 * A policy or inventory that is not the demo's (applied by the operator) is never replaced: the
 * demo then says so and runs with it. With `--pcap FILE` the user's capture is replayed with
 * the demo rules and every installed rule set, in detect mode and without the demo inventory:
 * their network is not the demo's, so nothing in it is blocked on the demo's say-so.
 */

const ROOT = fileURLToPath(new URL('../../../../../', import.meta.url));
/** The demo's shipped files: rules, policy, inventory. */
export const DEMO_DIR = join(ROOT, 'rules', 'demo');
/** Who the demo's policy and inventory are written by: what marks them as the demo's, and replaceable. */
export const DEMO_AUTHOR = 'cordon-demo';

export interface DemoPlan {
  kind: 'demo' | 'pcap';
  capture: string;
  sensor: string;
  /** Whether the demo's (or the pcap run's) policy is the one in force. */
  policyApplied: boolean;
  inventoryApplied: boolean;
  ruleSets: string[];
  dataDir: string;
}

export interface PrepareDeps {
  bus: Bus;
  ctx: Context;
  dataDir: string;
  out?: (line: string) => void;
}

export async function prepareDemo(deps: PrepareDeps, opts: { pcap?: string } = {}): Promise<DemoPlan> {
  const ctx = childContext(deps.ctx, 'demo');
  const out = deps.out ?? ((s: string) => process.stdout.write(`${s}\n`));
  const dir = join(deps.dataDir, 'demo');
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const ruleSets = listInstalled(deps.dataDir).map((s) => s.name);

  let capture: string;
  let policyFile: string;
  if (opts.pcap) {
    capture = resolve(opts.pcap);
    // the user's traffic: demo rules + every installed set, IDS only
    policyFile = join(dir, 'pcap-policy.yaml');
    writeFileSync(
      policyFile,
      [
        '# Written by `cordon up --pcap`: the demo rules and every installed rule set, detect mode (IDS), no blocks.',
        '# Replace it with your own: cordon policy apply FILE',
        'id: default',
        'mode: detect',
        `ruleFiles: [${JSON.stringify(join(DEMO_DIR, 'demo.rules'))}]`,
        `ruleSets: [${ruleSets.join(', ')}]`,
        '',
      ].join('\n'),
    );
  } else {
    capture = join(dir, 'demo.pcap');
    const everyday = demoTrafficFrames();
    writeFileSync(capture, pcapFile([...everyday, ...demoAttackFrames(everyday[everyday.length - 1]![0])], 1));
    policyFile = join(DEMO_DIR, 'policy.yaml');
  }

  // never replace what an operator applied
  const current = await readTable(deps.bus, TOPICS.policy);
  const policyCodec = codecFor(TOPICS.policy);
  const existing = [...current.values()]
    .map((r) => (r.value ? policyCodec.decode(r.value) : null))
    .find((p) => p?.kind === 'policy' && p.id === 'default');
  let policyApplied = false;
  if (!existing || existing.updated_by === DEMO_AUTHOR) {
    const r = await applyPolicyFile({ bus: deps.bus, ctx, dataDir: deps.dataDir }, policyFile, { by: DEMO_AUTHOR });
    policyApplied = true;
    ctx.log.info({ policy: r.id, version: r.version, file: policyFile }, 'The demo policy is in force.');
  } else {
    out(
      `The data dir has its own policy "default" (version ${existing.version}, by ${existing.updated_by}): the demo runs with it, not with ${policyFile}.`,
    );
  }

  let inventoryApplied = false;
  if (!opts.pcap) {
    const invFile = join(DEMO_DIR, 'inventory.yaml');
    const mine = new Set(inventoryRecords(readInventoryFile(invFile), 0).keys());
    const others = [...(await readTable(deps.bus, TOPICS.inventory)).values()].filter(
      (r) => r.value && !mine.has(r.key?.toString() ?? ''),
    );
    if (others.length === 0) {
      await applyInventoryFile({ bus: deps.bus, ctx }, invFile);
      inventoryApplied = true;
    } else {
      out(
        `The data dir has an inventory of its own (${others.length} record(s)): the demo's VMs (${invFile}) are not added to it.`,
      );
    }
  }
  if (ruleSets.length === 0) {
    out(
      'Rules: the demo\'s own (rules/demo/demo.rules). For Emerging Threats Open, run "cordon rules update" and name it in a policy (ruleSets: [et-open]).',
    );
  }
  return {
    kind: opts.pcap ? 'pcap' : 'demo',
    capture,
    sensor: `replay:${basename(capture)}`,
    policyApplied,
    inventoryApplied,
    ruleSets,
    dataDir: deps.dataDir,
  };
}

export interface RunDeps {
  bus: Bus;
  store: Store;
  ctx: Context;
  out?: (line: string) => void;
}

export interface DemoReport {
  replay: ReplayReport;
  logLines: number;
}

/** Replay, publish the auth log, wait for `drained` (the pipeline caught up), print the summary. */
export async function runDemo(deps: RunDeps, plan: DemoPlan, drained: () => Promise<unknown>): Promise<DemoReport> {
  const ctx = childContext(deps.ctx, 'demo');
  const out = deps.out ?? ((s: string) => process.stdout.write(`${s}\n`));
  const replay = await replayCapture({ bus: deps.bus, ctx, file: plan.capture, sensor: plan.sensor });
  ctx.log.info(replay, 'Replayed the capture.');
  let logLines = 0;
  if (plan.kind === 'demo') logLines = await publishAuthLog(deps.bus, ctx, plan.dataDir);
  await drained();
  await printDemoSummary(deps.store, out, plan);
  return { replay, logLines };
}

/** db-1's auth log, as its agent ships it (services/agent/src/agent.ts startLogs): one LogBatch on `logs`, keyed vm|path. */
async function publishAuthLog(bus: Bus, ctx: Context, dataDir: string): Promise<number> {
  const log = demoAuthLog(ctx.clock.now());
  const file = join(dataDir, 'demo', 'db-1-auth.log');
  writeFileSync(file, log.text);
  const readUs = ctx.clock.now() * 1000;
  const { vm, authLog } = DEMO_NET.db;
  const batch: LogBatch = {
    batch_id: `${DEMO_AGENT_ID}:${authLog}:${statSync(file).ino}:${log.lines[0]!.offset}`,
    agent: DEMO_AGENT_ID,
    vm,
    source: authLog,
    format: 'auth',
    lines: log.lines.map((l) => ({ ts_us: readUs, offset: l.offset, line: l.line })),
  };
  const producer = bus.producer();
  try {
    await producer.send(TOPICS.logs, [
      { key: Buffer.from(`${vm}|${authLog}`), value: codecFor(TOPICS.logs).encode(batch) },
    ]);
  } finally {
    await producer.close();
  }
  ctx.log.info(
    { vm, agent: DEMO_AGENT_ID, lines: log.lines.length, file },
    'Published the auth log of db-1 as its agent would.',
  );
  return log.lines.length;
}

/** What the demo did, straight from ClickHouse. */
export async function printDemoSummary(
  store: Store,
  out: (line: string) => void,
  plan: Pick<DemoPlan, 'kind' | 'sensor' | 'dataDir' | 'ruleSets'>,
): Promise<void> {
  const sensors = plan.kind === 'demo' ? [plan.sensor, `agent:${DEMO_AGENT_ID}`] : [plan.sensor];
  const totals = await store.query(
    `SELECT count() AS flows, sum(pkts_toserver + pkts_toclient) AS packets, sum(bytes_toserver + bytes_toclient) AS bytes
       FROM flows WHERE sensor = {sensor:String}`,
    { sensor: plan.sensor },
  );
  out(`\nFlows from ${plan.sensor} (ClickHouse):`);
  out(formatTable(totals));
  const top = await store.query(
    `SELECT src_addr AS src, dst_addr AS dst, dst_port AS port, multiIf(proto = 6, 'tcp', proto = 17, 'udp', proto = 1, 'icmp', toString(proto)) AS proto,
            count() AS flows, sum(pkts_toserver + pkts_toclient) AS packets, sum(bytes_toserver + bytes_toclient) AS bytes,
            groupUniqArray(end_reason) AS ended_by
       FROM flows WHERE sensor = {sensor:String}
      GROUP BY src, dst, port, proto ORDER BY bytes DESC, flows DESC LIMIT 10`,
    { sensor: plan.sensor },
  );
  out('\nTop conversations:');
  out(formatTable(top));

  const alerts = await store.query(
    `SELECT stage, rule_id AS rule, severity, count() AS alerts, uniqExact(src_addr) AS sources,
            substring(any(signature), 1, 64) AS signature
       FROM alerts WHERE sensor IN {sensors:Array(String)}
      GROUP BY stage, rule, severity ORDER BY severity, alerts DESC, rule`,
    { sensors },
  );
  out('\nAlerts by rule and severity (1 = most severe):');
  out(formatTable(alerts));

  // as on the compacted topic, the newest decision per enforcer and target is the one in force
  // (older rows are history), with the newest status its enforcer reported on that decision
  const blocks = await store.query(
    `SELECT b.enforcer AS enforcer, b.target AS target, b.action AS action, intDiv(b.ttl_ms, 1000) AS ttl_s,
            toString(toDateTime(b.expires, 'UTC')) AS expires_utc,
            dateDiff('second', now64(), b.expires) AS left_s,
            multiIf(left_s <= 0, 'expired', left_s < 7200, concat('in ', toString(intDiv(left_s, 60)), ' min'),
                    left_s < 172800, concat('in ', toString(intDiv(left_s, 3600)), ' h'), concat('in ', toString(intDiv(left_s, 86400)), ' days')) AS state,
            if(s.status = '', b.status, s.status) AS status, a.rule_id AS rule
       FROM (SELECT enforcer, target, argMax(action, ts) AS action, argMax(ttl_ms, ts) AS ttl_ms, argMax(expires, ts) AS expires,
                    argMax(status, ts) AS status, argMax(reason_alert, ts) AS reason_alert, argMax(block_id, ts) AS block_id
               FROM blocks GROUP BY enforcer, target) AS b
       LEFT JOIN (SELECT block_id, argMax(status, ts) AS status FROM block_status GROUP BY block_id) AS s ON s.block_id = b.block_id
       INNER JOIN (SELECT alert_id, any(rule_id) AS rule_id FROM alerts WHERE sensor IN {sensors:Array(String)} GROUP BY alert_id) AS a ON a.alert_id = b.reason_alert
      ORDER BY b.expires DESC`,
    { sensors },
  );
  out(
    plan.kind === 'demo'
      ? '\nBlocks in force, with their TTLs (enforcers: the watchdog on host hv1, the agent on VM db-1):'
      : '\nBlocks in force, with their TTLs:',
  );
  out(formatTable(blocks.map(({ left_s: _left, ...row }) => row)));
  if (plan.kind === 'demo' && blocks.some((b) => b.status === 'requested')) {
    out(
      '("requested": no watchdog or agent runs in this demo; on a host they put the address in an nftables set and report "applied".)',
    );
  }

  const dd = resolve(plan.dataDir) === resolve('data') ? '' : ` --data-dir ${plan.dataDir}`;
  out('\nNext, ask ClickHouse yourself:');
  out(
    `  ./cordon query${dd} "SELECT ts, rule_id, signature, src_addr, dst_addr, community_id FROM alerts ORDER BY ts"`,
  );
  out(
    `  ./cordon query${dd} "SELECT ts, enforcer, target, ttl_ms, expires, status, reason_alert FROM blocks ORDER BY ts"`,
  );
  out(
    `  ./cordon query${dd} --format json "SELECT signature, http_url, payload_printable, evidence FROM alerts WHERE rule_id = 'sid:1900001'"`,
  );
  if (plan.ruleSets.length === 0)
    out(
      `More rules: ./cordon rules update${dd} installs Emerging Threats Open; rules/demo/policy.yaml shows how a policy uses rules and modes.`,
    );
  else
    out(
      `Installed rule sets: ${plan.ruleSets.join(', ')} (./cordon rules list${dd}); rules/demo/policy.yaml shows how a policy uses them (ruleSets: [name]).`,
    );
  out('');
}

export { DEMO_AGENT_ID, DEMO_NET } from './attacks.js';
