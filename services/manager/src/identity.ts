import type { FastifyRequest } from 'fastify';
import {
  ERR_MANAGER_CSRF,
  ERR_MANAGER_FORBIDDEN,
  ERR_MANAGER_SESSION_EXPIRED,
  ERR_MANAGER_TOKEN_EXPIRED,
  ERR_MANAGER_TOKEN_INVALID,
  ERR_MANAGER_UNAUTHENTICATED,
} from './errors.js';
import { BUILTIN_ROLES, type Permission, type RouteAccess } from './permissions.js';
import type { ManagerState } from './state.js';
import { csrfOf, parseToken, sameHash, sameString, sha256Hex } from './auth/tokens.js';

export const SESSION_COOKIE = 'cordon_session';
export const CSRF_COOKIE = 'cordon_csrf';
export const CSRF_HEADER = 'x-cordon-csrf';

/** Who a request is, and what it may do. */
export interface Identity {
  user: string;
  role: string;
  permissions: ReadonlySet<Permission>;
  /** The VM groups the identity is scoped to; empty: every VM. */
  groups: readonly string[];
  /** `session` or `token:<id>`. */
  auth: string;
  /** The session id (for the CSRF token), when authenticated by session. */
  sid?: string;
}

/** A role's permissions and groups: built-in, or a custom role record. */
export function roleGrants(
  state: ManagerState,
  role: string,
): { permissions: Set<Permission>; groups: string[] } | null {
  const builtin = BUILTIN_ROLES[role];
  if (builtin) return { permissions: new Set(builtin.permissions), groups: [] };
  const custom = state.roles.get(role);
  return custom ? { permissions: new Set(custom.doc.permissions), groups: custom.doc.groups } : null;
}

function identityOf(
  state: ManagerState,
  user: string,
  auth: string,
  only: readonly Permission[] | null,
): Identity | null {
  const u = state.users.get(user);
  if (!u || u.doc.disabled) return null;
  const grants = roleGrants(state, u.doc.role);
  if (!grants) return null;
  const permissions = only ? new Set(only.filter((p) => grants.permissions.has(p))) : grants.permissions;
  // a user's own groups narrow the role's; either alone scopes
  const groups =
    u.doc.groups.length && grants.groups.length
      ? u.doc.groups.filter((g) => grants.groups.includes(g))
      : [...u.doc.groups, ...grants.groups];
  const scoped = u.doc.groups.length > 0 || grants.groups.length > 0;
  // scoped to groups that do not overlap: a group no VM can be in, so the identity sees none
  return { user, role: u.doc.role, permissions, groups: scoped && groups.length === 0 ? [NO_GROUP] : groups, auth };
}

const READS = new Set(['GET', 'HEAD', 'OPTIONS']);
/** Not a valid group name: no group has it. */
export const NO_GROUP = '(none)';

/**
 * Authenticate a request (Bearer token, else session cookie; a change through a session
 * needs its CSRF header). Throws the coded 401/403 errors; returns null for public routes.
 */
export function authenticate(
  req: FastifyRequest,
  state: ManagerState,
  access: RouteAccess,
  nowUs: number,
): Identity | null {
  if (access === 'public') return null;
  let identity: Identity | null;
  const header = req.headers.authorization;
  if (header !== undefined) {
    const m = /^Bearer\s+(\S+)$/i.exec(header);
    const parsed = m ? parseToken(m[1]!) : null;
    const rec = parsed ? state.tokens.get(parsed.id) : undefined;
    if (!parsed || !rec || !sameHash(parsed.secret, rec.doc.hash)) throw ERR_MANAGER_TOKEN_INVALID();
    if (rec.doc.expiresUs <= nowUs) throw ERR_MANAGER_TOKEN_EXPIRED(new Date(rec.doc.expiresUs / 1000).toISOString());
    identity = identityOf(state, rec.doc.user, `token:${parsed.id}`, rec.doc.permissions);
    if (!identity) throw ERR_MANAGER_TOKEN_INVALID();
  } else {
    const sid = req.cookies[SESSION_COOKIE];
    if (!sid) throw ERR_MANAGER_UNAUTHENTICATED();
    const rec = state.sessions.get(sha256Hex(sid));
    if (!rec || rec.doc.expiresUs <= nowUs) throw ERR_MANAGER_SESSION_EXPIRED();
    identity = identityOf(state, rec.doc.user, 'session', null);
    if (!identity) throw ERR_MANAGER_SESSION_EXPIRED();
    identity.sid = sid;
    // known before the CSRF check, so a refused change is audited under its actor
    req.identity = identity;
    if (!READS.has(req.method)) {
      const sent = req.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !sameString(sent, csrfOf(sid))) throw ERR_MANAGER_CSRF();
    }
  }
  return identity;
}

/** Throws CORDON_ERR_MANAGER_FORBIDDEN unless the identity holds the route's permission. */
export function authorize(identity: Identity | null, access: RouteAccess): void {
  if (access === 'public' || access === 'authenticated' || !identity) return;
  if (!identity.permissions.has(access)) throw ERR_MANAGER_FORBIDDEN(access, identity.role);
}
