import { existsSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import Fastify, {
  LogController,
  type FastifyBaseLogger,
  type FastifyError,
  type FastifyInstance,
  type FastifyReply,
  type FastifyRequest,
} from 'fastify';
import cookie from '@fastify/cookie';
import fastifyStatic from '@fastify/static';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import { CordonError, describeError } from '@cordon/runtime';
import { TOPICS } from '@cordon/schemas';
import { auditRecord } from './audit.js';
import type { ManagerDeps } from './deps.js';
import {
  declaredErrors,
  ERR_MANAGER_BAD_REQUEST,
  ERR_MANAGER_INTERNAL,
  ERR_MANAGER_NO_ROUTE,
  statusOf,
} from './errors.js';
import { authenticate, authorize } from './identity.js';
import { PERMISSIONS } from './permissions.js';
import { registerRoutes } from './routes/index.js';

export const VERSION = '0.1.0';
const DEFAULT_CONSOLE_DIR = fileURLToPath(new URL('../../console/dist/', import.meta.url));
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

export interface AppOptions {
  https?: { cert: Buffer; key: Buffer };
}

/**
 * The manager's HTTP application: authentication and permission on every request (before
 * its body is even read), one audit event for every write route's answer, one error format,
 * the OpenAPI document and its UI, and the console's files.
 */
export async function buildApp(deps: ManagerDeps, opts: AppOptions = {}): Promise<FastifyInstance> {
  const log = deps.ctx.log.child({ component: 'manager-http' });
  const app = Fastify({
    loggerInstance: log as unknown as FastifyBaseLogger,
    // no line per request: requests are audited (writes) and counted, not logged
    logController: new LogController({ disableRequestLogging: true }),
    bodyLimit: 1 << 20,
    trustProxy: false,
    ...(opts.https ? { https: opts.https } : {}),
    ajv: { customOptions: { removeAdditional: false, coerceTypes: 'array', useDefaults: true, allErrors: false } },
  });
  app.decorateRequest('identity', null);
  app.decorateRequest('auditNote', null);
  app.decorateRequest('auditActor', null);
  await app.register(cookie);
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Cordon manager API',
        version: VERSION,
        description: [
          'Every route names the permission it needs (`x-cordon-permission`); every write route its audit action (`x-cordon-audit-action`), and each call of one leaves one AuditEvent.',
          'Authenticate with an API token (`Authorization: Bearer cdn_…`, made with POST /api/v1/tokens) or a console session (cookie `cordon_session`; changes need the `x-cordon-csrf` header the sign-in returned).',
          `Errors: \`{ statusCode, code, error, message }\` with these codes: ${declaredErrors()
            .map((e) => `${e.code} (${e.status})`)
            .join(', ')}.`,
          `Permissions: ${PERMISSIONS.join(', ')}.`,
        ].join('\n\n'),
      },
      components: {
        securitySchemes: {
          bearer: { type: 'http', scheme: 'bearer', description: 'An API token: cdn_<id>_<secret>' },
          session: { type: 'apiKey', in: 'cookie', name: 'cordon_session' },
        },
      },
    },
  });
  await app.register(swaggerUi, { routePrefix: '/api/v1/docs', uiConfig: { docExpansion: 'list' } });

  app.addHook('onRequest', async (req) => {
    const access = req.routeOptions.config.access ?? 'public';
    req.identity = authenticate(req, deps.state, access, deps.ctx.clock.now() * 1000);
    authorize(req.identity, access);
  });

  // Audit times strictly increase on an instance (the clock counts milliseconds): the trail
  // sorts in the order things happened even within one millisecond.
  let lastAuditUs = 0;
  const auditUs = () => (lastAuditUs = Math.max(lastAuditUs + 1, deps.ctx.clock.now() * 1000));

  // One audit event per call of a write route, whatever its answer: ok, denied (401/403/429) or error.
  app.addHook('onSend', async (req, reply, payload) => {
    const action = req.routeOptions.config.action;
    if (!action || READS.has(req.method)) return payload;
    const status = reply.statusCode;
    const result = status < 400 ? 'ok' : status === 401 || status === 403 || status === 429 ? 'denied' : 'error';
    const note = req.auditNote ?? {};
    const detail = status >= 400 ? errorDetail(payload) : note.detail;
    const { record } = auditRecord(
      {
        actor: req.identity?.user ?? req.auditActor ?? 'anonymous',
        role: req.identity?.role ?? null,
        auth: req.identity?.auth ?? (action === 'auth.login' ? 'password' : null),
        action,
        sourceIp: req.ip ?? null,
        result,
        nowUs: auditUs(),
      },
      {
        object: note.object ?? objectOfParams(req),
        before: note.before,
        after: note.after,
        ...(detail ? { detail } : {}),
      },
    );
    try {
      await deps.send(TOPICS.audit, [record]);
    } catch (err) {
      deps.ctx.metrics.inc('audit_failed');
      log.error({ err: describeError(err), action }, 'An audit event could not be written.');
    }
    return payload;
  });

  app.addHook('onSend', async (req, reply, payload) => {
    reply.header('x-content-type-options', 'nosniff');
    reply.header('referrer-policy', 'no-referrer');
    reply.header('x-frame-options', 'DENY');
    if (!req.url.startsWith('/api/'))
      reply.header(
        'content-security-policy',
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
      );
    if (req.url.startsWith('/api/') && !req.url.startsWith('/api/v1/docs')) reply.header('cache-control', 'no-store');
    return payload;
  });

  app.setErrorHandler((err: FastifyError | CordonError, req: FastifyRequest, reply: FastifyReply) => {
    let e: CordonError;
    if (err instanceof CordonError) e = err;
    else if ((err as FastifyError).validation)
      e = ERR_MANAGER_BAD_REQUEST.withCause(
        err,
        `${(err as FastifyError).validationContext ?? 'request'}${err.message.replace(/^(body|querystring|params)/, '')}`,
      );
    else if ((err as FastifyError).statusCode && (err as FastifyError).statusCode! < 500)
      e = ERR_MANAGER_BAD_REQUEST.withCause(err, err.message);
    else {
      log.error({ err: describeError(err), reqId: req.id, url: req.routeOptions.url }, 'A request failed.');
      e = ERR_MANAGER_INTERNAL.withCause(err, String(req.id));
    }
    const status = statusOf(e.code);
    if (e.code === 'CORDON_ERR_MANAGER_LOGIN_LOCKED')
      reply.header('retry-after', String(/in (\d+) s/.exec(e.message)?.[1] ?? 60));
    void reply.code(status).send(errorBody(status, e));
  });

  const consoleDir = deps.config.consoleDir ?? DEFAULT_CONSOLE_DIR;
  const haveConsole = existsSync(`${consoleDir}/index.html`);
  if (haveConsole)
    await app.register(fastifyStatic, {
      root: consoleDir,
      prefix: '/',
      index: ['index.html'],
      wildcard: false,
      cacheControl: false,
    });
  app.setNotFoundHandler((req, reply) => {
    const path = req.url.split('?')[0]!;
    if (!path.startsWith('/api/') && req.method === 'GET' && haveConsole) {
      // the console's own routes (deep links) are its index page
      void reply.type('text/html').send(readFileSync(`${consoleDir}/index.html`));
      return;
    }
    const e = ERR_MANAGER_NO_ROUTE(req.method, path);
    void reply.code(404).send(errorBody(404, e));
  });

  app.get('/api/v1/openapi.json', { schema: { hide: true }, config: { access: 'public' } }, () => app.swagger());
  registerRoutes(app, deps);
  return app;
}

