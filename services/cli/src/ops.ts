import { randomUUID } from 'node:crypto';
import { childContext, type Context } from '@cordon/runtime';
import { readRange, type Bus, type ConsumedRecord } from '@cordon/bus';
import { blockKey, codecFor, TOPICS, type Alert } from '@cordon/schemas';
import { splitStatements, type Store } from '@cordon/store';
import { applyInventoryFile, applyPolicyFile, blockTable, type BlockView } from '@cordon/policy';
import { readRecommendation, viewOf } from '@cordon/recommend';
import { ERR_ALERT_NOT_FOUND, ERR_BLOCK_NOT_FOUND, ERR_QUERY_ONE_STATEMENT, ERR_QUERY_READ_ONLY } from './errors.js';
import { replayCapture } from './replay.js';
import { assignmentsOf, rowsOfTopic } from './inventory-rows.js';
import { evidenceFrames, findAlert } from './evidence.js';
import type { OpEvent, OpInput, OpName } from './control/protocol.js';

/**
 * What the commands that work on a data dir do, written once: the running instance runs them
 * for a client of its control socket (control/server.ts), and a command with no instance to
 * ask runs them in its own process (remote.ts decides which). Each takes validated input and
 * reports through `emit` (rows, blocks, alerts, progress); its return value is the "done" event.
 */
export interface OpDeps {
  ctx: Context;
  dataDir: string;
  /** The bus with every topic created. */
  bus(): Promise<Bus>;
  /** A store whose session can only read (ClickHouse readonly = 1). */
  readStore(): Promise<Store>;
  emit(ev: OpEvent): void;
  /** Aborted when the client goes away (alerts tail --follow) or on Ctrl-C. */
  signal: AbortSignal;
}

type Ops = { [N in OpName]: (deps: OpDeps, input: OpInput<N>) => Promise<unknown> };

// ------------------------------------------------------------------ query

const READ_VERBS = new Set(['SELECT', 'WITH', 'SHOW', 'DESCRIBE', 'DESC', 'EXPLAIN', 'EXISTS']);

