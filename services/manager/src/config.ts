import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { ERR_MANAGER_PLAIN_HTTP, ERR_MANAGER_SECRET } from './errors.js';

export const managerConfigSchema = z
  .object({
    /** HOST:PORT to listen on; port 0 picks a free one. Plain HTTP only on loopback. */
    listen: z
      .string()
      .regex(/^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]+):\d{1,5}$/, 'HOST:PORT')
      .default('127.0.0.1:7480'),
    tls: z
      .object({ certFile: z.string().min(1), keyFile: z.string().min(1) })
      .strict()
      .optional(),
    /** The manager secret (64+ hex digits): peppers password hashes. Else CORDON_MANAGER_SECRET, else <data dir>/secrets/manager.key (made when missing). Every instance needs the same one. */
    secretFile: z.string().min(1).optional(),
    /** The enrollment secret for agent tokens (as the coordinator's enrollSecretFile); else CORDON_ENROLL_SECRET, else <data dir>/secrets/enroll.key. */
    enrollSecretFile: z.string().min(1).optional(),
    sessionTtlS: z
      .number()
      .int()
      .min(60)
      .max(7 * 86_400)
      .default(8 * 3600),
    /** Longest life of an API token. */
    maxTokenTtlS: z
      .number()
      .int()
      .min(60)
      .max(366 * 86_400)
      .default(90 * 86_400),
    login: z
      .object({
        maxFailures: z.number().int().min(1).max(100).default(5),
        windowS: z.number().int().min(1).default(900),
        lockoutS: z.number().int().min(1).default(900),
        perIpPerMinute: z.number().int().min(1).default(30),
      })
      .strict()
      .default({}),
    /** scrypt cost of new password hashes (log2 N); 15 = 32 MiB and ~100 ms. */
    scryptLogN: z.number().int().min(10).max(20).default(15),
    /** The console's built files (default: the package's console/dist). */
    consoleDir: z.string().min(1).optional(),
    /** Follower groups' prefix (the manager commits nothing: every instance reads every table). */
    groupId: z.string().min(1).default('cordon-manager'),
    /** Which policy the inventory views resolve (as the coordinator's policyId). */
    policyId: z.string().min(1).default('default'),
    /** Rows an alerts or audit page holds at most. */
    maxPage: z.number().int().min(1).max(10_000).default(1000),
  })
  .strict();

export type ManagerConfig = z.infer<typeof managerConfigSchema>;

export function splitListen(listen: string): { host: string; port: number } {
  const i = listen.lastIndexOf(':');
  return { host: listen.slice(0, i).replace(/^\[|\]$/g, ''), port: Number(listen.slice(i + 1)) };
}

export function isLoopback(host: string): boolean {
  if (host === 'localhost') return true;
  if (isIP(host) === 4) return host.startsWith('127.');
  return host === '::1';
}

/** Refuse plain HTTP beyond loopback. */
export function checkListen(config: ManagerConfig): void {
  const { host } = splitListen(config.listen);
  if (!config.tls && !isLoopback(host)) throw ERR_MANAGER_PLAIN_HTTP(host);
}

/** A 32+ byte secret: from a file, an environment variable, or a key made once under the data dir. */
export function loadSecret(opts: {
  file?: string | undefined;
  envName: string;
  env: NodeJS.ProcessEnv;
  dataDir: string;
  keyFile: string;
}): Buffer {
  const fromHex = (hex: string, where: string) => {
    const h = hex.trim();
    if (!/^([0-9a-fA-F]{2}){32,}$/.test(h) || /^0+$/.test(h))
      throw ERR_MANAGER_SECRET(`${where} is not 64 or more hex digits (an even number, not all zero)`);
    return Buffer.from(h, 'hex');
  };
  if (opts.file) return fromHex(readFileSync(opts.file, 'utf8'), opts.file);
  const fromEnv = opts.env[opts.envName];
  if (fromEnv) return fromHex(fromEnv, opts.envName);
  const file = join(opts.dataDir, 'secrets', opts.keyFile);
  if (!existsSync(file)) {
    mkdirSync(join(opts.dataDir, 'secrets'), { recursive: true, mode: 0o700 });
    try {
      writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
        throw ERR_MANAGER_SECRET.withCause(err, `cannot write ${file}: ${(err as Error).message}`);
    }
  }
  return fromHex(readFileSync(file, 'utf8'), file);
}

export const MANAGER_SECRET_ENV = 'CORDON_MANAGER_SECRET';
export const ENROLL_SECRET_ENV = 'CORDON_ENROLL_SECRET';
