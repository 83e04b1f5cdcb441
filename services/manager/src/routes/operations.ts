import { randomUUID } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { makeEnrollToken } from '@cordon/agent';
import { blockKey, codecFor, TOPICS } from '@cordon/schemas';
import type { ManagerDeps } from '../deps.js';
import { nameSchema, targetDocument } from '../documents.js';
import { ERR_MANAGER_NOT_FOUND, ERR_MANAGER_OUT_OF_SCOPE } from '../errors.js';
import { addRoute } from '../route.js';
import { vmInScope } from '../scope.js';

const blockView = z.object({
  enforcer: z.string(),
  target: z.string(),
  action: z.string(),
  status: z.string(),
  reported: z.string().nullable(),
  error: z.string().nullable(),
  ttl_s: z.number().int(),
  created: z.string(),
  expires: z.string(),
  left_s: z.number().int(),
  active: z.boolean(),
  scope: z.string(),
  reason_alert: z.string(),
  block_id: z.string(),
  vm: z.string().nullable(),
});

const agentView = z.object({
  agent: z.string(),
  kind: z.string(),
  vm: z.string(),
  host: z.string().nullable(),
  version: z.string(),
  status: z.string(),
  heartbeat: z.string(),
  policy_version: z.number().int(),
  revoked: z.boolean(),
  revoked_reason: z.string().nullable(),
});

