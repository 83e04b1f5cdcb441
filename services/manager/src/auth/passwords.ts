import { createHmac, randomBytes, scrypt, timingSafeEqual } from 'node:crypto';

/**
 * Password hashes: scrypt over HMAC-SHA256(pepper, password), with a random salt and the
 * cost stored beside the hash (`scrypt$N$r$p$salt$hash`, base64url). The pepper is the
 * manager secret, which is not on the policy topic: a reader of the topic (every stage, the
 * agents) gets hashes it cannot even start guessing against.
 */
export interface ScryptCost {
  N: number;
  r: number;
  p: number;
}

export const DEFAULT_COST: ScryptCost = { N: 1 << 15, r: 8, p: 1 };
const KEY_LEN = 32;

function derive(password: string, salt: Buffer, cost: ScryptCost, pepper: Buffer): Promise<Buffer> {
  const input = createHmac('sha256', pepper).update(password, 'utf8').digest();
  return new Promise((resolve, reject) => {
    scrypt(input, salt, KEY_LEN, { N: cost.N, r: cost.r, p: cost.p, maxmem: 128 * cost.N * cost.r * 2 }, (err, key) =>
      err ? reject(err) : resolve(key),
    );
  });
}

export async function hashPassword(password: string, pepper: Buffer, cost: ScryptCost = DEFAULT_COST): Promise<string> {
  const salt = randomBytes(16);
  const key = await derive(password, salt, cost, pepper);
  return ['scrypt', cost.N, cost.r, cost.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

export async function verifyPassword(password: string, stored: string, pepper: Buffer): Promise<boolean> {
  const [alg, n, r, p, salt, hash] = stored.split('$');
  if (alg !== 'scrypt' || !salt || !hash) return false;
  const want = Buffer.from(hash, 'base64url');
  const got = await derive(
    password,
    Buffer.from(salt, 'base64url'),
    { N: Number(n), r: Number(r), p: Number(p) },
    pepper,
  );
  return got.length === want.length && timingSafeEqual(got, want);
}

/** A hash nobody's password matches, verified against when the user does not exist (same cost, same time). */
export async function decoyHash(pepper: Buffer, cost: ScryptCost): Promise<string> {
  return hashPassword(randomBytes(32).toString('base64url'), pepper, cost);
}

/** Passwords people choose: long enough, not absurdly long (scrypt input is hashed first anyway). */
export function passwordProblem(password: string): string | null {
  if (password.length < 12) return 'a password needs at least 12 characters';
  if (password.length > 1024) return 'a password has at most 1024 characters';
  return null;
}
