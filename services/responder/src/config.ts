import { z } from 'zod';
import { describeConfigIssues } from '@cordon/runtime';
import { ERR_RESPONDER_CONFIG } from './errors.js';

export const responderConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-responder'),
    /** The policy (PolicyRecord id) whose modes and block TTLs apply. */
    policyId: z.string().min(1).default('default'),
    maxBatchRecords: z.number().int().positive().default(500),
  })
  .strict();

export type ResponderConfig = z.infer<typeof responderConfigSchema>;
export type ResponderConfigInput = z.input<typeof responderConfigSchema>;

/** Parse once at the edge: defaults filled in, unknown keys rejected by name. */
export function parseResponderConfig(input: unknown): ResponderConfig {
  const r = responderConfigSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  throw ERR_RESPONDER_CONFIG.withCause(r.error, describeConfigIssues(r.error.issues));
}