function errorBody(status: number, e: CordonError) {
  return { statusCode: status, code: e.code, error: httpReason(status), message: e.message };
}

function httpReason(status: number): string {
  return (
    {
      400: 'Bad Request',
      401: 'Unauthorized',
      403: 'Forbidden',
      404: 'Not Found',
      409: 'Conflict',
      429: 'Too Many Requests',
      503: 'Service Unavailable',
    }[status] ?? 'Internal Server Error'
  );
}

function errorDetail(payload: unknown): string | undefined {
  try {
    const b = JSON.parse(String(payload)) as { code?: string; message?: string };
    return b.code ? `${b.code}: ${b.message ?? ''}` : undefined;
  } catch {
    return undefined;
  }
}

const SINGULAR: Record<string, string> = {
  users: 'user',
  roles: 'role',
  tokens: 'token',
  groups: 'group',
  policies: 'policy',
  targets: 'target',
  agents: 'agent',
  alerts: 'alert',
  blocks: 'block',
};

/** `<kind>:<id>` from the path when the route did not name its object (a call refused before its handler). */
function objectOfParams(req: FastifyRequest): string {
  const params = Object.values((req.params ?? {}) as Record<string, string>);
  const seg = (req.routeOptions.url ?? '').replace(/^\/api\/v1\//, '').split('/')[0] ?? '';
  const kind = SINGULAR[seg] ?? seg;
  return params.length ? `${kind}:${params.join('/')}` : kind;
}
