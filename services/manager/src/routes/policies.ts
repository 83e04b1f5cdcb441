import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { applyPolicyFile, policyFileSchema, type PolicyDocument } from '@cordon/policy';
import { listInstalled } from '@cordon/rulesets';
import type { ManagerDeps } from '../deps.js';
import { nameSchema, overrideSchema, type PolicyLayers } from '../documents.js';
import {
  ERR_MANAGER_BAD_REQUEST,
  ERR_MANAGER_NOT_FOUND,
  ERR_MANAGER_OUT_OF_SCOPE,
  ERR_MANAGER_UNAVAILABLE,
} from '../errors.js';
import { compileDocument, layersOf, resolve } from '../inherit.js';
import { addRoute } from '../route.js';
import { vmInScope } from '../scope.js';
import { LAYERS_PREFIX } from '../state.js';

const iso = (us: number) => new Date(us / 1000).toISOString();
const mode = z.enum(['detect', 'prevent']);

/** A policy as the API takes it: the policy file's fields (rule sets by name; no rule files: they are the CLI's) and the group layer. */
const policyBody = policyFileSchema
  .omit({ id: true, ruleFiles: true })
  .extend({
    ruleSets: policyFileSchema.shape.ruleSets
      .optional()
      .describe(
        "Rule sets installed on the manager's data dir (cordon rules update); omitted: the published rules stay as they are",
      ),
    groups: z
      .record(nameSchema, overrideSchema)
      .default({})
      .describe("Settings per VM group: over the base, under each VM's own"),
    ruleFiles: z
      .array(
        z
          .object({
            name: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.rules$/, 'a .rules file name'),
            text: z.string().max(64 << 20),
          })
          .strict(),
      )
      .optional()
      .describe('Suricata rule files, uploaded whole (cordon policy apply --manager sends the files the policy names)'),
  })
  .strict();

const policySummary = z.object({
  id: z.string(),
  version: z.number().int(),
  updated: z.string(),
  updatedBy: z.string(),
  mode: z.string().nullable(),
  rulesets: z.array(z.string()),
  vms: z.number().int(),
  groups: z.number().int(),
});
const origin = z
  .string()
  .describe('base, group:<id>, vm:<id>, or "rule action" (nothing set: the rule\'s own action decides)');
const resolvedView = z.object({
  policy: z.string(),
  version: z.number().int(),
  vm: z.string().nullable(),
  groups: z.array(z.string()),
  mode: z.object({ value: mode.nullable(), from: origin }),
  rules: z.array(
    z.object({
      sid: z.string(),
      value: mode,
      from: origin,
      overrides: z.array(z.object({ level: origin, value: mode })),
    }),
  ),
});

