import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import type { ManagerDeps } from '../deps.js';
import { groupDocument, nameSchema, type GroupDocument } from '../documents.js';
import { ERR_MANAGER_CONFLICT, ERR_MANAGER_NOT_FOUND, ERR_MANAGER_OUT_OF_SCOPE } from '../errors.js';
import { addRoute, Serialized } from '../route.js';
import { vmInScope, vmsInScope } from '../scope.js';
import { fromZod } from '../schema.js';

const vmView = z.object({
  id: z.string(),
  name: z.string(),
  host: z.string().nullable(),
  cluster: z.string().nullable(),
  platform: z.string(),
  power: z.string().nullable(),
  guest_os: z.string().nullable(),
  ips: z.array(z.string()),
  macs: z.array(z.string()),
  snapshot: z.string().nullable(),
  protection: z
    .string()
    .nullable()
    .describe("agent, watchdog or none (the coordinator's assignment); null: not assigned yet"),
  enforcer: z.string().nullable(),
  agent_state: z.string().nullable(),
  policy_version: z.number().int().nullable(),
  gap_ms: z
    .number()
    .int()
    .nullable()
    .describe('How long the running VM has had no protector acknowledging its assignment'),
  groups: z.array(z.string()),
  last_alert: z.string().nullable().describe('Time of its newest alert (last 30 days)'),
  last_alert_signature: z.string().nullable(),
});
export type VmView = z.infer<typeof vmView>;

const hostView = z.object({
  id: z.string(),
  name: z.string(),
  cluster: z.string().nullable(),
  connection: z.string().nullable(),
  platform: z.string(),
  vms: z.number().int(),
});

const groupView = groupDocument.extend({
  id: z.string(),
  members: z.number().int(),
  updated: z.string(),
  updatedBy: z.string(),
});

