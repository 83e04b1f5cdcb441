import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { makeEnrollToken } from '@cordon/agent';
import type { Invocation } from './args.js';
import { configFrom, contextFrom, out } from './cli-context.js';
import { ERR_USAGE } from './errors.js';
import { formatTable } from './format.js';
import { applyTopics, openBus } from './services.js';

/** The commands that need no running instance: topics, enrollment tokens, and the offline tools (dpi, logtest, rules check). */

export async function topicsApplyCommand(inv: Invocation): Promise<number> {
  const config = configFrom(inv);
  const bus = openBus(config, contextFrom(inv));
  try {
    await applyTopics(bus);
    const list = await bus.admin.listTopics();
    out(formatTable(list.filter((t) => t.name.startsWith('cordon.')).map((t) => ({ topic: t.name, partitions: t.partitions }))));
  } finally {
    await bus.close();
  }
  return 0;
}

export const ENROLL_SECRET_ENV = 'CORDON_ENROLL_SECRET';

/** The cluster's enrollment secret: CORDON_ENROLL_SECRET (hex), else a key file made once under the data dir. */
function enrollSecret(dataDir: string, fromEnv: string | undefined): Buffer {
  if (fromEnv) {
    if (!/^[0-9a-fA-F]{64,}$/.test(fromEnv)) throw ERR_USAGE(`${ENROLL_SECRET_ENV} must be at least 64 hex digits (32 bytes)`);
    return Buffer.from(fromEnv, 'hex');
  }
  const file = join(dataDir, 'secrets', 'enroll.key');
  if (!existsSync(file)) {
    mkdirSync(join(dataDir, 'secrets'), { recursive: true, mode: 0o700 });
    writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
  }
  return Buffer.from(readFileSync(file, 'utf8').trim(), 'hex');
}

export async function agentsTokenCommand(inv: Invocation): Promise<number> {
  const hours = inv.num('ttl-hours')!;
  if (!(hours > 0)) throw ERR_USAGE('--ttl-hours must be between 0 and 720');
  const config = configFrom(inv);
  out(makeEnrollToken(enrollSecret(config.dataDir, process.env[ENROLL_SECRET_ENV]), inv.str('vm')!, hours * 3_600_000, Date.now()));
  return Promise.resolve(0);
}

export async function dpiCommand(inv: Invocation): Promise<number> {
  const { dpiCommand: run } = await import('@cordon/dpi');
  return run({ rules: inv.list('rules'), pcap: inv.str('pcap')!, checksum: inv.bool('no-checksum-validation') ? 'off' : 'auto', stats: inv.bool('stats') });
}

export async function rulesCheckCommand(inv: Invocation): Promise<number> {
  const { rulesCheckCommand: run } = await import('@cordon/dpi');
  return run(['check', ...inv.args]);
}

export async function logtestCommand(inv: Invocation): Promise<number> {
  const { logtestCommand: run } = await import('@cordon/loginspect');
  return run({
    log: inv.str('log')!,
    rules: inv.list('rules'),
    sigma: inv.list('sigma'),
    ...(inv.num('year') !== undefined ? { year: inv.num('year')! } : {}),
    ...(inv.str('hint') !== undefined ? { hint: inv.str('hint')! } : {}),
    quiet: inv.bool('quiet'),
    stats: inv.bool('stats'),
    explain: inv.bool('explain'),
    ...(inv.num('line') !== undefined ? { line: inv.num('line')! } : {}),
    ...(inv.str('fail2ban') !== undefined ? { fail2ban: inv.str('fail2ban')! } : {}),
    fail2banFilters: inv.list('fail2ban-filter'),
    noBuiltin: inv.bool('no-builtin'),
    noCoverage: inv.bool('no-coverage'),
  });
}