export function policyRoutes(app: FastifyInstance, d: ManagerDeps): void {
  const get = (id: string) => {
    const p = d.state.policy.policies.get(id);
    const rec = d.state.policyRecords.get(`policy:${id}`);
    if (!p || !rec) throw ERR_MANAGER_NOT_FOUND(`policy ${id}`);
    return { doc: p.doc, rec, layers: layersOf(p.doc, d.state.layers.get(id)?.doc) };
  };
  const groupsOfVm = (vm: string) => {
    const rec = d.views.inventory.get(`vm:${vm}`);
    return rec ? d.views.groupsOf(rec, d.state.groups.values()) : [];
  };
  const vmIds = () => d.views.vmRecords().map((v) => v.id);

  /** Publish a policy document (and its layers), as `cordon policy apply` would: the same records. */
  async function publish(
    id: string,
    doc: PolicyDocument,
    layers: PolicyLayers,
    ruleSets: unknown,
    ruleFiles: Array<{ name: string; text: string }> | undefined,
    by: string,
  ): Promise<void> {
    const compiled: PolicyDocument = compileDocument(doc, layers, groupsOfVm, vmIds());
    if (ruleSets !== undefined || ruleFiles !== undefined) {
      // through the CLI's own code path, from a file: rule sets are read from the data dir, rule files from beside it
      const dir = mkdtempSync(join(tmpdir(), 'cordon-manager-policy-'));
      try {
        const { rulesets: _r, ...file } = compiled;
        for (const f of ruleFiles ?? []) writeFileSync(join(dir, f.name), f.text);
        writeFileSync(
          join(dir, 'policy.json'),
          JSON.stringify({ ...file, id, ruleSets: ruleSets ?? [], ruleFiles: (ruleFiles ?? []).map((f) => f.name) }),
        );
        const res = await applyPolicyFile({ bus: d.bus, ctx: d.ctx, dataDir: d.dataDir }, join(dir, 'policy.json'), {
          by,
        });
        await d.write([{ kind: 'setting', id: `${LAYERS_PREFIX}${id}`, doc: layers }], by);
        await waitVersion(id, res.version);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      return;
    }
    await d.write(
      [
        { kind: 'policy', id, doc: compiled },
        { kind: 'setting', id: `${LAYERS_PREFIX}${id}`, doc: layers },
      ],
      by,
    );
  }

  async function waitVersion(id: string, version: number): Promise<void> {
    const deadline = Date.now() + 10_000;
    while ((d.state.policy.policies.get(id)?.version ?? 0) < version) {
      if (Date.now() > deadline)
        throw ERR_MANAGER_UNAVAILABLE(
          'the policy topic',
          `version ${version} of policy ${id} was written but not read back within 10 s`,
        );
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  const summary = (id: string) => {
    const { doc, rec, layers } = get(id);
    return {
      id,
      version: rec.version,
      updated: iso(rec.updated_us),
      updatedBy: rec.updated_by,
      mode: doc.mode ?? null,
      rulesets: doc.rulesets.map((r) => r.name),
      vms: Object.keys(layers.vms).length,
      groups: Object.keys(layers.groups).length,
    };
  };

  addRoute(app, {
    method: 'GET',
    url: '/policies',
    access: 'policies:read',
    tag: 'policies',
    summary: 'Every policy with its version and who wrote it last',
    response: z.array(policySummary),
    handler: () => [...d.state.policy.policies.keys()].sort().map(summary),
  });

  addRoute(app, {
    method: 'GET',
    url: '/policies/:id',
    access: 'policies:read',
    tag: 'policies',
    summary: 'A policy: its published document and its layers (base, groups, VMs)',
    params: z.object({ id: z.string() }),
    response: policySummary.extend({
      document: z.record(z.unknown()),
      layers: z.object({ groups: z.record(z.unknown()), vms: z.record(z.unknown()) }),
    }),
    handler(req) {
      const { doc, layers } = get(req.params.id);
      return { ...summary(req.params.id), document: doc as unknown as Record<string, unknown>, layers };
    },
  });

  addRoute(app, {
    method: 'GET',
    url: '/policies/:id/resolved',
    access: 'policies:read',
    tag: 'policies',
    summary: 'What applies to a VM (or the base): mode and per-rule detect/prevent, each with the level it came from',
    params: z.object({ id: z.string() }),
    querystring: z.object({ vm: z.string().optional() }).strict(),
    response: resolvedView,
    handler(req) {
      const { doc, rec, layers } = get(req.params.id);
      const vm = req.query.vm ?? null;
      if (vm !== null && !vmInScope(d, req.identity, vm)) throw ERR_MANAGER_OUT_OF_SCOPE(`VM ${vm}`);
      const groups = vm === null ? [] : groupsOfVm(vm);
      return { policy: req.params.id, version: rec.version, vm, groups, ...resolve(doc, layers, vm, groups) };
    },
  });

  addRoute(app, {
    method: 'PUT',
    url: '/policies/:id',
    access: 'policies:write',
    action: 'policy.put',
    tag: 'policies',
    summary: 'Create or replace a policy (the same records as cordon policy apply; stages pick it up live)',
    params: z.object({ id: nameSchema }),
    body: policyBody,
    bodyLimit: 96 << 20,
    response: policySummary,
    async handler(req) {
      const id = req.params.id;
      req.audit({ object: `policy:${id}` });
      const before = d.state.policy.policies.get(id)?.doc ?? null;
      const { groups, ruleSets, ruleFiles, ...rest } = req.body;
      const file = policyFileSchema.safeParse({ ...rest, id });
      if (!file.success)
        throw ERR_MANAGER_BAD_REQUEST(file.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
      const { ruleFiles: _f, ruleSets: _s, ...docFields } = file.data;
      const doc: PolicyDocument = { ...docFields, rulesets: before?.rulesets ?? [] };
      const layers: PolicyLayers = {
        groups,
        vms: Object.fromEntries(
          Object.entries(file.data.vms).map(([vm, v]) => [vm, { ...(v.mode ? { mode: v.mode } : {}), rules: v.rules }]),
        ),
      };
      const missing = Object.keys(groups).filter((g) => !d.state.groups.has(g));
      if (missing.length) throw ERR_MANAGER_BAD_REQUEST(`VM group(s) ${missing.join(', ')} do not exist`);
      await publish(id, doc, layers, ruleSets, ruleFiles, req.identity.user);
      req.audit({ before, after: d.state.policy.policies.get(id)?.doc ?? doc });
      return summary(id);
    },
  });

  addRoute(app, {
    method: 'PUT',
    url: '/policies/:id/overrides',
    access: 'policies:write',
    action: 'policy.override',
    tag: 'policies',
    summary: "Set or clear one override: the mode or one rule's detect/prevent, at the base, a VM group or a VM",
    params: z.object({ id: z.string() }),
    body: z
      .object({
        level: z.enum(['base', 'group', 'vm']),
        /** The group or VM (not for base). */
        target: z.string().min(1).optional(),
        /** A rule's sid; omitted: the level's mode. */
        sid: z
          .string()
          .regex(/^[0-9]{1,10}$/)
          .optional(),
        /** null clears the override. */
        value: mode.nullable(),
      })
      .strict(),
    response: resolvedView,
    async handler(req) {
      const id = req.params.id;
      const b = req.body;
      req.audit({ object: `policy:${id}` });
      const { doc, layers } = get(id);
      if (b.level !== 'base' && !b.target)
        throw ERR_MANAGER_BAD_REQUEST(`a ${b.level} override names its ${b.level} in "target"`);
      if (b.level === 'group' && !d.state.groups.has(b.target!))
        throw ERR_MANAGER_BAD_REQUEST(`VM group ${b.target} does not exist`);
      if (b.level === 'vm' && !vmInScope(d, req.identity, b.target!)) throw ERR_MANAGER_OUT_OF_SCOPE(`VM ${b.target}`);
      const set = (o: { mode?: 'detect' | 'prevent' | undefined; rules: Record<string, 'detect' | 'prevent'> }) => {
        const next = { ...o, rules: { ...o.rules } };
        if (b.sid) {
          if (b.value) next.rules[b.sid] = b.value;
          else delete next.rules[b.sid];
        } else if (b.value) next.mode = b.value;
        else delete next.mode;
        return next;
      };
      const beforeResolved = resolve(
        doc,
        layers,
        b.level === 'vm' ? b.target! : null,
        b.level === 'vm' ? groupsOfVm(b.target!) : [],
      );
      let nextDoc = doc;
      const nextLayers: PolicyLayers = { groups: { ...layers.groups }, vms: { ...layers.vms } };
      if (b.level === 'base') {
        const o = set({ ...(doc.mode ? { mode: doc.mode } : {}), rules: doc.rules });
        const { mode: _m, ...withoutMode } = doc;
        nextDoc = { ...withoutMode, ...(o.mode ? { mode: o.mode } : {}), rules: o.rules };
      } else {
        const key = b.target!;
        const table = b.level === 'group' ? nextLayers.groups : nextLayers.vms;
        table[key] = set(table[key] ?? { rules: {} });
        if (!table[key].mode && Object.keys(table[key].rules).length === 0) delete table[key];
      }
      await publish(id, nextDoc, nextLayers, undefined, undefined, req.identity.user);
      const after = get(id);
      const vm = b.level === 'vm' ? b.target! : null;
      const groups = vm ? groupsOfVm(vm) : [];
      const res = resolve(after.doc, after.layers, vm, groups);
      req.audit({
        before: { override: { ...b, value: undefined }, resolved: beforeResolved },
        after: { override: b, resolved: res },
      });
      return { policy: id, version: d.state.policyRecords.get(`policy:${id}`)!.version, vm, groups, ...res };
    },
  });

  addRoute(app, {
    method: 'GET',
    url: '/rulesets',
    access: 'rulesets:read',
    tag: 'policies',
    summary:
      'Rule sets: those published on the policy topic (what the dpi service loads) and those installed on this data dir',
    response: z.object({
      published: z.array(
        z.object({ name: z.string(), sha256: z.string(), parts: z.number().int(), usedBy: z.array(z.string()) }),
      ),
      installed: z.array(
        z.object({
          name: z.string(),
          version: z.string(),
          source: z.string(),
          rules: z.number().int(),
          verified: z.string(),
          fetchedAt: z.string(),
          previous: z.string().nullable(),
        }),
      ),
    }),
    handler() {
      const byName = new Map<string, { name: string; sha256: string; parts: number; usedBy: string[] }>();
      for (const r of d.state.policy.rulesets.values())
        byName.set(r.name, { name: r.name, sha256: r.sha256, parts: r.parts, usedBy: [] });
      for (const [pid, p] of d.state.policy.policies)
        for (const rs of p.doc.rulesets) byName.get(rs.name)?.usedBy.push(pid);
      let installed: ReturnType<typeof listInstalled> = [];
      try {
        installed = listInstalled(d.dataDir);
      } catch {
        installed = [];
      }
      return {
        published: [...byName.values()].sort((a, b) => a.name.localeCompare(b.name)),
        installed: installed.map((s) => ({
          name: s.name,
          version: s.version,
          source: s.source,
          rules: s.rules,
          verified: s.verified,
          fetchedAt: s.fetchedAt,
          previous: s.previous,
        })),
      };
    },
  });
}
