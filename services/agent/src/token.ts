import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { defineError } from '@cordon/runtime';

/**
 * Enrollment tokens: `base64url(payload).base64url(HMAC-SHA256(secret, payload))`, payload
 * `{ v: 1, vm, jti, exp }`. Made by `cordon agents token` with the cluster's enrollment
 * secret; whoever holds the secret (the coordinator) verifies them. The agent id is derived
 * from the token id, so one token enrolls exactly one agent.
 */
export interface EnrollPayload {
  v: 1;
  vm: string;
  jti: string;
  /** Expiry, ms since epoch. */
  exp: number;
}

export const ERR_TOKEN = defineError(
  'CORDON_ERR_AGENT_TOKEN',
  (detail: string) => `enrollment token rejected: ${detail}; make a new one with "cordon agents token --vm <vm>"`,
);

const b64 = (b: Buffer) => b.toString('base64url');

export function makeEnrollToken(secret: Buffer, vm: string, ttlMs: number, nowMs: number): string {
  if (secret.length < 32) throw ERR_TOKEN('the enrollment secret is shorter than 32 bytes');
  if (!vm || vm.length > 256) throw ERR_TOKEN('the VM name must be 1..256 characters');
  const payload: EnrollPayload = { v: 1, vm, jti: randomBytes(16).toString('hex'), exp: nowMs + ttlMs };
  const body = Buffer.from(JSON.stringify(payload));
  return `${b64(body)}.${b64(createHmac('sha256', secret).update(body).digest())}`;
}

/** Read a token's claims without trusting them (the agent has no secret). */
export function readEnrollToken(token: string): EnrollPayload {
  const parts = token.trim().split('.');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw ERR_TOKEN('it is not of the form <payload>.<signature>');
  let p: unknown;
  try {
    p = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
  } catch {
    throw ERR_TOKEN('its payload is not JSON');
  }
  const o = p as Partial<EnrollPayload>;
  if (
    o.v !== 1 ||
    typeof o.vm !== 'string' ||
    (o as { typ?: unknown }).typ !== undefined ||
    typeof o.jti !== 'string' ||
    !/^[0-9a-f]{32}$/.test(o.jti) ||
    typeof o.exp !== 'number'
  ) {
    throw ERR_TOKEN('its payload lacks v, vm, jti or exp');
  }
  return o as EnrollPayload;
}

/** Verify signature and expiry (constant-time comparison). */
export function verifyEnrollToken(token: string, secret: Buffer, nowMs: number): EnrollPayload {
  const payload = readEnrollToken(token);
  const [body, sig] = token.trim().split('.') as [string, string];
  const want = createHmac('sha256', secret).update(Buffer.from(body, 'base64url')).digest();
  const got = Buffer.from(sig, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want))
    throw ERR_TOKEN("its signature does not match this cluster's enrollment secret");
  if (payload.exp <= nowMs) throw ERR_TOKEN(`it expired at ${new Date(payload.exp).toISOString()}`);
  return payload;
}

export function agentIdFor(payload: EnrollPayload): string {
  return `agt-${payload.jti.slice(0, 16)}`;
}

/**
 * Host enrollment tokens, for a hypervisor host's watchdog: the same form and secret, payload
 * `{ v: 1, typ: 'host', host, jti, exp }`. The payload names no `vm`, so an agent token reader
 * refuses it, and a host token reader refuses any payload without `typ: 'host'` — a token made
 * for a VM called like a host never enrolls that host's watchdog, nor the other way round.
 */
export interface HostEnrollPayload {
  v: 1;
  typ: 'host';
  host: string;
  jti: string;
  /** Expiry, ms since epoch. */
  exp: number;
}

export const ERR_HOST_TOKEN = defineError(
  'CORDON_ERR_HOST_TOKEN',
  (detail: string) =>
    `host enrollment token rejected: ${detail}; make a new one with "cordon hosts token --host <host>"`,
);

export function makeHostToken(secret: Buffer, host: string, ttlMs: number, nowMs: number): string {
  if (secret.length < 32) throw ERR_HOST_TOKEN('the enrollment secret is shorter than 32 bytes');
  if (!host || host.length > 128) throw ERR_HOST_TOKEN('the host name must be 1..128 characters');
  const payload: HostEnrollPayload = {
    v: 1,
    typ: 'host',
    host,
    jti: randomBytes(16).toString('hex'),
    exp: nowMs + ttlMs,
  };
  const body = Buffer.from(JSON.stringify(payload));
  return `${b64(body)}.${b64(createHmac('sha256', secret).update(body).digest())}`;
}

/** Read a host token's claims without trusting them (the watchdog has no secret). */
export function readHostToken(token: string): HostEnrollPayload {
  const parts = token.trim().split('.');
  if (parts.length !== 2 || !parts[0] || !parts[1]) throw ERR_HOST_TOKEN('it is not of the form <payload>.<signature>');
  let p: unknown;
  try {
    p = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
  } catch {
    throw ERR_HOST_TOKEN('its payload is not JSON');
  }
  const o = p as Partial<HostEnrollPayload> & { vm?: unknown };
  if (
    o.v !== 1 ||
    o.typ !== 'host' ||
    o.vm !== undefined ||
    typeof o.host !== 'string' ||
    !o.host ||
    typeof o.jti !== 'string' ||
    !/^[0-9a-f]{32}$/.test(o.jti) ||
    typeof o.exp !== 'number'
  ) {
    throw ERR_HOST_TOKEN('it is not a host token (v, typ "host", host, jti, exp)');
  }
  return o as HostEnrollPayload;
}

/** Verify a host token's signature and expiry (constant-time comparison). */
export function verifyHostToken(token: string, secret: Buffer, nowMs: number): HostEnrollPayload {
  const payload = readHostToken(token);
  const [body, sig] = token.trim().split('.') as [string, string];
  const want = createHmac('sha256', secret).update(Buffer.from(body, 'base64url')).digest();
  const got = Buffer.from(sig, 'base64url');
  if (got.length !== want.length || !timingSafeEqual(got, want))
    throw ERR_HOST_TOKEN("its signature does not match this cluster's enrollment secret");
  if (payload.exp <= nowMs) throw ERR_HOST_TOKEN(`it expired at ${new Date(payload.exp).toISOString()}`);
  return payload;
}
