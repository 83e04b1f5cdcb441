import { z } from 'zod';
import { describeConfigIssues } from '@cordon/runtime';
import { ERR_LOGINSPECT_CONFIG } from './errors.js';

/**
 * Threshold windows are measured in *log time* (the timestamps written in the lines), not in
 * wall-clock time, so replaying last month's auth.log blocks the same addresses as tailing it.
 */
export const blockPolicySchema = z
  .object({
    /** First block of an address. */
    baseTtlS: z.number().positive().default(600),
    /** Each further block of the same address (a repeat offender) multiplies the TTL … */
    repeatFactor: z.number().min(1).default(4),
    /** … up to this. */
    maxTtlS: z
      .number()
      .positive()
      .default(7 * 24 * 3600),
    /** How long (log time) an address is remembered as an offender after its last block. */
    offenderMemoryS: z
      .number()
      .positive()
      .default(7 * 24 * 3600),
    action: z.enum(['drop', 'reject']).default('drop'),
    /** Addresses (exact) and IPv4/IPv6 CIDRs never blocked: the admin's own networks. */
    ignore: z.array(z.string()).default(['127.0.0.0/8', '::1/128']),
  })
  .strict();

export type BlockPolicy = z.infer<typeof blockPolicySchema>;

export const inspectorConfigSchema = z
  .object({
    /** Extra rule folders (Cordon or Sigma YAML) loaded after the built-in rules. */
    ruleDirs: z.array(z.string()).default([]),
    /** Load the built-in rules shipped in the package's rules/ folder. */
    builtinRules: z.boolean().default(true),
    /** Sigma rule folders (e.g. the SigmaHQ checkout); every rule found is compiled or reported. */
    sigmaDirs: z.array(z.string()).default([]),
    /**
     * fail2ban filters to load as rules: a fail2ban configuration folder (filter.d/ and
     * jail.conf, e.g. /etc/fail2ban) or a filter.d folder, and optionally which filters
     * (`sshd`, `sshd[mode=aggressive]`; all when empty).
     */
    fail2ban: z
      .object({ dir: z.string().min(1), filters: z.array(z.string()).default([]) })
      .strict()
      .nullable()
      .default(null),
    blocks: blockPolicySchema.default({}),
    /** Cap of threshold keys held per partition; beyond it the stalest key is forgotten and counted. */
    maxThresholdKeys: z.number().int().positive().default(200_000),
    /** Per source: the sshd pid → client address memory used for lines that do not name the client. */
    maxSessions: z.number().int().positive().default(50_000),
    /** Lines longer than this are cut (bytes) before decoding: bounded work per line. */
    maxLineBytes: z
      .number()
      .int()
      .positive()
      .default(64 * 1024),
  })
  .strict();

export type InspectorConfig = z.infer<typeof inspectorConfigSchema>;

export const loginspectServiceConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-loginspect'),
    inputTopic: z.string().min(1).default('cordon.logs.v1'),
    alertsTopic: z.string().min(1).default('cordon.alerts.v1'),
    blocksTopic: z.string().min(1).default('cordon.blocks.v1'),
    dlqTopic: z.string().min(1).default('cordon.dlq.v1'),
    /** Checkpoints of the per-partition state (threshold counters, sessions, offenders). */
    stateTopic: z.string().min(1).default('cordon.state.v1'),
    /** At most this long between checkpoints of a partition that saw input (ms). */
    checkpointIntervalMs: z.number().int().positive().default(5000),
    maxBatchRecords: z.number().int().positive().default(500),
    inspector: inspectorConfigSchema.default({}),
  })
  .strict();

export type LoginspectServiceConfig = z.infer<typeof loginspectServiceConfigSchema>;
export type LoginspectServiceConfigInput = z.input<typeof loginspectServiceConfigSchema>;

function parseWith<T>(schema: z.ZodType<T, z.ZodTypeDef, unknown>, input: unknown): T {
  const r = schema.safeParse(input ?? {});
  if (r.success) return r.data;
  throw ERR_LOGINSPECT_CONFIG.withCause(r.error, describeConfigIssues(r.error.issues));
}

/** Parse once at the edge: defaults filled in, unknown keys rejected by name. */
export function parseLoginspectConfig(input: unknown): LoginspectServiceConfig {
  return parseWith(loginspectServiceConfigSchema, input);
}

export function parseInspectorConfig(input: unknown): InspectorConfig {
  return parseWith(inspectorConfigSchema, input);
}
