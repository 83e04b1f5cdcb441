import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { Store } from '@cordon/store';
import type { ManagerDeps } from '../deps.js';
import {
  ERR_MANAGER_BAD_REQUEST,
  ERR_MANAGER_NOT_FOUND,
  ERR_MANAGER_OUT_OF_SCOPE,
  ERR_MANAGER_UNAVAILABLE,
} from '../errors.js';
import { addRoute } from '../route.js';
import { vmInScope, vmsInScope } from '../scope.js';

/** ClickHouse's DateTime64 text (UTC) → ISO 8601. */
export const isoOf = (ch: string): string => `${ch.replace(' ', 'T')}Z`;
/** ISO 8601 (or anything Date parses) → ClickHouse's DateTime64(6) text. */
function chTime(s: string, what: string): string {
  const t = Date.parse(s);
  if (Number.isNaN(t)) throw ERR_MANAGER_BAD_REQUEST(`${what} is not a time (ISO 8601, e.g. 2025-01-31T12:00:00Z)`);
  return new Date(t).toISOString().replace('T', ' ').replace('Z', '');
}

// ts is read as text under another name: an alias named ts would shadow the column in WHERE and ORDER BY
const COLUMNS = `alert_id, toString(ts) AS ts_text, stage, vm, sensor, rule_id, rule_rev, signature, severity, category, action, src_addr, src_port, dst_addr, dst_port, proto, flow_id`;

const alertView = z.object({
  alert_id: z.string(),
  ts: z.string(),
  stage: z.string(),
  vm: z.string(),
  sensor: z.string(),
  rule_id: z.string(),
  rule_rev: z.number().int(),
  signature: z.string(),
  severity: z.number().int(),
  category: z.string(),
  action: z.string(),
  src_addr: z.string(),
  src_port: z.number().int().nullable(),
  dst_addr: z.string(),
  dst_port: z.number().int().nullable(),
  proto: z.string(),
  flow_id: z.string(),
  acked: z.boolean(),
  acked_by: z.string().nullable(),
});
type AlertRow = Omit<z.infer<typeof alertView>, 'acked' | 'acked_by' | 'ts'> & { ts_text: string };

/** Run a read on the manager's read-only ClickHouse session, its failure a coded 503. */
export async function read<T>(d: ManagerDeps, sql: string, params: Record<string, unknown>): Promise<T[]> {
  let store: Store;
  try {
    store = await d.readStore();
  } catch (err) {
    throw ERR_MANAGER_UNAVAILABLE.withCause(err, 'ClickHouse', (err as Error).message);
  }
  try {
    return await store.query<T>(sql, params);
  } catch (err) {
    throw ERR_MANAGER_UNAVAILABLE.withCause(err, 'ClickHouse', (err as Error).message);
  }
}

/** The first of each key, in order. */
export function uniqueBy<T>(rows: T[], key: (r: T) => string): T[] {
  const seen = new Set<string>();
  return rows.filter((r) => !seen.has(key(r)) && seen.add(key(r)) !== undefined);
}

/** A keyset cursor over (ts, id) descending. */
export const cursorOf = (ts: string, id: string): string => Buffer.from(`${ts}\n${id}`).toString('base64url');
export function parseCursor(c: string): { ts: string; id: string } {
  const [ts, id] = Buffer.from(c, 'base64url').toString('utf8').split('\n');
  if (!ts || id === undefined || !/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?$/.test(ts))
    throw ERR_MANAGER_BAD_REQUEST('cursor is not one this API returned');
  return { ts, id };
}

