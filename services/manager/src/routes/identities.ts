import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { hashPassword, passwordProblem } from '../auth/passwords.js';
import { newToken } from '../auth/tokens.js';
import type { ManagerDeps } from '../deps.js';
import { nameSchema, type RoleDocument, type TokenDocument, type UserDocument } from '../documents.js';
import {
  ERR_MANAGER_BAD_REQUEST,
  ERR_MANAGER_CONFLICT,
  ERR_MANAGER_FORBIDDEN,
  ERR_MANAGER_NOT_FOUND,
} from '../errors.js';
import { roleGrants } from '../identity.js';
import { BUILTIN_ROLES, PERMISSIONS, type Permission } from '../permissions.js';
import { addRoute } from '../route.js';
import type { Stored } from '../state.js';

const iso = (us: number) => new Date(us / 1000).toISOString();

/** A user as the API shows it: never the password hash. */
const userView = z.object({
  name: z.string(),
  role: z.string(),
  groups: z.array(z.string()),
  disabled: z.boolean(),
  created: z.string(),
  updated: z.string(),
  updatedBy: z.string(),
});
const toUser = (u: Stored<UserDocument>) => ({
  name: u.id,
  role: u.doc.role,
  groups: u.doc.groups,
  disabled: u.doc.disabled,
  created: iso(u.doc.createdUs),
  updated: iso(u.updatedUs),
  updatedBy: u.updatedBy,
});
/** What an audit event keeps of a user. */
const userAudit = (u: Stored<UserDocument> | undefined) =>
  u ? { role: u.doc.role, groups: u.doc.groups, disabled: u.doc.disabled, passwordHash: '[redacted]' } : null;

const roleView = z.object({
  id: z.string(),
  builtin: z.boolean(),
  description: z.string(),
  permissions: z.array(z.string()),
  groups: z.array(z.string()),
});
const tokenView = z.object({
  id: z.string(),
  name: z.string(),
  user: z.string(),
  permissions: z.array(z.string()).nullable(),
  created: z.string(),
  expires: z.string(),
  expired: z.boolean(),
});
const toToken = (t: Stored<TokenDocument>, nowUs: number) => ({
  id: t.id,
  name: t.doc.name,
  user: t.doc.user,
  permissions: t.doc.permissions,
  created: iso(t.doc.createdUs),
  expires: iso(t.doc.expiresUs),
  expired: t.doc.expiresUs <= nowUs,
});
const tokenAudit = (t: Stored<TokenDocument> | undefined) =>
  t ? { name: t.doc.name, user: t.doc.user, permissions: t.doc.permissions, expires: iso(t.doc.expiresUs) } : null;

const permissionList = z.array(z.enum(PERMISSIONS));

