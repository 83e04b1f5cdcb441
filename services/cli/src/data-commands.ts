import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { TOPICS } from '@cordon/schemas';
import type { Context } from '@cordon/runtime';
import type { InventoryApplyResult, PolicyApplyResult } from '@cordon/policy';
import type { Invocation } from './args.js';
import { configFrom, contextFrom, out } from './cli-context.js';
import type { OpEvent, OpInput, OpName } from './control/protocol.js';
import { formatTable } from './format.js';
import type { AlertView, BlockView } from './ops.js';
import { ProgressBar } from './progress.js';
import type { ReplayReport } from './replay.js';
import { runOp } from './remote.js';
import { checkReadOnlySql } from './ops.js';
import { managerCall, policyBodyOf } from './manager-client.js';
import { ERR_USAGE } from './errors.js';

/**
 * The commands that work on the data of a data dir — through the running instance when there
 * is one (remote.ts), else by opening it — and print the result: rows, blocks, alerts on
 * stdout, logs and progress on stderr.
 */

const actor = (): string => `cli:${process.env.USER ?? process.env.LOGNAME ?? 'unknown'}`;

async function op<N extends OpName>(
  inv: Invocation,
  ctx: Context,
  name: N,
  input: OpInput<N>,
  onEvent: (ev: OpEvent) => void = () => undefined,
  signal?: AbortSignal,
) {
  return runOp({
    config: configFrom(inv),
    ctx,
    name,
    input,
    onEvent,
    waitMs: inv.num('wait')!,
    ...(signal ? { signal } : {}),
  });
}

export async function queryCommand(inv: Invocation): Promise<number> {
  const sql = inv.args[0]!;
  // refused here already, with the same coded error the instance gives
  checkReadOnlySql(sql);
  const json = inv.str('format') === 'json';
  const rows: Array<Record<string, unknown>> = [];
  await op(inv, contextFrom(inv), 'query', { sql }, (ev) => {
    if (!('row' in ev)) return;
    if (json) out(JSON.stringify(ev.row));
    else rows.push(ev.row);
  });
  if (!json) out(formatTable(rows));
  return 0;
}

export async function policyApplyCommand(inv: Invocation): Promise<number> {
  const dryRun = inv.bool('dry-run');
  if (inv.str('manager')) {
    if (dryRun) throw ERR_USAGE('--dry-run works on the data dir, not through --manager');
    const { id, body } = policyBodyOf(resolve(inv.args[0]!));
    const r = await managerCall<{ id: string; version: number; updatedBy: string }>(
      inv,
      'PUT',
      `/policies/${encodeURIComponent(id)}`,
      body,
    );
    out(`policy ${r.id}: version ${r.version}, written by the manager as ${r.updatedBy} (audited)`);
    return 0;
  }
  const r = (await op(inv, contextFrom(inv), 'policy-apply', {
    file: resolve(inv.args[0]!),
    dryRun,
    by: inv.str('by') ?? actor(),
  })) as PolicyApplyResult;
  const version = r.changed ? `${dryRun ? 'would be ' : ''}version ${r.version}` : `unchanged at version ${r.version}`;
  if (dryRun)
    out(
      `policy ${r.id}: ${version}; ${r.rulesetRecords} ruleset record(s); would write ${r.records} record(s) to ${TOPICS.policy} (dry run: nothing was written)`,
    );
  else
    out(
      `policy ${r.id}: ${version}; ${r.rulesetRecords} ruleset record(s); ${r.written} record(s) written to ${TOPICS.policy}`,
    );
  return 0;
}

export async function inventoryApplyCommand(inv: Invocation): Promise<number> {
  const dryRun = inv.bool('dry-run');
  const r = (await op(inv, contextFrom(inv), 'inventory-apply', {
    file: resolve(inv.args[0]!),
    dryRun,
    prune: inv.bool('prune'),
  })) as InventoryApplyResult;
  const pruned = r.pruned ? ` (${r.pruned} of them removals)` : '';
  if (dryRun)
    out(
      `inventory: ${r.hosts} host(s), ${r.vms} VM(s); would write ${r.records} record(s) to ${TOPICS.inventory}${pruned} (dry run: nothing was written)`,
    );
  else
    out(
      `inventory: ${r.hosts} host(s), ${r.vms} VM(s); ${r.written} record(s) written to ${TOPICS.inventory}${pruned}`,
    );
  return 0;
}

export async function replayCommand(inv: Invocation): Promise<number> {
  const pcap = resolve(inv.str('pcap')!);
  const bar = new ProgressBar(`replay ${inv.str('pcap')}`);
  const input: OpInput<'replay'> = {
    pcap,
    ...(inv.str('sensor') ? { sensor: inv.str('sensor')! } : {}),
    ...(inv.str('vm') ? { vm: inv.str('vm')! } : {}),
    ...(inv.num('batch') !== undefined ? { batch: inv.num('batch')! } : {}),
  };
  let report: ReplayReport;
  try {
    report = (await op(inv, contextFrom(inv, 'cordon-replay'), 'replay', input, (ev) => {
      if ('progress' in ev) bar.update(ev.progress.done, ev.progress.total);
    })) as ReplayReport;
  } finally {
    bar.done();
  }
  out(JSON.stringify(report));
  if (report.error) {
    process.stderr.write(
      `cordon: ${report.error.code}: ${report.error.message} (the frames before it were published; a dead letter was written)\n`,
    );
    return 1;
  }
  return 0;
}

