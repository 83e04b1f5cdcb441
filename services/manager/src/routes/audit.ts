import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ManagerDeps } from '../deps.js';
import { fromAvro } from '../schema.js';
import { addRoute } from '../route.js';
import { cursorOf, isoOf, parseCursor, read, uniqueBy } from './alerts.js';

/**
 * The audit trail, read from ClickHouse's `audit` table — which the sink fills from
 * `cordon.audit.v1` and which the manager's readonly = 1 session cannot change.
 */
export function auditRoutes(app: FastifyInstance, d: ManagerDeps): void {
  const event = fromAvro('AuditEvent', { omit: ['ts_us'] });
  (event.properties as Record<string, unknown>).ts = { type: 'string', description: 'ISO 8601, UTC' };
  (event.required as string[]).push('ts');
  addRoute(app, {
    method: 'GET',
    url: '/audit',
    access: 'audit:read',
    tag: 'audit',
    summary: 'The audit trail, newest first: every write, sign-in and failed sign-in, with before/after',
    querystring: z
      .object({
        actor: z.string().optional(),
        action: z.string().optional(),
        object: z.string().optional().describe('The object, or its beginning (user:, block:watchdog:hv1|…)'),
        result: z.enum(['ok', 'denied', 'error']).optional(),
        since: z.string().optional(),
        until: z.string().optional(),
        limit: z.coerce.number().int().min(1).max(10_000).default(100),
        cursor: z.string().max(400).optional(),
      })
      .strict(),
    response: {
      type: 'object',
      properties: { items: { type: 'array', items: event }, next: { type: ['string', 'null'] } },
      required: ['items', 'next'],
    },
    async handler(req) {
      const q = req.query;
      const limit = Math.min(q.limit, d.config.maxPage);
      const where: string[] = [];
      const params: Record<string, unknown> = { limit: limit + 1 };
      if (q.actor) (where.push('actor = {actor:String}'), (params.actor = q.actor));
      if (q.action) (where.push('action = {action:String}'), (params.action = q.action));
      if (q.object) (where.push('startsWith(object, {object:String})'), (params.object = q.object));
      if (q.result) (where.push('result = {result:String}'), (params.result = q.result));
      if (q.since) (where.push("ts >= parseDateTime64BestEffort({since:String}, 6, 'UTC')"), (params.since = q.since));
      if (q.until) (where.push("ts < parseDateTime64BestEffort({until:String}, 6, 'UTC')"), (params.until = q.until));
      if (q.cursor) {
        const c = parseCursor(q.cursor);
        where.push("(ts, audit_id) < (toDateTime64({cts:String}, 6, 'UTC'), {cid:String})");
        params.cts = c.ts;
        params.cid = c.id;
      }
      const rows = await read<Record<string, unknown> & { ts_text: string; audit_id: string }>(
        d,
        `SELECT audit_id, toString(ts) AS ts_text, actor, role, auth, action, object, before, after, result, source_ip, detail
         FROM audit ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY ts DESC, audit_id DESC LIMIT {limit:UInt32}`,
        params,
      );
      const page = uniqueBy(rows.slice(0, limit), (r) => r.audit_id);
      const last = rows[Math.min(rows.length, limit) - 1];
      return {
        items: page.map(({ ts_text, ...r }) => ({ ...r, ts: isoOf(ts_text) })),
        next: rows.length > limit && last ? cursorOf(last.ts_text, last.audit_id) : null,
      };
    },
  });
}
