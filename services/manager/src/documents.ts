import { z } from 'zod';
import { PERMISSIONS } from './permissions.js';

/**
 * The manager's documents on the compacted policy topic (`<kind>:<id>` → PolicyRecord with
 * this JSON as `document`), each validated when read back. Secrets are stored hashed only:
 * password hashes (scrypt, peppered with the manager secret), token and session hashes
 * (SHA-256 of 256 random bits). The API's response schemas never name these fields, so they
 * cannot be serialized into an answer.
 */

export const NAME = /^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$/;
export const nameSchema = z
  .string()
  .regex(NAME, 'letters, digits, "_", ".", "@" and "-" (up to 64), starting with a letter or digit');
const permission = z.enum(PERMISSIONS);

export const userDocument = z
  .object({
    role: nameSchema,
    /** VM groups the user's role is scoped to (empty: every VM). */
    groups: z.array(nameSchema).default([]),
    passwordHash: z.string().min(1),
    disabled: z.boolean().default(false),
    createdUs: z.number().int(),
  })
  .strict();
export type UserDocument = z.infer<typeof userDocument>;

export const roleDocument = z
  .object({
    description: z.string().max(500).default(''),
    permissions: z.array(permission),
    /** Groups every holder of this role is scoped to (a user's own groups narrow it further). */
    groups: z.array(nameSchema).default([]),
  })
  .strict();
export type RoleDocument = z.infer<typeof roleDocument>;

export const tokenDocument = z
  .object({
    name: z.string().min(1).max(100),
    user: nameSchema,
    /** The permissions this token may use, within its user's role (null: all of them). */
    permissions: z.array(permission).nullable(),
    /** SHA-256 (hex) of the token's secret part. */
    hash: z.string().regex(/^[0-9a-f]{64}$/),
    createdUs: z.number().int(),
    expiresUs: z.number().int(),
  })
  .strict();
export type TokenDocument = z.infer<typeof tokenDocument>;

export const sessionDocument = z
  .object({
    user: nameSchema,
    createdUs: z.number().int(),
    expiresUs: z.number().int(),
    sourceIp: z.string().nullable(),
  })
  .strict();
export type SessionDocument = z.infer<typeof sessionDocument>;

const modeSchema = z.enum(['detect', 'prevent']);
/** One level's settings in the policy inheritance (base → group → VM). */
export const overrideSchema = z
  .object({ mode: modeSchema.optional(), rules: z.record(z.string().regex(/^[0-9]{1,10}$/), modeSchema).default({}) })
  .strict();
export type Override = z.infer<typeof overrideSchema>;

export const groupDocument = z
  .object({
    description: z.string().max(500).default(''),
    /** A VM is in the group when any of these matches it. */
    match: z
      .object({
        platforms: z.array(z.string().min(1)).default([]),
        clusters: z.array(z.string().min(1)).default([]),
        hosts: z.array(z.string().min(1)).default([]),
        vms: z.array(z.string().min(1)).default([]),
        /** Globs on the VM's id or name (`*` any run of characters). */
        names: z.array(z.string().min(1).max(128)).default([]),
      })
      .strict()
      .default({}),
    /** Lower first: a later group's setting wins over an earlier one's for a VM in both. */
    priority: z.number().int().min(0).max(1000).default(100),
  })
  .strict();
export type GroupDocument = z.infer<typeof groupDocument>;

export const ackDocument = z
  .object({ by: z.string(), atUs: z.number().int(), note: z.string().max(1000).default('') })
  .strict();
export type AckDocument = z.infer<typeof ackDocument>;

export const targetDocument = z
  .object({
    kind: z.enum(['webhook', 'syslog']),
    /** https://… for a webhook; udp://host:514, tcp://host:514 or tls://host:6514 for syslog. */
    url: z.string().url(),
    format: z.enum(['json', 'cef', 'leef', 'rfc5424']).default('json'),
    minSeverity: z.number().int().min(0).max(10).default(0),
    enabled: z.boolean().default(true),
  })
  .strict();
export type TargetDocument = z.infer<typeof targetDocument>;

export const agentDocument = z
  .object({ revoked: z.boolean(), reason: z.string().max(1000).default(''), atUs: z.number().int() })
  .strict();
export type AgentDocument = z.infer<typeof agentDocument>;

/** The layers of a policy as the manager edits them; compiled into the policy record's document. */
export const policyLayersDocument = z
  .object({
    groups: z.record(nameSchema, overrideSchema).default({}),
    vms: z.record(z.string().min(1), overrideSchema).default({}),
  })
  .strict();
export type PolicyLayers = z.infer<typeof policyLayersDocument>;

/** Fields that never leave the manager: redacted from audit before/after. */
export const SECRET_FIELDS = new Set(['passwordHash', 'hash', 'password', 'secret', 'token']);

export function redact(doc: unknown): unknown {
  if (Array.isArray(doc)) return doc.map(redact);
  if (doc === null || typeof doc !== 'object') return doc;
  return Object.fromEntries(Object.entries(doc).map(([k, v]) => [k, SECRET_FIELDS.has(k) ? '[redacted]' : redact(v)]));
}
