import { readTable, type Bus } from '@cordon/bus';
import { connectorFor, type SourceConfig } from '@cordon/inventory';
import type { PlatformConnector, PlatformState, PlatformVm } from '@cordon/platform';
import type { Context } from '@cordon/runtime';
import { codecFor, TOPICS, type InventoryRecord } from '@cordon/schemas';
import { ERR_USAGE } from './errors.js';
import { formatTable } from './format.js';

/**
 * `cordon vms` and `cordon inventory watch`: the VMs as the platforms (or, without --source,
 * the inventory topic) know them. Sources are URLs: vsphere+https://HOST/sdk (credentials from
 * --credentials FILE or CORDON_VSPHERE_USERNAME / CORDON_VSPHERE_PASSWORD, --ca FILE or
 * --insecure), libvirt+qemu:///system (+ssh, +tcp), file:///PATH.yaml.
 */
export const SOURCE_OPTIONS = {
  source: { type: 'string', multiple: true },
  credentials: { type: 'string' },
  ca: { type: 'string' },
  insecure: { type: 'boolean' },
  format: { type: 'string' },
} as const;

/** One VM, as the commands print it (JSON lines or a table). */
export interface VmRow {
  id: string;
  name: string;
  host: string | null;
  power: string | null;
  guest_os: string | null;
  macs: string[];
  ips: string[];
  snapshot: string | null;
  source: string;
}

function formatOf(v: unknown, dflt: 'table' | 'json'): 'table' | 'json' {
  const f = (v as string | undefined) ?? dflt;
  if (f !== 'table' && f !== 'json') throw ERR_USAGE(`--format must be table or json, not "${f}"`);
  return f;
}

export function sourcesFrom(values: Record<string, unknown>): SourceConfig[] {
  const urls = (values.source as string[] | undefined) ?? [];
  return urls.map((url) => ({
    url,
    insecure: values.insecure === true,
    pollMs: 1000,
    ...(values.credentials ? { credentialsFile: values.credentials as string } : {}),
    ...(values.ca ? { caFile: values.ca as string } : {}),
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

/** The inventory topic's VMs (what the running pipeline knows), host names resolved from its host records. */
export async function rowsOfTopic(bus: Bus): Promise<VmRow[]> {
  const codec = codecFor(TOPICS.inventory);
  const recs: InventoryRecord[] = [];
  for (const [, r] of await readTable(bus, TOPICS.inventory)) if (r.value) recs.push(codec.decode(r.value));
  const hostName = new Map(recs.filter((r) => r.kind === 'host').map((r) => [r.id, r.name]));
  return recs
    .filter((r) => r.kind === 'vm')
    .map((r) => ({
      id: r.id,
      name: r.name,
      host: r.host === null ? null : (hostName.get(r.host) ?? r.host),
      power: r.power,
      guest_os: r.guest_os,
      macs: r.nics.map((n) => n.mac),
      ips: r.nics.flatMap((n) => n.ips),
      snapshot: r.snapshot,
      source: r.source ?? 'inventory file (cordon inventory apply)',
    }));
}

function print(rows: VmRow[], format: 'table' | 'json', out: (s: string) => void): void {
  const sorted = [...rows].sort((a, b) => a.name.localeCompare(b.name) || a.id.localeCompare(b.id));
  if (format === 'json') {
    for (const r of sorted) out(JSON.stringify(r));
    return;
  }
  out(formatTable(sorted.map((r) => ({ name: r.name, id: r.id, host: r.host, power: r.power, guest_os: r.guest_os, macs: r.macs.join(','), ips: r.ips.join(','), snapshot: r.snapshot }))));
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

/** `cordon vms`: from the platforms named, else from the inventory topic. */
export async function vmsCommand(values: Record<string, unknown>, deps: { ctx: Context; out: (s: string) => void; bus: () => Promise<Bus> }): Promise<number> {
  const format = formatOf(values.format, 'table');
  const sources = sourcesFrom(values);
  const rows = sources.length ? await snapshots(sources, deps.ctx) : await rowsOfTopic(await deps.bus());
  print(rows, format, deps.out);
  return 0;
}

/**
 * `cordon inventory watch --source URL`: the platform's VMs now (--once: then exit), then its
 * changes and lifecycle events as they come, one JSON line each (`type`: vm, removed, host,
 * event), until Ctrl-C.
 */
export async function inventoryWatchCommand(
  values: Record<string, unknown>,
  deps: { ctx: Context; out: (s: string) => void; untilSignal: () => Promise<unknown> },
): Promise<number> {
  const sources = sourcesFrom(values);
  if (sources.length === 0) throw ERR_USAGE('"cordon inventory watch" needs --source URL (vsphere+https://HOST/sdk, libvirt+qemu:///system, file:///PATH)');
  const format = formatOf(values.format, 'json');
  if (values.once) {
    print(await snapshots(sources, deps.ctx), format, deps.out);
    return 0;
  }
  const connectors: PlatformConnector[] = sources.map((s) => connectorFor(s, deps.ctx));
  const line = (o: object) => deps.out(JSON.stringify(o));
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
        line({ type: 'host', id: h.id, name: h.name, cluster: h.cluster, connection: h.connection, source: c.source });
      },
      onEvent: (ev) => line({ type: 'event', ...ev, source: c.source }),
      onStatus: (s) => {
        if (!s.connected) deps.ctx.log.warn({ source: c.source, err: s.error }, 'The platform is not reachable; reconnecting.');
      },
    });
  });
  await Promise.race([deps.untilSignal(), ...runs]);
  for (const c of connectors) await c.stop();
  return 0;
}
