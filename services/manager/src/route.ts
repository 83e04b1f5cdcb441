import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { z } from 'zod';
import type { AuditNote } from './audit.js';
import { ERR_MANAGER_BAD_REQUEST } from './errors.js';
import type { Identity } from './identity.js';
import type { RouteAccess } from './permissions.js';
import { fromZod, type JsonSchema } from './schema.js';

declare module 'fastify' {
  interface FastifyRequest {
    /** Who is asking (null on public routes, and before authentication). */
    identity: Identity | null;
    /** What a write route says about the change, for its one audit event. */
    auditNote: AuditNote | null;
    /** The actor of a sign-in attempt (the name tried), who has no identity yet. */
    auditActor: string | null;
  }
  interface FastifyContextConfig {
    /** The permission the route needs (or `public` / `authenticated`). */
    access?: RouteAccess;
    /** The audit action of a write route (`user.create`, `block.lift`, …). */
    action?: string;
  }
}

/** The one error format of the API. */
export const errorSchema = fromZod(
  z.object({
    statusCode: z.number().int(),
    code: z.string().describe('A stable CORDON_ERR_MANAGER_… code'),
    error: z.string(),
    message: z.string().describe('What went wrong and what to do'),
  }),
);

export type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';

export interface RouteSpec<B, Q, P, R> {
  method: Method;
  /** Under /api/v1, in fastify's syntax (`/users/:name`). */
  url: string;
  access: RouteAccess;
  /** The audit action: required for every route that is not a GET. */
  action?: string;
  summary: string;
  tag: string;
  body?: z.ZodType<B, z.ZodTypeDef, unknown>;
  querystring?: z.ZodType<Q, z.ZodTypeDef, unknown>;
  params?: z.ZodType<P, z.ZodTypeDef, unknown>;
  /** The answer's schema (status 200, or `status`): fields it does not name are not sent. */
  response: z.ZodTypeAny | JsonSchema;
  status?: number;
  /** Largest request body (default 1 MiB). */
  bodyLimit?: number;
  handler(req: ApiRequest<B, Q, P>, reply: FastifyReply): Promise<R | Serialized> | R | Serialized;
}

export interface ApiRequest<B, Q, P> {
  body: B;
  query: Q;
  params: P;
  identity: Identity;
  raw: FastifyRequest;
  /** Describe the change for the audit event (object, before, after). */
  audit(note: AuditNote): void;
}

const isZod = (s: unknown): s is z.ZodTypeAny => s instanceof z.ZodType;

/**
 * An answer already serialized by the route's own response serializer (`reply.serialize`), kept
 * and sent again as it is while what it shows has not changed.
 */
export class Serialized {
  constructor(readonly body: string) {}
}

function parse<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown> | undefined, value: unknown, where: string): T {
  if (!schema) return undefined as T;
  const r = schema.safeParse(value ?? {});
  if (!r.success)
    throw ERR_MANAGER_BAD_REQUEST(
      `${where}: ${r.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`,
    );
  return r.data;
}

/**
 * Register a route from its spec: JSON Schemas from the zod sources for validation,
 * serialization and the OpenAPI document (with the permission as `x-cordon-permission`),
 * then the handler with typed, parsed input.
 */
export function addRoute<B, Q, P, R>(app: FastifyInstance, spec: RouteSpec<B, Q, P, R>): void {
  if (spec.method !== 'GET' && !spec.action)
    throw new Error(`route ${spec.method} ${spec.url} is a write without an audit action`);
  const status = spec.status ?? 200;
  const response = isZod(spec.response) ? fromZod(spec.response) : spec.response;
  app.route({
    method: spec.method,
    url: `/api/v1${spec.url}`,
    ...(spec.bodyLimit ? { bodyLimit: spec.bodyLimit } : {}),
    config: { access: spec.access, ...(spec.action ? { action: spec.action } : {}) },
    schema: {
      summary: spec.summary,
      tags: [spec.tag],
      ...(spec.access === 'public' ? { security: [] } : { security: [{ bearer: [] }, { session: [] }] }),
      ...(spec.body ? { body: fromZod(spec.body) } : {}),
      ...(spec.querystring ? { querystring: fromZod(spec.querystring) } : {}),
      ...(spec.params ? { params: fromZod(spec.params) } : {}),
      response: { [status]: response, '4xx': errorSchema, '5xx': errorSchema },
      'x-cordon-permission': spec.access,
      ...(spec.action ? { 'x-cordon-audit-action': spec.action } : {}),
    },
    handler: async (req, reply) => {
      const input: ApiRequest<B, Q, P> = {
        body: parse(spec.body, req.body, 'body'),
        query: parse(spec.querystring, req.query, 'query'),
        params: parse(spec.params, req.params, 'path'),
        identity: req.identity!,
        raw: req,
        audit: (note) => {
          req.auditNote = { ...req.auditNote, ...note };
        },
      };
      const out = await spec.handler(input, reply);
      reply.code(status);
      if (out instanceof Serialized) return reply.type('application/json; charset=utf-8').send(out.body);
      return out;
    },
  });
}
