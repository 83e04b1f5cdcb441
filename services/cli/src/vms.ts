import { connectorFor, type SourceConfig } from '@cordon/inventory';
import type { PlatformConnector, PlatformState, PlatformVm } from '@cordon/platform';
import type { Context } from '@cordon/runtime';
import type { FlagSpec, Invocation } from './args.js';
import { configFrom, contextFrom, out } from './cli-context.js';
import { runOp } from './remote.js';
import { ERR_USAGE } from './errors.js';
import { formatTable } from './format.js';
import type { AssignmentRow, VmRow } from './inventory-rows.js';
import { onSignal } from './instance.js';

/**
 * `cordon vms` and `cordon inventory watch`: the VMs as the platforms (or, without --source,
 * the inventory topic) know them. Sources are URLs: vsphere+https://HOST/sdk (credentials from
 * --credentials FILE or CORDON_VSPHERE_USERNAME / CORDON_VSPHERE_PASSWORD, --ca FILE or
 * --insecure), libvirt+qemu:///system (+ssh, +tcp), file:///PATH.yaml.
 */
export const SOURCE_FLAGS: readonly FlagSpec[] = [
  {
    name: 'source',
    type: 'string',
    value: 'URL',
    multiple: true,
    help: 'a platform: vsphere+https://HOST/sdk (vCenter or ESXi), libvirt+qemu:///system (or +ssh://, +tcp://), file:///PATH.yaml; repeatable',
  },
  {
    name: 'credentials',
    type: 'string',
    value: 'FILE',
    defaultText: 'CORDON_VSPHERE_USERNAME / CORDON_VSPHERE_PASSWORD',
    help: 'vSphere: a file of KEY=VALUE lines CORDON_VSPHERE_USERNAME=… and CORDON_VSPHERE_PASSWORD=…',
  },
  {
    name: 'ca',
    type: 'string',
    value: 'FILE',
    help: "vSphere: the PEM of the CA that signed the server's certificate",
  },
  { name: 'insecure', type: 'boolean', help: 'vSphere: accept any certificate (labs only; warns)' },
];

export function sourcesFrom(inv: Invocation): SourceConfig[] {
  return inv.list('source').map((url) => ({
    url,
    insecure: inv.bool('insecure'),
    pollMs: 1000,
    ...(inv.str('credentials') ? { credentialsFile: inv.str('credentials')! } : {}),
    ...(inv.str('ca') ? { caFile: inv.str('ca')! } : {}),
  }));
}

/** A platform's VMs as rows; the host is named as the platform names it. */
export function rowsOfState(state: PlatformState, source: string): VmRow[] {
  const hostName = new Map(state.hosts.map((h) => [h.id, h.name]));
  return state.vms.map((v) => rowOfVm(v, source, hostName));
}

function rowOfVm(v: PlatformVm, source: string, hostName: Map<string, string>): VmRow {
  return {
    id: v.id,
    name: v.name,
    host: v.host === null ? null : (hostName.get(v.host) ?? v.host),
    power: v.power,
    guest_os: v.guestOs,
    macs: v.nics.map((n) => n.mac),
    ips: v.nics.flatMap((n) => n.ips),
    snapshot: v.snapshot,
    source,
  };
}

function print(rows: VmRow[], format: 'table' | 'json', out: (s: string) => void): void {
  const sorted = [...rows].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  if (format === 'json') {
    for (const r of sorted) out(JSON.stringify(r));
    return;
  }
  const withProtection = sorted.some((r) => r.protection !== undefined);
  out(
    formatTable(
      sorted.map((r) => ({
        name: r.name,
        id: r.id,
        host: r.host,
        power: r.power,
        ...(withProtection
          ? {
              protection: r.protection ?? '-',
              enforcer: r.enforcer ?? '-',
              gap_ms: r.gap_ms ?? '-',
              agent: r.agent_state ?? '-',
              policy: r.policy_version ?? '-',
            }
          : {}),
        guest_os: r.guest_os,
        macs: r.macs.join(','),
        ips: r.ips.join(','),
        snapshot: r.snapshot,
      })),
    ),
  );
}

