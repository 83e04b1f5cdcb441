import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * API tokens and session ids. An API token is `cdn_<id>_<secret>`: the id finds its record
 * (`token:<id>` on the policy topic), the secret (256 random bits) is shown once and stored
 * only as its SHA-256. A session id is 256 random bits in an HttpOnly cookie, stored as
 * `session:<sha256>`. Neither is ever logged: the log redacts the headers that carry them.
 */
export const TOKEN_PREFIX = 'cdn_';
const TOKEN_RE = /^cdn_([a-z0-9]{12})_([A-Za-z0-9_-]{43})$/;

export const sha256Hex = (s: string): string => createHash('sha256').update(s, 'utf8').digest('hex');

export function newToken(): { id: string; secret: string; token: string; hash: string } {
  const id = randomBytes(9)
    .toString('base64url')
    .toLowerCase()
    .replace(/[^a-z0-9]/g, '0')
    .slice(0, 12)
    .padEnd(12, '0');
  const secret = randomBytes(32).toString('base64url');
  return { id, secret, token: `${TOKEN_PREFIX}${id}_${secret}`, hash: sha256Hex(secret) };
}

export function parseToken(token: string): { id: string; secret: string } | null {
  const m = TOKEN_RE.exec(token);
  return m ? { id: m[1]!, secret: m[2]! } : null;
}

export function sameHash(secret: string, hashHex: string): boolean {
  const got = Buffer.from(sha256Hex(secret), 'hex');
  const want = Buffer.from(hashHex, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}

export function newSessionId(): { sid: string; hash: string } {
  const sid = randomBytes(32).toString('base64url');
  return { sid, hash: sha256Hex(sid) };
}

/**
 * The CSRF token of a session: derived from its id, so it needs no storage and no other
 * site can know it (it cannot read the HttpOnly cookie). The console sends it back in the
 * `x-cordon-csrf` header on every change (double submit).
 */
export function csrfOf(sid: string): string {
  return createHmac('sha256', sid).update('cordon-csrf').digest('base64url');
}

export function sameString(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}