export function identityRoutes(app: FastifyInstance, d: ManagerDeps): void {
  const nowUs = () => d.ctx.clock.now() * 1000;
  const checkRole = (role: string) => {
    if (!roleGrants(d.state, role))
      throw ERR_MANAGER_BAD_REQUEST(
        `role "${role}" does not exist (built-in: ${Object.keys(BUILTIN_ROLES).join(', ')}, or one made with PUT /roles/{id})`,
      );
  };
  const checkGroups = (groups: string[]) => {
    const missing = groups.filter((g) => !d.state.groups.has(g));
    if (missing.length)
      throw ERR_MANAGER_BAD_REQUEST(`VM group(s) ${missing.join(', ')} do not exist (POST /groups first)`);
  };
  const hash = (pw: string) => {
    const problem = passwordProblem(pw);
    if (problem) throw ERR_MANAGER_BAD_REQUEST(problem);
    return hashPassword(pw, d.pepper, d.scryptCost);
  };

  // ---------------------------------------------------------------- users
  addRoute(app, {
    method: 'GET',
    url: '/users',
    access: 'users:read',
    tag: 'users',
    summary: 'Every user (never a password hash)',
    response: z.array(userView),
    handler: () => [...d.state.users.values()].map(toUser).sort((a, b) => a.name.localeCompare(b.name)),
  });
  addRoute(app, {
    method: 'GET',
    url: '/users/:name',
    access: 'users:read',
    tag: 'users',
    summary: 'One user',
    params: z.object({ name: z.string() }),
    response: userView,
    handler(req) {
      const u = d.state.users.get(req.params.name);
      if (!u) throw ERR_MANAGER_NOT_FOUND(`user ${req.params.name}`);
      return toUser(u);
    },
  });
  addRoute(app, {
    method: 'POST',
    url: '/users',
    access: 'users:write',
    action: 'user.create',
    status: 201,
    tag: 'users',
    summary: 'Create a user with a role (and optionally VM groups it is scoped to)',
    body: z
      .object({
        name: nameSchema,
        password: z.string().min(1).max(1024),
        role: nameSchema,
        groups: z.array(nameSchema).default([]),
      })
      .strict(),
    response: userView,
    async handler(req) {
      const { name, role, groups } = req.body;
      req.audit({ object: `user:${name}` });
      if (d.state.users.has(name))
        throw ERR_MANAGER_CONFLICT(`user ${name} exists; change it with PATCH /users/${name}`);
      checkRole(role);
      checkGroups(groups);
      const doc: UserDocument = {
        role,
        groups,
        passwordHash: await hash(req.body.password),
        disabled: false,
        createdUs: nowUs(),
      };
      await d.write([{ kind: 'user', id: name, doc }], req.identity.user);
      const u = d.state.users.get(name)!;
      req.audit({ before: null, after: userAudit(u) });
      return toUser(u);
    },
  });
  addRoute(app, {
    method: 'PATCH',
    url: '/users/:name',
    access: 'users:write',
    action: 'user.update',
    tag: 'users',
    summary:
      "Change a user's role, groups, password or disabled state (disabling closes its sessions and tokens at once)",
    params: z.object({ name: z.string() }),
    body: z
      .object({
        role: nameSchema.optional(),
        groups: z.array(nameSchema).optional(),
        password: z.string().min(1).max(1024).optional(),
        disabled: z.boolean().optional(),
      })
      .strict(),
    response: userView,
    async handler(req) {
      const name = req.params.name;
      req.audit({ object: `user:${name}` });
      const u = d.state.users.get(name);
      if (!u) throw ERR_MANAGER_NOT_FOUND(`user ${name}`);
      if (req.body.role) checkRole(req.body.role);
      if (req.body.groups) checkGroups(req.body.groups);
      const doc: UserDocument = {
        ...u.doc,
        ...(req.body.role ? { role: req.body.role } : {}),
        ...(req.body.groups ? { groups: req.body.groups } : {}),
        ...(req.body.disabled !== undefined ? { disabled: req.body.disabled } : {}),
        ...(req.body.password ? { passwordHash: await hash(req.body.password) } : {}),
      };
      const before = userAudit(u);
      await d.write([{ kind: 'user', id: name, doc }], req.identity.user);
      const after = d.state.users.get(name)!;
      req.audit({ before, after: { ...userAudit(after), ...(req.body.password ? { passwordChanged: true } : {}) } });
      return toUser(after);
    },
  });
  addRoute(app, {
    method: 'DELETE',
    url: '/users/:name',
    access: 'users:write',
    action: 'user.delete',
    tag: 'users',
    summary: 'Delete a user, its sessions and its tokens',
    params: z.object({ name: z.string() }),
    response: z.object({ deleted: z.string(), tokens: z.number().int(), sessions: z.number().int() }),
    async handler(req) {
      const name = req.params.name;
      req.audit({ object: `user:${name}` });
      const u = d.state.users.get(name);
      if (!u) throw ERR_MANAGER_NOT_FOUND(`user ${name}`);
      if (name === req.identity.user) throw ERR_MANAGER_CONFLICT('you cannot delete yourself; another admin can');
      const tokens = [...d.state.tokens.values()].filter((t) => t.doc.user === name);
      const sessions = [...d.state.sessions.values()].filter((s) => s.doc.user === name);
      await d.write(
        [
          { kind: 'user', id: name, doc: null },
          ...tokens.map((t) => ({ kind: 'token' as const, id: t.id, doc: null })),
          ...sessions.map((s) => ({ kind: 'session' as const, id: s.id, doc: null })),
        ],
        req.identity.user,
      );
      req.audit({ before: userAudit(u), after: null });
      return { deleted: name, tokens: tokens.length, sessions: sessions.length };
    },
  });

  // ---------------------------------------------------------------- roles
  const roles = () => [
    ...Object.entries(BUILTIN_ROLES).map(([id, r]) => ({
      id,
      builtin: true,
      description: r.description,
      permissions: [...r.permissions],
      groups: [] as string[],
    })),
    ...[...d.state.roles.values()].map((r) => ({
      id: r.id,
      builtin: false,
      description: r.doc.description,
      permissions: r.doc.permissions,
      groups: r.doc.groups,
    })),
  ];
  addRoute(app, {
    method: 'GET',
    url: '/roles',
    access: 'roles:read',
    tag: 'roles',
    summary: 'Built-in and custom roles with their permissions',
    response: z.array(roleView),
    handler: roles,
  });
  addRoute(app, {
    method: 'GET',
    url: '/permissions',
    access: 'authenticated',
    tag: 'roles',
    summary: 'Every permission a role can hold',
    response: z.array(z.string()),
    handler: () => [...PERMISSIONS],
  });
  addRoute(app, {
    method: 'PUT',
    url: '/roles/:id',
    access: 'roles:write',
    action: 'role.put',
    tag: 'roles',
    summary: 'Create or replace a custom role: a set of permissions, optionally scoped to VM groups',
    params: z.object({ id: nameSchema }),
    body: z
      .object({
        description: z.string().max(500).default(''),
        permissions: permissionList,
        groups: z.array(nameSchema).default([]),
      })
      .strict(),
    response: roleView,
    async handler(req) {
      const id = req.params.id;
      req.audit({ object: `role:${id}` });
      if (BUILTIN_ROLES[id])
        throw ERR_MANAGER_CONFLICT(
          `role ${id} is built in and cannot be changed; make a custom role with another name`,
        );
      checkGroups(req.body.groups);
      const before = d.state.roles.get(id)?.doc ?? null;
      const doc: RoleDocument = {
        description: req.body.description,
        permissions: [...new Set(req.body.permissions)],
        groups: req.body.groups,
      };
      await d.write([{ kind: 'role', id, doc }], req.identity.user);
      req.audit({ before, after: doc });
      return { id, builtin: false, ...doc };
    },
  });
  addRoute(app, {
    method: 'DELETE',
    url: '/roles/:id',
    access: 'roles:write',
    action: 'role.delete',
    tag: 'roles',
    summary: 'Delete a custom role no user holds',
    params: z.object({ id: z.string() }),
    response: z.object({ deleted: z.string() }),
    async handler(req) {
      const id = req.params.id;
      req.audit({ object: `role:${id}` });
      if (BUILTIN_ROLES[id]) throw ERR_MANAGER_CONFLICT(`role ${id} is built in`);
      const r = d.state.roles.get(id);
      if (!r) throw ERR_MANAGER_NOT_FOUND(`role ${id}`);
      const holders = [...d.state.users.values()].filter((u) => u.doc.role === id).map((u) => u.id);
      if (holders.length)
        throw ERR_MANAGER_CONFLICT(`role ${id} is held by ${holders.join(', ')}; give them another role first`);
      await d.write([{ kind: 'role', id, doc: null }], req.identity.user);
      req.audit({ before: r.doc, after: null });
      return { deleted: id };
    },
  });

  // ---------------------------------------------------------------- tokens
  const mayManage = (identity: { user: string; permissions: ReadonlySet<Permission> }, owner: string) =>
    owner === identity.user || identity.permissions.has('tokens:admin');
  addRoute(app, {
    method: 'GET',
    url: '/tokens',
    access: 'authenticated',
    tag: 'tokens',
    summary: "Your API tokens (every user's with tokens:admin); never a token's secret",
    response: z.array(tokenView),
    handler: (req) =>
      [...d.state.tokens.values()].filter((t) => mayManage(req.identity, t.doc.user)).map((t) => toToken(t, nowUs())),
  });
  addRoute(app, {
    method: 'POST',
    url: '/tokens',
    access: 'authenticated',
    action: 'token.create',
    status: 201,
    tag: 'tokens',
    summary:
      'Make an API token for yourself: shown once, stored hashed, scoped to permissions your role holds, expiring',
    body: z
      .object({
        name: z.string().min(1).max(100),
        /** Default: every permission of your role. */
        permissions: permissionList.optional(),
        ttlS: z.number().int().min(60).optional(),
      })
      .strict(),
    response: tokenView.extend({ token: z.string().describe('The token itself: shown this once, keep it') }),
    async handler(req) {
      const id = req.identity;
      const ttlS = Math.min(req.body.ttlS ?? d.config.maxTokenTtlS, d.config.maxTokenTtlS);
      const asked = req.body.permissions ?? null;
      const beyond = (asked ?? []).filter((p) => !id.permissions.has(p));
      if (beyond.length) throw ERR_MANAGER_FORBIDDEN(beyond.join(', '), id.role);
      const t = newToken();
      const doc: TokenDocument = {
        name: req.body.name,
        user: id.user,
        permissions: asked ?? (id.auth.startsWith('token:') ? [...id.permissions] : null),
        hash: t.hash,
        createdUs: nowUs(),
        expiresUs: nowUs() + ttlS * 1e6,
      };
      req.audit({ object: `token:${t.id}` });
      await d.write([{ kind: 'token', id: t.id, doc }], id.user);
      const stored = d.state.tokens.get(t.id)!;
      req.audit({ before: null, after: tokenAudit(stored) });
      return { ...toToken(stored, nowUs()), token: t.token };
    },
  });
  addRoute(app, {
    method: 'DELETE',
    url: '/tokens/:id',
    access: 'authenticated',
    action: 'token.revoke',
    tag: 'tokens',
    summary: "Revoke an API token (yours, or anyone's with tokens:admin)",
    params: z.object({ id: z.string() }),
    response: z.object({ revoked: z.string() }),
    async handler(req) {
      req.audit({ object: `token:${req.params.id}` });
      const t = d.state.tokens.get(req.params.id);
      if (!t || !mayManage(req.identity, t.doc.user)) throw ERR_MANAGER_NOT_FOUND(`token ${req.params.id}`);
      await d.write([{ kind: 'token', id: t.id, doc: null }], req.identity.user);
      req.audit({ before: tokenAudit(t), after: null });
      return { revoked: t.id };
    },
  });
}
