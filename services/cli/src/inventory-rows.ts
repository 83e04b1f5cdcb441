import { readTable, type Bus } from '@cordon/bus';
import { codecFor, TOPICS, type InventoryRecord } from '@cordon/schemas';

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
      snapshot: r.snapshot ?? null,
      source: r.source ?? 'inventory file (cordon inventory apply)',
    }));
}

