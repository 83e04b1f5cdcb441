import { readFileSync } from 'node:fs';
import { z } from 'zod';
import type { InventoryRecord } from '@cordon/schemas';
import { normalizeMac, plainIpFamily } from './address.js';
import { ERR_POLICY_READ } from './errors.js';
import { parseYamlWith } from './yaml-file.js';

/**
 * The static inventory file (`cordon inventory apply FILE`): hosts and the VMs on them,
 * with their NICs. It stands in for the vSphere/libvirt connectors; the records it writes
 * are the ones a connector would.
 */
const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/, 'letters, digits, "_", ".", ":" and "-" only (up to 128)');
const ip = z.string().refine((s) => plainIpFamily(s) !== 0, { message: 'not a plain IPv4 or IPv6 address' });
const mac = z
  .string()
  .refine((s) => normalizeMac(s) !== null, { message: 'not a MAC address (aa:bb:cc:dd:ee:ff)' })
  .transform((s) => normalizeMac(s)!);

const nic = z
  .object({
    mac,
    ips: z.array(ip).default([]),
    network: z.string().min(1).optional(),
  })
  .strict();

const vm = z
  .object({
    name: z.string().min(1).optional(),
    power: z.enum(['on', 'off', 'suspended']).optional(),
    guestOs: z.string().min(1).optional(),
    nics: z.array(nic).default([]),
  })
  .strict();

export const inventoryFileSchema = z
  .object({
    hosts: z.record(
      name,
      z
        .object({
          name: z.string().min(1).optional(),
          vms: z.record(name, vm).default({}),
        })
        .strict(),
    ),
  })
  .strict()
  .superRefine((inv, ctx) => {
    // One VM, one MAC, one IP: attribution of frames and of alerts depends on it.
    const vmAt = new Map<string, string>();
    const macAt = new Map<string, string>();
    const ipAt = new Map<string, string>();
    for (const [h, host] of Object.entries(inv.hosts)) {
      for (const [v, m] of Object.entries(host.vms)) {
        const prev = vmAt.get(v);
        if (prev)
          ctx.addIssue({
            code: 'custom',
            path: ['hosts', h, 'vms', v],
            message: `VM ${v} is also listed on host ${prev}`,
          });
        vmAt.set(v, h);
        m.nics.forEach((n, i) => {
          const owner = macAt.get(n.mac);
          if (owner)
            ctx.addIssue({
              code: 'custom',
              path: ['hosts', h, 'vms', v, 'nics', i, 'mac'],
              message: `MAC ${n.mac} is also the MAC of ${owner}`,
            });
          macAt.set(n.mac, v);
          n.ips.forEach((a, j) => {
            const o = ipAt.get(a);
            if (o && o !== v)
              ctx.addIssue({
                code: 'custom',
                path: ['hosts', h, 'vms', v, 'nics', i, 'ips', j],
                message: `IP ${a} is also an address of ${o}`,
              });
            ipAt.set(a, v);
          });
        });
      }
    }
  });

export type InventoryFile = z.infer<typeof inventoryFileSchema>;

export function parseInventoryText(text: string, file: string): InventoryFile {
  return parseYamlWith(text, file, inventoryFileSchema);
}

export function readInventoryFile(file: string): InventoryFile {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw ERR_POLICY_READ.withCause(err, file, (err as Error).message);
  }
  return parseInventoryText(text, file);
}

/** InventoryRecord key: 'vm:<id>' or 'host:<id>'. */
export const inventoryKey = (kind: InventoryRecord['kind'], id: string): string => `${kind}:${id}`;

/** The fields a hand-written inventory does not know: what a platform connector fills in. */
export const NOT_FROM_A_PLATFORM = Object.freeze({
  cluster: null,
  connection: null,
  snapshot: null,
  template: false,
  connector: null,
  source: null,
});

/** The records the file stands for, keyed as on the topic. */
export function inventoryRecords(inv: InventoryFile, nowUs: number): Map<string, InventoryRecord> {
  const out = new Map<string, InventoryRecord>();
  for (const [h, host] of Object.entries(inv.hosts)) {
    out.set(inventoryKey('host', h), {
      kind: 'host',
      id: h,
      name: host.name ?? h,
      host: null,
      power: null,
      guest_os: null,
      nics: [],
      updated_us: nowUs,
      ...NOT_FROM_A_PLATFORM,
    });
    for (const [v, m] of Object.entries(host.vms)) {
      out.set(inventoryKey('vm', v), {
        kind: 'vm',
        id: v,
        name: m.name ?? v,
        host: h,
        power: m.power ?? null,
        guest_os: m.guestOs ?? null,
        nics: m.nics.map((n) => ({ mac: n.mac, ips: n.ips, network: n.network ?? null })),
        updated_us: nowUs,
        ...NOT_FROM_A_PLATFORM,
      });
    }
  }
  return out;
}

/** Equal apart from the update time: an unchanged record is not written again. */
export function sameInventory(a: InventoryRecord, b: InventoryRecord): boolean {
  return JSON.stringify({ ...a, updated_us: 0 }) === JSON.stringify({ ...b, updated_us: 0 });
}