const blockRow = (b: BlockView) => ({
  enforcer: b.enforcer,
  target: b.target,
  action: b.action,
  status: b.status,
  ttl_s: b.ttl_s,
  expires_utc: b.expires.replace('T', ' ').replace(/\.\d+Z$/, ''),
  left:
    b.left_s <= 0
      ? 'expired'
      : b.left_s < 7200
        ? `${Math.ceil(b.left_s / 60)} min`
        : b.left_s < 172800
          ? `${Math.floor(b.left_s / 3600)} h`
          : `${Math.floor(b.left_s / 86400)} days`,
  reason_alert: b.reason_alert,
});

export async function blocksListCommand(inv: Invocation): Promise<number> {
  const json = inv.str('format') === 'json';
  const blocks: BlockView[] = [];
  const r = (await op(inv, contextFrom(inv), 'blocks-list', { all: inv.bool('all') }, (ev) => {
    if (!('block' in ev)) return;
    const b = ev.block as unknown as BlockView;
    if (json) out(JSON.stringify(b));
    else blocks.push(b);
  })) as { blocks: number; inactive: number };
  if (json) return 0;
  if (blocks.length === 0) out(inv.bool('all') ? 'No blocks are on the blocks topic.' : 'No block is in force.');
  else out(formatTable(blocks.map(blockRow)));
  if (!inv.bool('all') && r.inactive > 0) out(`(${r.inactive} expired block(s) not shown: --all lists them)`);
  return 0;
}

export async function blocksLiftCommand(inv: Invocation): Promise<number> {
  const target = inv.args[0]!;
  if (inv.str('manager')) {
    if (!inv.str('reason'))
      throw ERR_USAGE('a block lifted through --manager needs --reason (it goes in the audit trail)');
    const r = await managerCall<{ lifted: Array<{ enforcer: string; target: string; wasActive: boolean }> }>(
      inv,
      'POST',
      '/blocks/lift',
      {
        target,
        reason: inv.str('reason')!,
        ...(inv.str('enforcer') ? { enforcer: inv.str('enforcer')! } : {}),
      },
    );
    for (const l of r.lifted)
      out(`lifted: ${l.target} on ${l.enforcer}${l.wasActive ? '' : ' (it had expired)'} by the manager (audited)`);
    return 0;
  }
  const r = (await op(inv, contextFrom(inv), 'blocks-lift', {
    target,
    by: inv.str('by') ?? actor(),
    ...(inv.str('enforcer') ? { enforcer: inv.str('enforcer')! } : {}),
    ...(inv.str('reason') ? { reason: inv.str('reason')! } : {}),
  })) as { lifted: Array<{ enforcer: string; target: string; wasActive: boolean }> };
  for (const l of r.lifted)
    out(
      `lifted: ${l.target} on ${l.enforcer}${l.wasActive ? '' : ' (it had expired)'}: a tombstone on ${TOPICS.blocks} key "${l.enforcer}|${l.target}"`,
    );
  return 0;
}

const ALERT_COLUMNS: Array<[string, number, (a: AlertView) => string]> = [
  ['published', 19, (a) => a.published.replace('T', ' ').replace(/\.\d+Z$/, '')],
  ['sev', 3, (a) => String(a.severity)],
  ['stage', 10, (a) => a.stage],
  ['rule', 42, (a) => a.rule_id],
  ['src', 15, (a) => a.src_ip ?? ''],
  ['dst', 15, (a) => (a.dst_ip ? `${a.dst_ip}${a.dst_port !== null ? `:${a.dst_port}` : ''}` : (a.vm ?? ''))],
  ['signature', 0, (a) => a.signature],
];
const alertLine = (cells: string[]) =>
  cells
    .map((c, i) => (ALERT_COLUMNS[i]![1] ? c.padEnd(ALERT_COLUMNS[i]![1]) : c))
    .join('  ')
    .trimEnd();

export async function alertsTailCommand(inv: Invocation): Promise<number> {
  const json = inv.str('format') === 'json';
  const follow = inv.bool('follow');
  const abort = new AbortController();
  const stop = () => abort.abort();
  if (follow) {
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  }
  let n = 0;
  try {
    await op(
      inv,
      contextFrom(inv),
      'alerts-tail',
      { sinceMs: inv.num('since')!, follow },
      (ev) => {
        if (!('alert' in ev)) return;
        const a = ev.alert as unknown as AlertView;
        if (!json && n === 0) out(alertLine(ALERT_COLUMNS.map(([h]) => h)));
        n++;
        out(json ? JSON.stringify(a) : alertLine(ALERT_COLUMNS.map(([, , f]) => f(a))));
      },
      abort.signal,
    );
  } finally {
    process.off('SIGINT', stop);
    process.off('SIGTERM', stop);
  }
  if (n === 0 && !json && !follow) out(`No alerts were published in the last ${describeMs(inv.num('since')!)}.`);
  return 0;
}

function describeMs(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} day(s)`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} hour(s)`;
  if (ms % 60_000 === 0) return `${ms / 60_000} minute(s)`;
  return `${ms / 1000} s`;
}

/** cordon users add: a manager user (the first admin), its password from a file or stdin. */
export async function usersAddCommand(inv: Invocation): Promise<number> {
  const file = inv.str('password-file');
  const password = (file ? readFileSync(file, 'utf8') : readFileSync(0, 'utf8')).replace(/\r?\n$/, '');
  const r = (await op(inv, contextFrom(inv), 'users-add', {
    name: inv.args[0]!,
    role: inv.str('role')!,
    password,
    groups: inv.list('group'),
    by: actor(),
  })) as { name: string; role: string; created: boolean };
  out(
    r.created
      ? `user ${r.name} created with role ${r.role}; sign in to the console with it`
      : `user ${r.name} exists already (role ${r.role}); change it in the console or with PATCH /api/v1/users/${r.name}`,
  );
  return 0;
}