export function inventoryRoutes(app: FastifyInstance, d: ManagerDeps): void {
  const nowUs = () => d.ctx.clock.now() * 1000;
  /**
   * Every VM's row, sorted by id, computed once per change of the tables (and every 5 s, for
   * the gap and heartbeat ages, which a list may show up to 5 s old; one VM's detail is
   * computed live): a list of 10,000 VMs is then a filter and a serialization.
   */
  let cache: { views: number; state: number; at: number; rows: VmView[] } | null = null;
  const allViews = (): VmView[] => {
    const now = d.ctx.clock.now();
    if (cache && cache.views === d.views.version && cache.state === d.state.version && now - cache.at < 5000)
      return cache.rows;
    const rows = computeViews(null).sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
    cache = { views: d.views.version, state: d.state.version, at: now, rows };
    return rows;
  };
  let full: { rows: VmView[]; body: Serialized } | null = null;
  const vmViews = (only: Set<string> | null): VmView[] => {
    const rows = allViews();
    return only ? rows.filter((r) => only.has(r.id)) : rows;
  };
  const computeViews = (only: Set<string> | null): VmView[] => {
    const names = d.views.hostNames();
    const groups = [...d.state.groups.values()];
    const now = nowUs();
    const out: VmView[] = [];
    for (const rec of d.views.vmRecords()) {
      if (only && !only.has(rec.id)) continue;
      const row = d.views.row(rec, now, names);
      const last = d.views.lastAlerts.get(rec.id);
      out.push({
        id: row.id,
        name: row.name,
        host: row.host,
        cluster: rec.host === null ? null : (d.views.inventory.get(`host:${rec.host}`)?.cluster ?? null),
        platform: d.views.platformOf(rec),
        power: row.power,
        guest_os: row.guest_os,
        ips: row.ips,
        macs: row.macs,
        snapshot: row.snapshot,
        protection: row.protection ?? null,
        enforcer: row.enforcer ?? null,
        agent_state: row.agent_state ?? null,
        policy_version: row.policy_version ?? null,
        gap_ms: row.gap_ms ?? null,
        groups: d.views.groupsOf(rec, groups),
        last_alert: last?.ts ?? null,
        last_alert_signature: last?.signature ?? null,
      });
    }
    return out;
  };

  addRoute(app, {
    method: 'GET',
    url: '/inventory/vms',
    access: 'inventory:read',
    tag: 'inventory',
    summary:
      'VMs with their protection (mode, enforcer, agent state, policy version, gap) and last alert; filtered, paged',
    querystring: z
      .object({
        host: z.string().optional(),
        cluster: z.string().optional(),
        group: z.string().optional(),
        protection: z.enum(['agent', 'watchdog', 'none', 'unassigned']).optional(),
        q: z.string().max(200).optional().describe('Part of the id, name or an address'),
        limit: z.coerce.number().int().min(1).max(10_000).default(1000),
        offset: z.coerce.number().int().min(0).default(0),
      })
      .strict(),
    response: z.object({ total: z.number().int(), items: z.array(vmView) }),
    handler(req, reply) {
      const q = req.query;
      const scope = vmsInScope(d, req.identity);
      if (!scope && !q.host && !q.cluster && !q.group && !q.protection && !q.q && q.offset === 0) {
        // the whole list, unscoped: serialized once per computation of the rows
        const rows = allViews();
        if (q.limit >= rows.length) {
          if (full?.rows !== rows)
            full = { rows, body: new Serialized(String(reply.serialize({ total: rows.length, items: rows }))) };
          return full.body;
        }
      }
      let rows = vmViews(scope);
      if (q.host) rows = rows.filter((r) => r.host === q.host);
      if (q.cluster) rows = rows.filter((r) => r.cluster === q.cluster);
      if (q.group) rows = rows.filter((r) => r.groups.includes(q.group!));
      if (q.protection)
        rows = rows.filter((r) =>
          q.protection === 'unassigned' ? r.protection === null : r.protection === q.protection,
        );
      if (q.q)
        rows = rows.filter(
          (r) => r.id.includes(q.q!) || r.name.includes(q.q!) || r.ips.some((ip) => ip.includes(q.q!)),
        );
      return { total: rows.length, items: rows.slice(q.offset, q.offset + q.limit) };
    },
  });

  addRoute(app, {
    method: 'GET',
    url: '/inventory/vms/:id',
    access: 'inventory:read',
    tag: 'inventory',
    summary: 'One VM with its protection',
    params: z.object({ id: z.string() }),
    response: vmView,
    handler(req) {
      const rec = d.views.inventory.get(`vm:${req.params.id}`);
      if (!rec) throw ERR_MANAGER_NOT_FOUND(`VM ${req.params.id}`);
      if (!vmInScope(d, req.identity, rec)) throw ERR_MANAGER_OUT_OF_SCOPE(`VM ${req.params.id}`);
      return computeViews(new Set([rec.id]))[0]!;
    },
  });

  addRoute(app, {
    method: 'GET',
    url: '/inventory/hosts',
    access: 'inventory:read',
    tag: 'inventory',
    summary: 'Hypervisor hosts with their cluster, connection and VM count',
    response: z.array(hostView),
    handler(req) {
      const only = vmsInScope(d, req.identity);
      const count = new Map<string, number>();
      for (const vm of d.views.vmRecords())
        if (vm.host !== null && (!only || only.has(vm.id))) count.set(vm.host, (count.get(vm.host) ?? 0) + 1);
      return d.views
        .hosts()
        .filter((h) => !only || count.has(h.id))
        .map((h) => ({
          id: h.id,
          name: h.name,
          cluster: h.cluster,
          connection: h.connection,
          platform: d.views.platformOf(h),
          vms: count.get(h.id) ?? 0,
        }))
        .sort((a, b) => a.id.localeCompare(b.id));
    },
  });

  const treeVm = z.object({
    id: z.string(),
    name: z.string(),
    power: z.string().nullable(),
    protection: z.string().nullable(),
    gap_ms: z.number().int().nullable(),
    agent_state: z.string().nullable(),
  });
  const treeHost = z.object({
    id: z.string(),
    name: z.string(),
    connection: z.string().nullable(),
    vms: z.array(treeVm),
  });
  addRoute(app, {
    method: 'GET',
    url: '/inventory/tree',
    access: 'inventory:read',
    tag: 'inventory',
    summary: 'The inventory as a tree: platform → cluster → host → VM, with protection state',
    response: z.array(
      z.object({
        platform: z.string(),
        clusters: z.array(z.object({ cluster: z.string().nullable(), hosts: z.array(treeHost) })),
      }),
    ),
    handler(req) {
      const rows = vmViews(vmsInScope(d, req.identity));
      const tree = new Map<string, Map<string | null, Map<string, z.infer<typeof treeHost>>>>();
      const hostNode = (
        platform: string,
        cluster: string | null,
        id: string,
        name: string,
        connection: string | null,
      ) => {
        const p = tree.get(platform) ?? new Map();
        tree.set(platform, p);
        const c = p.get(cluster) ?? new Map();
        p.set(cluster, c);
        const h = c.get(id) ?? { id, name, connection, vms: [] };
        c.set(id, h);
        return h;
      };
      if (req.identity.groups.length === 0)
        for (const h of d.views.hosts()) hostNode(d.views.platformOf(h), h.cluster, h.id, h.name, h.connection);
      for (const r of rows) {
        const rec = d.views.inventory.get(`vm:${r.id}`)!;
        const host = rec.host === null ? undefined : d.views.inventory.get(`host:${rec.host}`);
        const node = hostNode(
          host ? d.views.platformOf(host) : r.platform,
          r.cluster,
          rec.host ?? '(no host)',
          host?.name ?? rec.host ?? '(no host)',
          host?.connection ?? null,
        );
        node.vms.push({
          id: r.id,
          name: r.name,
          power: r.power,
          protection: r.protection,
          gap_ms: r.gap_ms,
          agent_state: r.agent_state,
        });
      }
      return [...tree].map(([platform, clusters]) => ({
        platform,
        clusters: [...clusters].map(([cluster, hosts]) => ({ cluster, hosts: [...hosts.values()] })), // VMs in id order already
      }));
    },
  });

  // ---------------------------------------------------------------- VM groups
  const members = (g: GroupDocument) =>
    d.views
      .vmRecords()
      .filter((vm) => d.views.groupsOf(vm, [{ id: '_', version: 0, updatedUs: 0, updatedBy: '', doc: g }]).length)
      .map((vm) => vm.id);
  const view = (id: string) => {
    const g = d.state.groups.get(id)!;
    return {
      id,
      ...g.doc,
      members: members(g.doc).length,
      updated: new Date(g.updatedUs / 1000).toISOString(),
      updatedBy: g.updatedBy,
    };
  };
  const groupSchema = fromZod(groupView);
  addRoute(app, {
    method: 'GET',
    url: '/groups',
    access: 'groups:read',
    tag: 'groups',
    summary: 'VM groups: VMs chosen by platform, cluster, host, id or name pattern',
    response: { type: 'array', items: groupSchema },
    handler: () => [...d.state.groups.keys()].sort().map(view),
  });
  addRoute(app, {
    method: 'GET',
    url: '/groups/:id',
    access: 'groups:read',
    tag: 'groups',
    summary: 'One VM group and the VMs in it now',
    params: z.object({ id: z.string() }),
    response: groupView.extend({ vms: z.array(z.string()) }),
    handler(req) {
      if (!d.state.groups.has(req.params.id)) throw ERR_MANAGER_NOT_FOUND(`VM group ${req.params.id}`);
      return { ...view(req.params.id), vms: members(d.state.groups.get(req.params.id)!.doc) };
    },
  });
  addRoute(app, {
    method: 'PUT',
    url: '/groups/:id',
    access: 'groups:write',
    action: 'group.put',
    tag: 'groups',
    summary: 'Create or replace a VM group',
    params: z.object({ id: nameSchema }),
    body: groupDocument,
    response: groupSchema,
    async handler(req) {
      const id = req.params.id;
      req.audit({ object: `group:${id}` });
      const before = d.state.groups.get(id)?.doc ?? null;
      await d.write([{ kind: 'group', id, doc: req.body }], req.identity.user);
      req.audit({ before, after: req.body });
      return view(id);
    },
  });
  addRoute(app, {
    method: 'DELETE',
    url: '/groups/:id',
    access: 'groups:write',
    action: 'group.delete',
    tag: 'groups',
    summary: 'Delete a VM group no user or role is scoped to',
    params: z.object({ id: z.string() }),
    response: z.object({ deleted: z.string() }),
    async handler(req) {
      const id = req.params.id;
      req.audit({ object: `group:${id}` });
      const g = d.state.groups.get(id);
      if (!g) throw ERR_MANAGER_NOT_FOUND(`VM group ${id}`);
      const users = [...d.state.users.values()].filter((u) => u.doc.groups.includes(id)).map((u) => `user ${u.id}`);
      const roles = [...d.state.roles.values()].filter((r) => r.doc.groups.includes(id)).map((r) => `role ${r.id}`);
      if (users.length + roles.length)
        throw ERR_MANAGER_CONFLICT(`VM group ${id} scopes ${[...users, ...roles].join(', ')}; change them first`);
      await d.write([{ kind: 'group', id, doc: null }], req.identity.user);
      req.audit({ before: g.doc, after: null });
      return { deleted: id };
    },
  });
}