export function alertRoutes(app: FastifyInstance, d: ManagerDeps): void {
  const withAck = (a: AlertRow) => {
    const ack = d.state.acks.get(a.alert_id);
    const { ts_text, ...rest } = a;
    return {
      ...rest,
      src_port: a.src_port === null ? null : Number(a.src_port),
      dst_port: a.dst_port === null ? null : Number(a.dst_port),
      ts: isoOf(ts_text),
      acked: ack !== undefined,
      acked_by: ack?.doc.by ?? null,
    };
  };

  addRoute(app, {
    method: 'GET',
    url: '/alerts',
    access: 'alerts:read',
    tag: 'alerts',
    summary: 'Alerts from ClickHouse, newest first: filters, and a cursor for the next page',
    querystring: z
      .object({
        vm: z.string().optional(),
        rule: z.string().optional(),
        stage: z.string().optional(),
        src: z.string().optional().describe('Source address'),
        severityMin: z.coerce.number().int().min(0).max(255).optional(),
        since: z.string().optional(),
        until: z.string().optional(),
        acked: z.enum(['true', 'false']).optional(),
        q: z.string().max(200).optional().describe('Part of the signature'),
        limit: z.coerce.number().int().min(1).max(10_000).default(100),
        cursor: z.string().max(400).optional(),
      })
      .strict(),
    response: z.object({ items: z.array(alertView), next: z.string().nullable() }),
    async handler(req) {
      const q = req.query;
      const limit = Math.min(q.limit, d.config.maxPage);
      const where: string[] = [];
      const params: Record<string, unknown> = { limit: limit + 1 };
      const add = (cond: string, name: string, value: unknown) => {
        where.push(cond);
        params[name] = value;
      };
      if (q.vm) add('vm = {vm:String}', 'vm', q.vm);
      if (q.rule) add('rule_id = {rule:String}', 'rule', q.rule);
      if (q.stage) add('stage = {stage:String}', 'stage', q.stage);
      if (q.src) add('src_addr = {src:String}', 'src', q.src);
      if (q.severityMin !== undefined) add('severity >= {sev:UInt8}', 'sev', q.severityMin);
      if (q.since) add("ts >= toDateTime64({since:String}, 6, 'UTC')", 'since', chTime(q.since, 'since'));
      if (q.until) add("ts < toDateTime64({until:String}, 6, 'UTC')", 'until', chTime(q.until, 'until'));
      if (q.q) add('positionCaseInsensitive(signature, {q:String}) > 0', 'q', q.q);
      if (q.acked)
        add(`alert_id ${q.acked === 'true' ? '' : 'NOT '}IN {acks:Array(String)}`, 'acks', [...d.state.acks.keys()]);
      const scope = vmsInScope(d, req.identity);
      if (scope) add('vm IN {scope:Array(String)}', 'scope', [...scope]);
      if (q.cursor) {
        const c = parseCursor(q.cursor);
        where.push("(ts, alert_id) < (toDateTime64({cts:String}, 6, 'UTC'), {cid:String})");
        params.cts = c.ts;
        params.cid = c.id;
      }
      // no FINAL and no LIMIT BY: both make ClickHouse sort every matching row. A repeat of an
      // alert (a replay past the sink's dedup window, before the ReplacingMergeTree merged it)
      // is dropped from the page here instead.
      const sql = `SELECT ${COLUMNS} FROM alerts ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ts DESC, alert_id DESC LIMIT {limit:UInt32}`;
      const rows = await read<AlertRow>(d, sql, params);
      const page = uniqueBy(rows.slice(0, limit), (r) => r.alert_id);
      const last = rows[Math.min(rows.length, limit) - 1];
      return {
        items: page.map(withAck),
        next: rows.length > limit && last ? cursorOf(last.ts_text, last.alert_id) : null,
      };
    },
  });

  const blockRow = z.object({
    ts: z.string(),
    block_id: z.string(),
    enforcer: z.string(),
    target: z.string(),
    action: z.string(),
    status: z.string(),
    expires: z.string(),
  });
  const flowView = z.object({
    flow_id: z.string(),
    sensor: z.string(),
    vm: z.string(),
    proto: z.number().int(),
    src_addr: z.string(),
    src_port: z.number().int(),
    dst_addr: z.string(),
    dst_port: z.number().int(),
    first_seen: z.string(),
    last_seen: z.string(),
    pkts_toserver: z.string(),
    pkts_toclient: z.string(),
    bytes_toserver: z.string(),
    bytes_toclient: z.string(),
    end_reason: z.string(),
  });
  async function alertById(id: string): Promise<AlertRow | undefined> {
    return (await read<AlertRow>(d, `SELECT ${COLUMNS} FROM alerts WHERE alert_id = {id:String} LIMIT 1`, { id }))[0];
  }

  addRoute(app, {
    method: 'GET',
    url: '/alerts/:id',
    access: 'alerts:read',
    tag: 'alerts',
    summary:
      'One alert with its evidence, its flow, the blocks it caused (history and in force) and its acknowledgement',
    params: z.object({ id: z.string() }),
    response: z.object({
      alert: alertView,
      evidence: z.unknown(),
      flow: flowView.nullable(),
      blocks: z.array(blockRow),
      activeBlocks: z.array(
        z.object({
          enforcer: z.string(),
          target: z.string(),
          action: z.string(),
          status: z.string(),
          expires: z.string(),
          left_s: z.number().int(),
        }),
      ),
      ack: z.object({ by: z.string(), at: z.string(), note: z.string() }).nullable(),
    }),
    async handler(req) {
      const id = req.params.id;
      const a = await alertById(id);
      if (!a) throw ERR_MANAGER_NOT_FOUND(`alert ${id}`);
      if (!vmInScope(d, req.identity, a.vm || null)) throw ERR_MANAGER_OUT_OF_SCOPE(`alert ${id}`);
      const [ev] = await read<{ evidence: string }>(
        d,
        'SELECT evidence FROM alerts WHERE alert_id = {id:String} LIMIT 1',
        { id },
      );
      let evidence: unknown = ev?.evidence ?? null;
      try {
        evidence = JSON.parse(String(evidence));
      } catch {
        // kept as text
      }
      const flow = a.flow_id
        ? ((
            await read<z.infer<typeof flowView>>(
              d,
              `SELECT flow_id, sensor, vm, proto, src_addr, src_port, dst_addr, dst_port, toString(first_seen) AS first_seen, toString(last_seen) AS last_seen,
                      toString(pkts_toserver) AS pkts_toserver, toString(pkts_toclient) AS pkts_toclient, toString(bytes_toserver) AS bytes_toserver, toString(bytes_toclient) AS bytes_toclient, end_reason
               FROM flows WHERE flow_id = {f:String} ORDER BY last_seen DESC LIMIT 1`,
              { f: a.flow_id },
            )
          )[0] ?? null)
        : null;
      const blocks = await read<z.infer<typeof blockRow>>(
        d,
        // the decisions (blocks) and what their enforcers reported on them (block_status): one history
        `SELECT toString(ts) AS ts, block_id, enforcer, target, action, status, toString(expires) AS expires FROM (
           SELECT ts, block_id, enforcer, target, action, status, expires FROM blocks WHERE reason_alert = {id:String}
           UNION ALL
           SELECT s.ts AS ts, s.block_id AS block_id, s.enforcer AS enforcer, s.target AS target, b.action AS action, s.status AS status, s.expires AS expires
             FROM block_status AS s
             INNER JOIN (SELECT block_id, any(action) AS action FROM blocks WHERE reason_alert = {id:String} GROUP BY block_id) AS b
               ON b.block_id = s.block_id
         ) ORDER BY ts`,
        { id },
      );
      const ack = d.state.acks.get(id);
      return {
        alert: withAck(a),
        evidence,
        flow: flow
          ? {
              ...flow,
              proto: Number(flow.proto),
              src_port: Number(flow.src_port),
              dst_port: Number(flow.dst_port),
              first_seen: isoOf(flow.first_seen),
              last_seen: isoOf(flow.last_seen),
            }
          : null,
        blocks: blocks.map((b) => ({ ...b, ts: isoOf(b.ts), expires: isoOf(b.expires) })),
        activeBlocks: d.views.blockViews(d.ctx.clock.now()).filter((b) => b.reason_alert === id && b.active),
        ack: ack ? { by: ack.doc.by, at: new Date(ack.doc.atUs / 1000).toISOString(), note: ack.doc.note } : null,
      };
    },
  });

  addRoute(app, {
    method: 'POST',
    url: '/alerts/:id/ack',
    access: 'alerts:ack',
    action: 'alert.ack',
    tag: 'alerts',
    summary: 'Acknowledge an alert (with a note); every manager shows it acknowledged',
    params: z.object({ id: z.string() }),
    body: z.object({ note: z.string().max(1000).default('') }).strict(),
    response: z.object({ alert_id: z.string(), by: z.string(), at: z.string(), note: z.string() }),
    async handler(req) {
      const id = req.params.id;
      req.audit({ object: `alert:${id}` });
      const a = await alertById(id);
      if (!a) throw ERR_MANAGER_NOT_FOUND(`alert ${id}`);
      if (!vmInScope(d, req.identity, a.vm || null)) throw ERR_MANAGER_OUT_OF_SCOPE(`alert ${id}`);
      const before = d.state.acks.get(id)?.doc ?? null;
      const doc = { by: req.identity.user, atUs: d.ctx.clock.now() * 1000, note: req.body.note };
      await d.write([{ kind: 'ack', id, doc }], req.identity.user);
      req.audit({ before, after: doc });
      return { alert_id: id, by: doc.by, at: new Date(doc.atUs / 1000).toISOString(), note: doc.note };
    },
  });
}
