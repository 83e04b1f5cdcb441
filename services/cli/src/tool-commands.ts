import { makeEnrollToken, makeHostToken } from '@cordon/agent';
import type { Invocation } from './args.js';
import { configFrom, contextFrom, out } from './cli-context.js';
import { ERR_USAGE } from './errors.js';
import { formatTable } from './format.js';
import { enrollSecret, ENROLL_SECRET_ENV } from './secrets.js';
import { applyTopics, openBus } from './services.js';

/** The commands that need no running instance: topics, enrollment tokens, and the offline tools (dpi, logtest, rules check). */

export async function topicsApplyCommand(inv: Invocation): Promise<number> {
  const config = configFrom(inv);
  const bus = openBus(config, contextFrom(inv));
  try {
    await applyTopics(bus);
    const list = await bus.admin.listTopics();
    out(
      formatTable(
        list.filter((t) => t.name.startsWith('cordon.')).map((t) => ({ topic: t.name, partitions: t.partitions })),
      ),
    );
  } finally {
    await bus.close();
  }
  return 0;
}

export { ENROLL_SECRET_ENV };

export async function agentsTokenCommand(inv: Invocation): Promise<number> {
  const hours = inv.num('ttl-hours')!;
  if (!(hours > 0)) throw ERR_USAGE('--ttl-hours must be between 0 and 720');
  const config = configFrom(inv);
  out(
    makeEnrollToken(
      enrollSecret(config.dataDir, process.env[ENROLL_SECRET_ENV]),
      inv.str('vm')!,
      hours * 3_600_000,
      Date.now(),
    ),
  );
  return Promise.resolve(0);
}

export async function hostsTokenCommand(inv: Invocation): Promise<number> {
  const hours = inv.num('ttl-hours')!;
  if (!(hours > 0)) throw ERR_USAGE('--ttl-hours must be between 0 and 720');
  const config = configFrom(inv);
  out(
    makeHostToken(
      enrollSecret(config.dataDir, process.env[ENROLL_SECRET_ENV]),
      inv.str('host')!,
      hours * 3_600_000,
      Date.now(),
    ),
  );
  return Promise.resolve(0);
}

function encryptionHandling(v: string | undefined): 'default' | 'full' {
  if (v === undefined || v === 'default' || v === 'full') return v ?? 'default';
  throw ERR_USAGE(`--encryption-handling must be default or full, not "${v}"`);
}

export async function dpiCommand(inv: Invocation): Promise<number> {
  const { dpiCommand: run } = await import('@cordon/dpi');
  return run({
    rules: inv.list('rules'),
    pcap: inv.str('pcap')!,
    checksum: inv.bool('no-checksum-validation') ? 'off' : 'auto',
    encryptionHandling: encryptionHandling(inv.str('encryption-handling')),
    stats: inv.bool('stats'),
  });
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

export async function proctestCommand(inv: Invocation): Promise<number> {
  const { proctestCommand: run } = await import('@cordon/procinspect');
  return run({
    events: inv.str('events')!,
    rules: inv.list('rules'),
    sigma: inv.list('sigma'),
    noBuiltin: inv.bool('no-builtin'),
    quiet: inv.bool('quiet'),
    stats: inv.bool('stats'),
  });
}
