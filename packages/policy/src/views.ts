import { z } from 'zod';
import { codecFor, TOPICS, type Assignment, type InventoryRecord } from '@cordon/schemas';
import { ERR_POLICY_RECORD } from './errors.js';
import { policyFileSchema, type PolicyDocument, type RulesetDocument } from './policy.js';

/**
 * In-memory views of the compacted topics a service decides with (policy, inventory,
 * assignments). Fed records in topic order — the table at start, then what follows — and
 * pure otherwise, so a stage's unit tests build them from plain records.
 */

const policyDocumentSchema = policyFileSchema.omit({ ruleFiles: true, ruleSets: true }).extend({
  rulesets: z
    .array(z.object({ name: z.string(), sha256: z.string(), parts: z.number().int().positive() }).strict())
    .default([]),
  yaraRulesets: z
    .array(
      z.object({ name: z.string(), set: z.string(), sha256: z.string(), parts: z.number().int().positive() }).strict(),
    )
    .default([]),
});

const rulesetDocumentSchema = z
  .object({
    name: z.string(),
    sha256: z.string(),
    part: z.number().int().nonnegative(),
    parts: z.number().int().positive(),
    encoding: z.literal('gzip-base64'),
    data: z.string(),
  })
  .strict();

/** An agent the manager revoked (`POST /agents/:id/revoke`, kind `agent` on the policy topic). */
export interface AgentRevocation {
  reason: string;
  atUs: number;
}

const agentDocumentSchema = z
  .object({ revoked: z.boolean(), reason: z.string().max(1000).default(''), atUs: z.number().int() })
  .strict();

export class PolicyView {
  readonly policies = new Map<string, { version: number; doc: PolicyDocument }>();
  /** 'name#part' → part. */
  readonly rulesets = new Map<string, RulesetDocument>();
  /** Agent id → its revocation; an agent not in it is not revoked. */
  readonly revokedAgents = new Map<string, AgentRevocation>();
  private readonly codec = codecFor(TOPICS.policy);

  /** Apply one record of `cordon.policy.v1` (null value: tombstone). Throws CORDON_ERR_POLICY_RECORD for a record it cannot use. */
  apply(key: Buffer | null, value: Buffer | null): void {
    const k = key?.toString() ?? '';
    const [kind, ...rest] = k.split(':');
    const id = rest.join(':');
    if (value === null) {
      if (kind === 'policy') this.policies.delete(id);
      if (kind === 'ruleset') this.rulesets.delete(id);
      if (kind === 'agent') this.revokedAgents.delete(id);
      return;
    }
    let rec;
    let doc: unknown;
    try {
      rec = this.codec.decode(value);
      doc = JSON.parse(rec.document);
    } catch (err) {
      throw ERR_POLICY_RECORD.withCause(err, k, (err as Error).message);
    }
    if (rec.kind === 'policy') {
      const r = policyDocumentSchema.safeParse(doc);
      if (!r.success) throw ERR_POLICY_RECORD.withCause(r.error, k, r.error.issues[0]?.message ?? 'invalid document');
      this.policies.set(rec.id, { version: rec.version, doc: r.data });
    } else if (rec.kind === 'ruleset') {
      const r = rulesetDocumentSchema.safeParse(doc);
      if (!r.success) throw ERR_POLICY_RECORD.withCause(r.error, k, r.error.issues[0]?.message ?? 'invalid document');
      this.rulesets.set(rec.id, r.data);
    } else if (rec.kind === 'agent') {
      const r = agentDocumentSchema.safeParse(doc);
      if (!r.success) throw ERR_POLICY_RECORD.withCause(r.error, k, r.error.issues[0]?.message ?? 'invalid document');
      if (r.data.revoked) this.revokedAgents.set(rec.id, { reason: r.data.reason, atUs: r.data.atUs });
      else this.revokedAgents.delete(rec.id);
    }
    // users, roles, settings, assignments: the manager's, not ours to read here
  }

  /** The parts of a ruleset the policy names (for `assembleRuleset`). */
  rulesetParts(rsName: string): RulesetDocument[] {
    return [...this.rulesets.values()].filter((r) => r.name === rsName).sort((a, b) => a.part - b.part);
  }
}

export interface VmInfo {
  id: string;
  host: string | null;
  ips: string[];
  macs: string[];
}

export class InventoryView {
  readonly vms = new Map<string, VmInfo>();
  readonly hosts = new Set<string>();
  private readonly byIp = new Map<string, string>();
  private readonly byMac = new Map<string, string>();
  private readonly codec = codecFor(TOPICS.inventory);

  apply(key: Buffer | null, value: Buffer | null): void {
    const k = key?.toString() ?? '';
    if (value === null) {
      if (k.startsWith('vm:')) this.removeVm(k.slice(3));
      if (k.startsWith('host:')) this.hosts.delete(k.slice(5));
      return;
    }
    let rec: InventoryRecord;
    try {
      rec = this.codec.decode(value);
    } catch (err) {
      throw ERR_POLICY_RECORD.withCause(err, k, (err as Error).message);
    }
    this.put(rec);
  }

  put(rec: InventoryRecord): void {
    if (rec.kind === 'host') {
      this.hosts.add(rec.id);
      return;
    }
    this.removeVm(rec.id);
    const info: VmInfo = {
      id: rec.id,
      host: rec.host,
      ips: rec.nics.flatMap((n) => n.ips),
      macs: rec.nics.map((n) => n.mac.toLowerCase()),
    };
    this.vms.set(rec.id, info);
    for (const ip of info.ips) this.byIp.set(ip, rec.id);
    for (const mac of info.macs) this.byMac.set(mac, rec.id);
  }

  vmByIp(ip: string): VmInfo | undefined {
    const id = this.byIp.get(ip);
    return id === undefined ? undefined : this.vms.get(id);
  }

  vmByMac(mac: string): VmInfo | undefined {
    const id = this.byMac.get(mac.toLowerCase());
    return id === undefined ? undefined : this.vms.get(id);
  }

  private removeVm(id: string): void {
    const old = this.vms.get(id);
    if (!old) return;
    for (const ip of old.ips) if (this.byIp.get(ip) === id) this.byIp.delete(ip);
    for (const mac of old.macs) if (this.byMac.get(mac) === id) this.byMac.delete(mac);
    this.vms.delete(id);
  }
}

export class AssignmentView {
  readonly byVm = new Map<string, Assignment>();
  private readonly codec = codecFor(TOPICS.assignments);

  apply(key: Buffer | null, value: Buffer | null): void {
    const vm = key?.toString() ?? '';
    if (value === null) {
      this.byVm.delete(vm);
      return;
    }
    try {
      const a = this.codec.decode(value);
      this.byVm.set(a.vm, a);
    } catch (err) {
      throw ERR_POLICY_RECORD.withCause(err, vm, (err as Error).message);
    }
  }
}
