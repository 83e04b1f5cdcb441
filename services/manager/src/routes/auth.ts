import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { decoyHash, verifyPassword } from '../auth/passwords.js';
import { csrfOf, newSessionId, sha256Hex } from '../auth/tokens.js';
import type { ManagerDeps } from '../deps.js';
import { ERR_MANAGER_LOGIN_FAILED, ERR_MANAGER_LOGIN_LOCKED } from '../errors.js';
import { CSRF_COOKIE, roleGrants, SESSION_COOKIE } from '../identity.js';
import { addRoute } from '../route.js';

const me = z.object({
  user: z.string(),
  role: z.string(),
  permissions: z.array(z.string()),
  groups: z.array(z.string()),
  auth: z.string(),
  csrf: z.string().nullable().describe('Send as x-cordon-csrf with every change made through this session'),
  expiresAt: z.string().nullable(),
});

export function authRoutes(app: FastifyInstance, d: ManagerDeps): void {
  let decoy: Promise<string> | null = null;
  const nowUs = () => d.ctx.clock.now() * 1000;

  addRoute(app, {
    method: 'GET',
    url: '/health',
    access: 'public',
    tag: 'auth',
    summary: 'Liveness: the manager answers and has read its state',
    response: z.object({ status: z.literal('ok'), version: z.string() }),
    handler: () => ({ status: 'ok' as const, version: '0.1.0' }),
  });

  addRoute(app, {
    method: 'POST',
    url: '/auth/login',
    access: 'public',
    action: 'auth.login',
    tag: 'auth',
    summary: 'Sign in with a user name and password: a session cookie (HttpOnly, SameSite=Strict) and its CSRF token',
    body: z.object({ user: z.string().min(1).max(64), password: z.string().min(1).max(1024) }).strict(),
    response: me,
    async handler(req, reply) {
      const ip = req.raw.ip;
      const now = d.ctx.clock.now();
      req.raw.auditActor = req.body.user;
      req.audit({ object: `user:${req.body.user}` });
      const wait = d.limiter.retryAfter(req.body.user, ip, now);
      if (wait > 0) throw ERR_MANAGER_LOGIN_LOCKED(Math.ceil(wait / 1000));
      const u = d.state.users.get(req.body.user);
      // the same work whether the user exists or not: no user-name oracle by timing
      const ok = u
        ? await verifyPassword(req.body.password, u.doc.passwordHash, d.pepper)
        : await verifyPassword(req.body.password, await (decoy ??= decoyHash(d.pepper, d.scryptCost)), d.pepper).then(
            () => false,
          );
      if (!ok || !u || u.doc.disabled) {
        d.limiter.failed(req.body.user, ip, now);
        throw ERR_MANAGER_LOGIN_FAILED();
      }
      d.limiter.succeeded(req.body.user, ip);
      const { sid, hash } = newSessionId();
      const expiresUs = nowUs() + d.config.sessionTtlS * 1e6;
      await d.write(
        [{ kind: 'session', id: hash, doc: { user: req.body.user, createdUs: nowUs(), expiresUs, sourceIp: ip } }],
        req.body.user,
      );
      const cookie = { path: '/', sameSite: 'strict' as const, secure: d.tls, maxAge: d.config.sessionTtlS };
      void reply.setCookie(SESSION_COOKIE, sid, { ...cookie, httpOnly: true });
      void reply.setCookie(CSRF_COOKIE, csrfOf(sid), { ...cookie, httpOnly: false });
      req.audit({ after: { session: hash.slice(0, 12), expires: new Date(expiresUs / 1000).toISOString() } });
      const g = roleGrants(d.state, u.doc.role);
      return {
        user: req.body.user,
        role: u.doc.role,
        permissions: [...(g?.permissions ?? [])],
        groups: [...u.doc.groups, ...(g?.groups ?? [])],
        auth: 'session',
        csrf: csrfOf(sid),
        expiresAt: new Date(expiresUs / 1000).toISOString(),
      };
    },
  });

  addRoute(app, {
    method: 'POST',
    url: '/auth/logout',
    access: 'authenticated',
    action: 'auth.logout',
    tag: 'auth',
    summary: 'Close this session (the cookie stops working on every manager instance)',
    response: z.object({ ok: z.boolean() }),
    async handler(req, reply) {
      const sid = req.identity.sid;
      req.audit({ object: `user:${req.identity.user}` });
      if (sid) {
        const s = d.state.sessions.get(sha256Hex(sid));
        req.audit({
          before: {
            session: sha256Hex(sid).slice(0, 12),
            expires: s ? new Date(s.doc.expiresUs / 1000).toISOString() : null,
          },
          after: null,
        });
        await d.write([{ kind: 'session', id: sha256Hex(sid), doc: null }], req.identity.user);
        void reply.clearCookie(SESSION_COOKIE, { path: '/' });
        void reply.clearCookie(CSRF_COOKIE, { path: '/' });
      }
      return { ok: sid !== undefined };
    },
  });

  addRoute(app, {
    method: 'GET',
    url: '/auth/me',
    access: 'authenticated',
    tag: 'auth',
    summary: 'Who is signed in: user, role, permissions, scope, and the session CSRF token',
    response: me,
    handler(req) {
      const id = req.identity;
      const s = id.sid ? d.state.sessions.get(sha256Hex(id.sid)) : undefined;
      return {
        user: id.user,
        role: id.role,
        permissions: [...id.permissions],
        groups: [...id.groups],
        auth: id.auth,
        csrf: id.sid ? csrfOf(id.sid) : null,
        expiresAt: s ? new Date(s.doc.expiresUs / 1000).toISOString() : null,
      };
    },
  });
}