async function snapshots(sources: SourceConfig[], ctx: Context): Promise<VmRow[]> {
  const rows: VmRow[] = [];
  for (const s of sources) {
    const c = connectorFor(s, ctx);
    try {
      rows.push(...rowsOfState(await c.snapshot(), c.source));
    } finally {
      await c.stop();
    }
  }
  return rows;
}

/** `cordon vms`: from the platforms named, else from the inventory topic (through the running instance, if one). */
export async function vmsCommand(inv: Invocation): Promise<number> {
  const format = inv.str('format') === 'json' ? 'json' : 'table';
  const ctx = contextFrom(inv);
  const sources = sourcesFrom(inv);
  let rows: VmRow[];
  if (sources.length) rows = await snapshots(sources, ctx);
  else {
    rows = [];
    await runOp({
      config: configFrom(inv),
      ctx,
      name: 'inventory-list',
      input: {},
      waitMs: inv.num('wait')!,
      onEvent: (ev) => 'row' in ev && rows.push(ev.row as unknown as VmRow),
    });
  }
  print(rows, format, out);
  return 0;
}

/**
 * `cordon inventory watch --source URL`: the platform's VMs now (--once: then exit), then its
 * changes and lifecycle events as they come, one JSON line each (`type`: vm, removed, host,
 * event), until Ctrl-C.
 */
export async function inventoryWatchCommand(inv: Invocation): Promise<number> {
  const sources = sourcesFrom(inv);
  if (sources.length === 0)
    throw ERR_USAGE(
      '"cordon inventory watch" needs --source URL (vsphere+https://HOST/sdk, libvirt+qemu:///system, file:///PATH)',
    );
  const format = inv.str('format') === 'table' ? 'table' : 'json';
  const ctx = contextFrom(inv);
  if (inv.bool('once')) {
    print(await snapshots(sources, ctx), format, out);
    return 0;
  }
  const connectors: PlatformConnector[] = sources.map((s) => connectorFor(s, ctx));
  const line = (o: object) => out(JSON.stringify(o));
  const signal = onSignal(ctx.log);
  try {
    const runs = connectors.map((c) => {
      const hostName = new Map<string, string>();
      return c.run({
        onSync: (state) => {
          for (const h of state.hosts) hostName.set(h.id, h.name);
          for (const v of state.vms) line({ type: 'vm', ...rowOfVm(v, c.source, hostName) });
        },
        onVm: (v) => line({ type: 'vm', ...rowOfVm(v, c.source, hostName) }),
        onVmRemoved: (id) => line({ type: 'removed', id, source: c.source }),
        onHost: (h) => {
          hostName.set(h.id, h.name);
          line({
            type: 'host',
            id: h.id,
            name: h.name,
            cluster: h.cluster,
            connection: h.connection,
            source: c.source,
          });
        },
        onEvent: (ev) => line({ type: 'event', ...ev, source: c.source }),
        onStatus: (st) => {
          if (!st.connected)
            ctx.log.warn({ source: c.source, err: st.error }, 'The platform is not reachable; reconnecting.');
        },
      });
    });
    await Promise.race([signal.received, ...runs]);
  } finally {
    signal.dispose();
    for (const c of connectors) await c.stop();
  }
  return 0;
}

/** `cordon assignments --vm ID [--history]`: who protects the VM, and why each change happened. */
export async function assignmentsCommand(inv: Invocation): Promise<number> {
  const vm = inv.str('vm')!;
  const rows: AssignmentRow[] = [];
  await runOp({
    config: configFrom(inv),
    ctx: contextFrom(inv),
    name: 'assignments',
    input: { vm, history: inv.bool('history') },
    waitMs: inv.num('wait')!,
    onEvent: (ev) => 'row' in ev && rows.push(ev.row as unknown as AssignmentRow),
  });
  if (inv.str('format') === 'json') for (const r of rows) out(JSON.stringify(r));
  else
    out(
      rows.length
        ? formatTable(rows as unknown as Array<Record<string, unknown>>)
        : `No assignment of VM ${vm} is on the assignments topic (is the coordinator running?).`,
    );
  return 0;
}
