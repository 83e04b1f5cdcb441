import type { z } from 'zod';
import { PolicyView, policyRecordKey } from '@cordon/policy';
import { codecFor, TOPICS, type PolicyKind, type PolicyRecord } from '@cordon/schemas';
import {
  ackDocument,
  agentDocument,
  groupDocument,
  policyLayersDocument,
  roleDocument,
  sessionDocument,
  targetDocument,
  tokenDocument,
  userDocument,
  type AckDocument,
  type AgentDocument,
  type GroupDocument,
  type PolicyLayers,
  type RoleDocument,
  type SessionDocument,
  type TargetDocument,
  type TokenDocument,
  type UserDocument,
} from './documents.js';
import { ERR_MANAGER_RECORD } from './errors.js';

/** A document with what the topic says about it. */
export interface Stored<D> {
  id: string;
  version: number;
  updatedUs: number;
  updatedBy: string;
  doc: D;
}

type Table<D> = Map<string, Stored<D>>;

const SCHEMAS = {
  user: userDocument,
  role: roleDocument,
  token: tokenDocument,
  session: sessionDocument,
  group: groupDocument,
  ack: ackDocument,
  target: targetDocument,
  agent: agentDocument,
} as const;
export type ManagedKind = keyof typeof SCHEMAS;
export const LAYERS_PREFIX = 'policy-layers:';

/**
 * The manager's state: the policy topic read back (users, roles, tokens, sessions, VM
 * groups, acknowledgements, targets, revoked agents, policies and their layers). Fed every
 * record in topic order — at start and as they come — so every manager instance holds the
 * same state; applying a record twice changes nothing.
 */
export class ManagerState {
  readonly users: Table<UserDocument> = new Map();
  readonly roles: Table<RoleDocument> = new Map();
  readonly tokens: Table<TokenDocument> = new Map();
  readonly sessions: Table<SessionDocument> = new Map();
  readonly groups: Table<GroupDocument> = new Map();
  readonly acks: Table<AckDocument> = new Map();
  readonly targets: Table<TargetDocument> = new Map();
  readonly agents: Table<AgentDocument> = new Map();
  readonly layers: Table<PolicyLayers> = new Map();
  /** Policy documents and rulesets, as every stage reads them. */
  readonly policy = new PolicyView();
  /** The policy records themselves (version, who wrote them). */
  readonly policyRecords = new Map<string, PolicyRecord>();
  private readonly codec = codecFor(TOPICS.policy);
  /** Bumped by every record applied. */
  version = 0;

  table<K extends ManagedKind>(kind: K): Table<z.infer<(typeof SCHEMAS)[K]>> {
    return this[`${kind}s`] as unknown as Table<z.infer<(typeof SCHEMAS)[K]>>;
  }

  /** One record of the policy topic (null value: tombstone). Throws CORDON_ERR_MANAGER_RECORD for one it cannot use. */
  apply(key: Buffer | null, value: Buffer | null): void {
    this.version++;
    const k = key?.toString() ?? '';
    const i = k.indexOf(':');
    const kind = k.slice(0, i) as PolicyKind;
    const id = k.slice(i + 1);
    if (kind === 'policy' || kind === 'ruleset') {
      this.policy.apply(key, value);
      if (value === null) this.policyRecords.delete(k);
      else this.policyRecords.set(k, this.codec.decode(value));
      return;
    }
    if (kind === 'setting' && id.startsWith(LAYERS_PREFIX)) {
      this.put(this.layers, id.slice(LAYERS_PREFIX.length), value, policyLayersDocument, k);
      return;
    }
    if (!(kind in SCHEMAS)) return; // assignment, other settings: not the manager's
    const managed = kind as ManagedKind;
    this.put(this.table(managed) as Table<unknown>, id, value, SCHEMAS[managed], k);
  }

  private put<D>(
    table: Table<D>,
    id: string,
    value: Buffer | null,
    schema: z.ZodType<D, z.ZodTypeDef, unknown>,
    key: string,
  ): void {
    if (value === null) {
      table.delete(id);
      return;
    }
    let rec: PolicyRecord;
    let parsed;
    try {
      rec = this.codec.decode(value);
      parsed = schema.safeParse(JSON.parse(rec.document));
    } catch (err) {
      throw ERR_MANAGER_RECORD.withCause(err, key, (err as Error).message);
    }
    if (!parsed.success)
      throw ERR_MANAGER_RECORD.withCause(
        parsed.error,
        key,
        parsed.error.issues.map((x) => `${x.path.join('.')}: ${x.message}`).join('; '),
      );
    table.set(id, { id, version: rec.version, updatedUs: rec.updated_us, updatedBy: rec.updated_by, doc: parsed.data });
  }

  /** The record that writes `doc` as the next version of `<kind>:<id>`. */
  record(
    kind: PolicyKind,
    id: string,
    doc: unknown,
    by: string,
    nowUs: number,
    version: number,
  ): { key: Buffer; value: Buffer } {
    const value = this.codec.encode({
      kind,
      id,
      version,
      document: JSON.stringify(doc),
      updated_us: nowUs,
      updated_by: by,
    });
    return { key: Buffer.from(policyRecordKey(kind, id)), value };
  }
}