export function operationRoutes(app: FastifyInstance, d: ManagerDeps): void {
  const nowMs = () => d.ctx.clock.now();

  // ---------------------------------------------------------------- blocks
  const blocks = (all: boolean) =>
    d.views
      .blockViews(nowMs())
      .filter((b) => all || b.active)
      .map((b) => ({ ...b, vm: d.views.vmOfBlock(b) }));
  addRoute(app, {
    method: 'GET',
    url: '/blocks',
    access: 'blocks:read',
    tag: 'blocks',
    summary:
      'Blocks in force (the newest decision per enforcer and target on the compacted blocks topic, with the status its enforcer reported on the block-status topic); all=true with expired ones',
    querystring: z.object({ all: z.enum(['true', 'false']).default('false') }).strict(),
    response: z.array(blockView),
    handler: (req) => blocks(req.query.all === 'true').filter((b) => vmInScope(d, req.identity, b.vm)),
  });
  addRoute(app, {
    method: 'POST',
    url: '/blocks/lift',
    access: 'blocks:lift',
    action: 'block.lift',
    tag: 'blocks',
    summary: 'Lift a block: a tombstone on its key, which its enforcer follows; the reason is kept in the audit trail',
    body: z
      .object({
        target: z.string().min(1).max(200),
        enforcer: z.string().min(1).max(200).optional(),
        reason: z.string().min(1).max(1000),
      })
      .strict(),
    response: z.object({
      lifted: z.array(z.object({ enforcer: z.string(), target: z.string(), wasActive: z.boolean() })),
    }),
    async handler(req) {
      const { target, enforcer, reason } = req.body;
      req.audit({ object: `block:${enforcer ? `${enforcer}|` : ''}${target}`, detail: reason });
      const matches = blocks(true).filter((b) => b.target === target && (!enforcer || b.enforcer === enforcer));
      if (matches.length === 0) throw ERR_MANAGER_NOT_FOUND(`a block of ${target}${enforcer ? ` on ${enforcer}` : ''}`);
      const outside = matches.filter((b) => !vmInScope(d, req.identity, b.vm));
      if (outside.length)
        throw ERR_MANAGER_OUT_OF_SCOPE(`the block of ${target} on ${outside.map((b) => b.enforcer).join(', ')}`);
      const headers = { 'cordon-lifted-by': Buffer.from(req.identity.user), 'cordon-reason': Buffer.from(reason) };
      await d.send(
        TOPICS.blocks,
        matches.map((b) => ({ key: blockKey(b.enforcer, b.target), value: null, headers })),
      );
      for (const b of matches) d.views.blocks.delete(`${b.enforcer}|${b.target}`);
      req.audit({
        object: matches.length === 1 ? `block:${matches[0]!.enforcer}|${target}` : `block:${target}`,
        before: matches,
        after: { lifted: true, reason },
      });
      return { lifted: matches.map((b) => ({ enforcer: b.enforcer, target: b.target, wasActive: b.active })) };
    },
  });

  // ---------------------------------------------------------------- agents
  addRoute(app, {
    method: 'GET',
    url: '/agents',
    access: 'agents:read',
    tag: 'agents',
    summary: 'Agents and watchdogs by their newest heartbeat, with revocations',
    response: z.array(agentView),
    handler: (req) =>
      [...d.views.sensors.values()]
        .filter((a) => a.kind !== 'agent' || vmInScope(d, req.identity, a.vm))
        .map((a) => {
          const r = d.state.agents.get(a.agent);
          return {
            agent: a.agent,
            kind: a.kind,
            vm: a.vm,
            host: a.host,
            version: a.version,
            status: a.status,
            heartbeat: new Date(a.heartbeat_us / 1000).toISOString(),
            policy_version: a.policy_version,
            revoked: r?.doc.revoked ?? false,
            revoked_reason: r?.doc.reason ?? null,
          };
        })
        .sort((a, b) => a.agent.localeCompare(b.agent)),
  });
  addRoute(app, {
    method: 'POST',
    url: '/agents/enroll-token',
    access: 'agents:enroll',
    action: 'agent.enroll-token',
    status: 201,
    tag: 'agents',
    summary: 'An enrollment token for the agent of a VM (shown once; the audit trail keeps who made it, not the token)',
    body: z.object({ vm: z.string().min(1).max(256), ttlHours: z.number().min(0.01).max(720).default(24) }).strict(),
    response: z.object({ vm: z.string(), token: z.string(), expires: z.string() }),
    handler(req) {
      const { vm, ttlHours } = req.body;
      req.audit({ object: `vm:${vm}` });
      if (!vmInScope(d, req.identity, vm)) throw ERR_MANAGER_OUT_OF_SCOPE(`VM ${vm}`);
      const ttlMs = Math.round(ttlHours * 3_600_000);
      const token = makeEnrollToken(d.enrollSecret(), vm, ttlMs, nowMs());
      const expires = new Date(nowMs() + ttlMs).toISOString();
      req.audit({ after: { vm, expires } });
      return { vm, token, expires };
    },
  });
  addRoute(app, {
    method: 'POST',
    url: '/agents/:id/revoke',
    access: 'agents:revoke',
    action: 'agent.revoke',
    tag: 'agents',
    summary: "Revoke an agent: recorded on the policy topic for the coordinator's trust checks",
    params: z.object({ id: z.string().min(1).max(200) }),
    body: z.object({ reason: z.string().min(1).max(1000) }).strict(),
    response: z.object({ agent: z.string(), revoked: z.boolean() }),
    async handler(req) {
      const id = req.params.id;
      req.audit({ object: `agent:${id}`, detail: req.body.reason });
      const hb = d.views.sensors.get(id);
      if (!hb && !d.state.agents.has(id)) throw ERR_MANAGER_NOT_FOUND(`agent ${id}`);
      if (hb && !vmInScope(d, req.identity, hb.vm)) throw ERR_MANAGER_OUT_OF_SCOPE(`agent ${id}`);
      const before = d.state.agents.get(id)?.doc ?? null;
      const doc = { revoked: true, reason: req.body.reason, atUs: nowMs() * 1000 };
      await d.write([{ kind: 'agent', id, doc }], req.identity.user);
      req.audit({ before, after: doc });
      return { agent: id, revoked: true };
    },
  });
  addRoute(app, {
    method: 'POST',
    url: '/agents/:id/commands',
    access: 'agents:command',
    action: 'agent.command',
    status: 202,
    tag: 'agents',
    summary: 'Send an agent a command: rescan (file integrity now), rebaseline, or reconfigure',
    params: z.object({ id: z.string().min(1).max(200) }),
    body: z.object({ kind: z.enum(['rescan', 'rebaseline', 'reconfigure']) }).strict(),
    response: z.object({ command_id: z.string(), agent: z.string(), kind: z.string() }),
    async handler(req) {
      const id = req.params.id;
      req.audit({ object: `agent:${id}` });
      const hb = d.views.sensors.get(id);
      if (!hb || hb.kind !== 'agent') throw ERR_MANAGER_NOT_FOUND(`agent ${id}`);
      if (!vmInScope(d, req.identity, hb.vm)) throw ERR_MANAGER_OUT_OF_SCOPE(`agent ${id}`);
      const cmd = {
        command_id: randomUUID(),
        agent: id,
        kind: req.body.kind,
        args: { by: req.identity.user },
        issued_us: nowMs() * 1000,
      };
      await d.send(TOPICS.agentCommands, [{ key: Buffer.from(id), value: codecFor(TOPICS.agentCommands).encode(cmd) }]);
      req.audit({ before: null, after: { command: cmd.kind, command_id: cmd.command_id } });
      return { command_id: cmd.command_id, agent: id, kind: cmd.kind };
    },
  });

  // ---------------------------------------------------------------- notification targets
  const targetView = targetDocument.extend({ id: z.string(), updated: z.string(), updatedBy: z.string() });
  const toTarget = (id: string) => {
    const t = d.state.targets.get(id)!;
    return { id, ...t.doc, updated: new Date(t.updatedUs / 1000).toISOString(), updatedBy: t.updatedBy };
  };
  addRoute(app, {
    method: 'GET',
    url: '/targets',
    access: 'targets:read',
    tag: 'targets',
    summary: 'Webhook and syslog targets alerts are sent to',
    response: z.array(targetView),
    handler: () => [...d.state.targets.keys()].sort().map(toTarget),
  });
  addRoute(app, {
    method: 'PUT',
    url: '/targets/:id',
    access: 'targets:write',
    action: 'target.put',
    tag: 'targets',
    summary: 'Create or replace a webhook or syslog target',
    params: z.object({ id: nameSchema }),
    body: targetDocument,
    response: targetView,
    async handler(req) {
      const id = req.params.id;
      req.audit({ object: `target:${id}` });
      const before = d.state.targets.get(id)?.doc ?? null;
      await d.write([{ kind: 'target', id, doc: req.body }], req.identity.user);
      req.audit({ before, after: req.body });
      return toTarget(id);
    },
  });
  addRoute(app, {
    method: 'DELETE',
    url: '/targets/:id',
    access: 'targets:write',
    action: 'target.delete',
    tag: 'targets',
    summary: 'Delete a target',
    params: z.object({ id: z.string() }),
    response: z.object({ deleted: z.string() }),
    async handler(req) {
      const id = req.params.id;
      req.audit({ object: `target:${id}` });
      const t = d.state.targets.get(id);
      if (!t) throw ERR_MANAGER_NOT_FOUND(`target ${id}`);
      await d.write([{ kind: 'target', id, doc: null }], req.identity.user);
      req.audit({ before: t.doc, after: null });
      return { deleted: id };
    },
  });
}