/** The first word of a statement after comments, whitespace and opening parentheses. */
function firstWord(sql: string): string {
  let s = sql;
  for (;;) {
    const t = s.replace(/^(\s+|\(|--[^\n]*(\n|$)|#[^\n]*(\n|$)|\/\*[\s\S]*?\*\/)/, '');
    if (t === s) break;
    s = t;
  }
  return /^[A-Za-z_]+/.exec(s)?.[0]?.toUpperCase() ?? '';
}

/**
 * `cordon query` reads: one statement, and a reading one. ClickHouse's readonly = 1 on the
 * session is what enforces it (writes, DDL and settings changes fail there); this check gives
 * the clear, coded refusal before the SQL is sent, and stops a second statement smuggled after
 * a `;`.
 */
export function checkReadOnlySql(sql: string): string {
  const statements = splitStatements(sql);
  if (statements.length !== 1)
    throw statements.length === 0
      ? ERR_QUERY_READ_ONLY('the SQL has no statement')
      : ERR_QUERY_ONE_STATEMENT(statements.length);
  const stmt = statements[0]!;
  const verb = firstWord(stmt);
  if (!READ_VERBS.has(verb)) throw ERR_QUERY_READ_ONLY(`${verb || 'this statement'} is not a read`);
  if (/\bINTO\s+OUTFILE\b/i.test(stmt.replace(/'(?:\\.|''|[^'\\])*'/g, "''")))
    throw ERR_QUERY_READ_ONLY('INTO OUTFILE writes a file');
  return stmt;
}

async function query(d: OpDeps, input: OpInput<'query'>): Promise<unknown> {
  const sql = checkReadOnlySql(input.sql);
  const store = await d.readStore();
  let rows: Array<Record<string, unknown>>;
  try {
    rows = await store.query(sql);
  } catch (err) {
    // ClickHouse's own refusal under readonly = 1 (code 164, READONLY)
    const text = `${(err as Error).message} ${String((err as Error).cause ?? '')}`;
    if (/\bREADONLY\b|readonly mode|\(164\)/.test(text)) {
      const detail = /Cannot [^.]*readonly[^.]*/i.exec(text)?.[0] ?? 'it is not a read';
      throw ERR_QUERY_READ_ONLY.withCause(err, `ClickHouse refused it under readonly = 1 (${detail})`);
    }
    throw err;
  }
  for (const row of rows) d.emit({ row });
  return { rows: rows.length };
}

// ------------------------------------------------------------------ policy, inventory, replay

async function policyApply(d: OpDeps, input: OpInput<'policy-apply'>): Promise<unknown> {
  return applyPolicyFile({ bus: await d.bus(), ctx: d.ctx, dataDir: d.dataDir }, input.file, {
    by: input.by,
    dryRun: input.dryRun,
  });
}

async function inventoryApply(d: OpDeps, input: OpInput<'inventory-apply'>): Promise<unknown> {
  return applyInventoryFile({ bus: await d.bus(), ctx: d.ctx }, input.file, {
    dryRun: input.dryRun,
    prune: input.prune,
  });
}

async function replay(d: OpDeps, input: OpInput<'replay'>): Promise<unknown> {
  let last = 0;
  return replayCapture({
    bus: await d.bus(),
    ctx: d.ctx,
    file: input.pcap,
    ...(input.sensor ? { sensor: input.sensor } : {}),
    ...(input.vm ? { vm: input.vm } : {}),
    ...(input.batch ? { batchPackets: input.batch } : {}),
    onProgress: (p) => {
      const now = Date.now();
      if (now - last < 200 && p.bytes < p.total) return;
      last = now;
      d.emit({ progress: { done: p.bytes, total: p.total, unit: 'bytes' } });
    },
  });
}

// ------------------------------------------------------------------ blocks

export type { BlockView };

async function blocksList(d: OpDeps, input: OpInput<'blocks-list'>): Promise<unknown> {
  const all = await blockTable(await d.bus(), d.ctx.clock.now());
  const shown = input.all ? all : all.filter((b) => b.active);
  for (const block of shown) d.emit({ block: block as unknown as Record<string, unknown> });
  return { blocks: shown.length, inactive: all.length - all.filter((b) => b.active).length };
}

/**
 * Lift a block: a tombstone on its key (`blockKey(enforcer, target)`), which every enforcer
 * follows (the watchdog and the agent remove the element from their nftables set). Who lifted
 * it and why travel in the tombstone's headers and in an audit event on `cordon.audit.v1`.
 */
async function blocksLift(d: OpDeps, input: OpInput<'blocks-lift'>): Promise<unknown> {
  const bus = await d.bus();
  const now = d.ctx.clock.now();
  const matches = (await blockTable(bus, now)).filter(
    (b) => b.target === input.target && (!input.enforcer || b.enforcer === input.enforcer),
  );
  if (matches.length === 0) throw ERR_BLOCK_NOT_FOUND(input.target, input.enforcer);
  const headers = {
    'cordon-lifted-by': Buffer.from(input.by),
    ...(input.reason ? { 'cordon-reason': Buffer.from(input.reason) } : {}),
  };
  const producer = bus.producer();
  try {
    await producer.send(
      TOPICS.blocks,
      matches.map((b) => ({ key: blockKey(b.enforcer, b.target), value: null, headers })),
    );
    const audit = codecFor(TOPICS.audit);
    await producer.send(
      TOPICS.audit,
      matches.map((b) => ({
        key: Buffer.from(input.by),
        value: audit.encode({
          audit_id: randomUUID(),
          ts_us: now * 1000,
          actor: input.by,
          action: 'block.lift',
          object: blockKey(b.enforcer, b.target).toString(),
          before: JSON.stringify(b),
          after: JSON.stringify({ lifted: true, reason: input.reason ?? null }),
          result: 'ok',
          source_ip: null,
          role: null,
          auth: 'cli',
          detail: input.reason ?? null,
        }),
      })),
    );
  } finally {
    await producer.close();
  }
  childContext(d.ctx, 'blocks').log.info(
    { target: input.target, enforcers: matches.map((b) => b.enforcer), by: input.by, reason: input.reason },
    'Block lifted.',
  );
  return { lifted: matches.map((b) => ({ enforcer: b.enforcer, target: b.target, wasActive: b.active })) };
}

// ------------------------------------------------------------------ alerts

export type AlertView = Omit<Alert, 'ts_us'> & { ts: string; published: string };

function alertView(r: ConsumedRecord): AlertView | null {
  if (!r.value) return null;
  const { ts_us, ...a } = codecFor(TOPICS.alerts).decode(r.value);
  return { ts: new Date(ts_us / 1000).toISOString(), published: new Date(r.timestamp).toISOString(), ...a };
}

/**
 * The alerts published in the last `sinceMs` (by the time the bus took them: a replayed
 * capture's alerts carry the capture's clock), in offset order per partition; with `follow`,
 * then every new one until the signal aborts.
 */
async function alertsTail(d: OpDeps, input: OpInput<'alerts-tail'>): Promise<unknown> {
  const bus = await d.bus();
  const from = d.ctx.clock.now() - input.sinceMs;
  let n = 0;
  const take = (r: ConsumedRecord) => {
    if (r.timestamp < from) return;
    const alert = alertView(r);
    if (!alert) return;
    n++;
    d.emit({ alert: alert as unknown as Record<string, unknown> });
  };
  const ends = await bus.admin.endOffsets(TOPICS.alerts);
  await readRange(bus, TOPICS.alerts, take);
  if (!input.follow || d.signal.aborted) return { alerts: n };
  await followFrom(d, bus, 'cordon-alerts-tail', new Map([[TOPICS.alerts, ends]]), take);
  return { alerts: n };
}

/**
 * Every record published to the topics after the given end offsets (what was read so far), until
 * the signal aborts — under a consumer group of its own that never commits.
 */
async function followFrom(
  d: OpDeps,
  bus: Bus,
  group: string,
  ends: Map<string, Map<number, bigint>>,
  take: (r: ConsumedRecord) => void,
): Promise<void> {
  const consumer = bus.consumer({
    groupId: `${group}-${process.pid}-${randomUUID()}`,
    topics: [...ends.keys()],
    fromBeginning: true,
    autoCommit: false,
    onAssign: (tps) => {
      for (const tp of tps) {
        const at = ends.get(tp.topic)?.get(tp.partition) ?? 0n;
        if (at > 0n) consumer.seek({ ...tp, offset: at });
      }
    },
  });
  const stop = () => void consumer.close();
  d.signal.addEventListener('abort', stop, { once: true });
  try {
    await consumer.run(async (batch) => {
      for (const r of batch.records) take(r);
    });
  } finally {
    d.signal.removeEventListener('abort', stop);
  }
}

/**
 * Decoded records of some topics (`cordon export`): those published since `sinceMs` ago (null:
 * everything the topics hold), in offset order per partition; with `follow`, then every new
 * one until the signal aborts.
 */
async function recordsTail(d: OpDeps, input: OpInput<'records-tail'>): Promise<unknown> {
  const bus = await d.bus();
  const from = input.sinceMs === null ? 0 : d.ctx.clock.now() - input.sinceMs;
  let n = 0;
  const take = (r: ConsumedRecord) => {
    if (r.timestamp < from || !r.value) return;
    const value = codecFor(r.topic as 'cordon.alerts.v1').decode(r.value) as unknown as Record<string, unknown>;
    n++;
    d.emit({ record: { topic: r.topic, published: r.timestamp, value } });
  };
  const ends = new Map<string, Map<number, bigint>>();
  for (const topic of input.topics) {
    ends.set(topic, await bus.admin.endOffsets(topic));
    await readRange(bus, topic, take);
  }
  if (!input.follow || d.signal.aborted) return { records: n };
  await followFrom(d, bus, 'cordon-export', ends, take);
  return { records: n };
}

/** The packets of an alert's flow (cordon evidence), as frames. */
async function evidence(d: OpDeps, input: OpInput<'evidence'>): Promise<unknown> {
  const bus = await d.bus();
  const alert = await findAlert(bus, input.alertId);
  if (!alert) throw ERR_ALERT_NOT_FOUND(input.alertId);
  const packets = await evidenceFrames(bus, alert, input, (f) =>
    d.emit({ frame: { ts_us: f.tsUs, linktype: f.linktype, base64: f.frame.toString('base64') } }),
  );
  return {
    packets,
    alert: { alert_id: alert.alert_id, rule_id: alert.rule_id, community_id: alert.community_id, ts_us: alert.ts_us },
  };
}

/** The VMs on the inventory topic, one row each (cordon vms). */
async function inventoryList(d: OpDeps): Promise<unknown> {
  const rows = await rowsOfTopic(await d.bus());
  for (const row of rows) d.emit({ row: row as unknown as Record<string, unknown> });
  return { vms: rows.length };
}

/** A VM's assignments (cordon assignments). */
async function assignments(d: OpDeps, input: OpInput<'assignments'>): Promise<unknown> {
  const rows = await assignmentsOf(await d.bus(), input.vm, input.history);
  for (const row of rows) d.emit({ row: row as unknown as Record<string, unknown> });
  return { assignments: rows.length };
}

/** The newest recommendation for a VM, one entry per rule with its reason (cordon recommend). */
async function recommendShow(d: OpDeps, input: OpInput<'recommend-show'>): Promise<unknown> {
  return viewOf(await readRecommendation(await d.bus(), input.vm), input.ruleSet);
}

/** A manager user written to the policy topic (cordon users add: the first admin). */
async function usersAdd(d: OpDeps, input: OpInput<'users-add'>): Promise<unknown> {
  // loaded here: the manager's HTTP stack is not every command's business
  const { addUser } = await import('@cordon/manager');
  return addUser({ bus: await d.bus(), ctx: d.ctx, dataDir: d.dataDir }, input);
}

export const OPS: Ops = {
  query,
  'policy-apply': policyApply,
  'inventory-apply': inventoryApply,
  replay,
  'blocks-list': blocksList,
  'blocks-lift': blocksLift,
  'alerts-tail': alertsTail,
  'records-tail': recordsTail,
  'inventory-list': inventoryList,
  assignments,
  'recommend-show': recommendShow,
  evidence,
  'users-add': usersAdd,
};
