import { defineError } from '@cordon/runtime';

/**
 * Every error the manager answers with, declared once: a stable code, the HTTP status it is
 * answered with, and a message that says what to do. The API's one error format is
 * `{ statusCode, code, error, message }` (errorBody in app.ts).
 */
const STATUS = new Map<string, number>();

function httpError<A extends unknown[]>(code: string, status: number, message: (...args: A) => string) {
  STATUS.set(code, status);
  return defineError(code, message);
}

/** The HTTP status of a manager error code (500 for anything else). */
export function statusOf(code: string): number {
  return STATUS.get(code) ?? 500;
}

/** Every declared code with its status: documented in the README and the OpenAPI document. */
export function declaredErrors(): Array<{ code: string; status: number }> {
  return [...STATUS].map(([code, status]) => ({ code, status }));
}

export const ERR_MANAGER_UNAUTHENTICATED = httpError(
  'CORDON_ERR_MANAGER_UNAUTHENTICATED',
  401,
  () => 'sign in (POST /api/v1/auth/login) or send an API token as "Authorization: Bearer <token>"',
);
export const ERR_MANAGER_TOKEN_INVALID = httpError(
  'CORDON_ERR_MANAGER_TOKEN_INVALID',
  401,
  () => 'the API token is not valid (unknown, revoked or malformed); make a new one with POST /api/v1/tokens',
);
export const ERR_MANAGER_TOKEN_EXPIRED = httpError(
  'CORDON_ERR_MANAGER_TOKEN_EXPIRED',
  401,
  (at: string) => `the API token expired at ${at}; make a new one with POST /api/v1/tokens`,
);
export const ERR_MANAGER_SESSION_EXPIRED = httpError(
  'CORDON_ERR_MANAGER_SESSION_EXPIRED',
  401,
  () => 'the session expired or was closed; sign in again',
);
export const ERR_MANAGER_LOGIN_FAILED = httpError(
  'CORDON_ERR_MANAGER_LOGIN_FAILED',
  401,
  () => 'wrong user name or password',
);
export const ERR_MANAGER_LOGIN_LOCKED = httpError(
  'CORDON_ERR_MANAGER_LOGIN_LOCKED',
  429,
  (retryS: number) => `too many failed sign-ins; try again in ${retryS} s`,
);
export const ERR_MANAGER_FORBIDDEN = httpError(
  'CORDON_ERR_MANAGER_FORBIDDEN',
  403,
  (permission: string, role: string) =>
    `this needs the permission "${permission}", which role "${role}" (or this token's scope) does not grant; ask an admin`,
);
export const ERR_MANAGER_OUT_OF_SCOPE = httpError(
  'CORDON_ERR_MANAGER_OUT_OF_SCOPE',
  403,
  (what: string) => `${what} is outside the VM groups your role is scoped to`,
);
export const ERR_MANAGER_CSRF = httpError(
  'CORDON_ERR_MANAGER_CSRF',
  403,
  () => 'a change through a session needs the x-cordon-csrf header the sign-in returned (cross-site request refused)',
);
export const ERR_MANAGER_NOT_FOUND = httpError(
  'CORDON_ERR_MANAGER_NOT_FOUND',
  404,
  (what: string) => `${what} does not exist`,
);
export const ERR_MANAGER_NO_ROUTE = httpError(
  'CORDON_ERR_MANAGER_NO_ROUTE',
  404,
  (method: string, url: string) => `there is no ${method} ${url}; the API is described at /api/v1/openapi.json`,
);
export const ERR_MANAGER_CONFLICT = httpError('CORDON_ERR_MANAGER_CONFLICT', 409, (detail: string) => detail);
export const ERR_MANAGER_BAD_REQUEST = httpError(
  'CORDON_ERR_MANAGER_BAD_REQUEST',
  400,
  (detail: string) => `${detail}; the API is described at /api/v1/openapi.json`,
);
export const ERR_MANAGER_UNAVAILABLE = httpError(
  'CORDON_ERR_MANAGER_UNAVAILABLE',
  503,
  (what: string, detail: string) => `${what} is not available (${detail}); try again`,
);
export const ERR_MANAGER_INTERNAL = httpError(
  'CORDON_ERR_MANAGER_INTERNAL',
  500,
  (id: string) => `the manager failed on this request (request ${id} in its log)`,
);
export const ERR_MANAGER_PLAIN_HTTP = httpError(
  'CORDON_ERR_MANAGER_PLAIN_HTTP',
  500,
  (host: string) =>
    `the manager would listen on ${host} without TLS; plain HTTP is only allowed on loopback: set manager.tls.certFile and keyFile, or listen on 127.0.0.1`,
);
export const ERR_MANAGER_SECRET = httpError(
  'CORDON_ERR_MANAGER_SECRET',
  500,
  (detail: string) =>
    `the manager has no usable secret (${detail}); set manager.secretFile or CORDON_MANAGER_SECRET (64+ hex digits), or let it make <data dir>/secrets/manager.key`,
);
export const ERR_MANAGER_RECORD = httpError(
  'CORDON_ERR_MANAGER_RECORD',
  500,
  (key: string, detail: string) =>
    `policy-topic record ${key} is not usable by the manager (${detail}); it was skipped`,
);
