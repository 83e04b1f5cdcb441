import { z } from 'zod';
import { describeConfigIssues } from '@cordon/runtime';
import { ERR_PROCINSPECT_CONFIG } from './errors.js';

export const procRulesConfigSchema = z
  .object({
    /** Load the built-in rules shipped in the package's rules/ folder. */
    builtinRules: z.boolean().default(true),
    /** Extra rule folders (Cordon or Sigma YAML) loaded after the built-in rules. */
    ruleDirs: z.array(z.string()).default([]),
    /** Sigma folders (the SigmaHQ checkout): their Linux process_creation rules load, the rest is refused with reasons. */
    sigmaDirs: z.array(z.string()).default([]),
    /** Command lines longer than this are cut before matching: bounded work per event. */
    maxCommandLineBytes: z
      .number()
      .int()
      .positive()
      .default(32 * 1024),
  })
  .strict();
export type ProcRulesConfig = z.infer<typeof procRulesConfigSchema>;

export const procinspectConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-procinspect'),
    inputTopic: z.string().min(1).default('cordon.processes.v1'),
    alertsTopic: z.string().min(1).default('cordon.alerts.v1'),
    dlqTopic: z.string().min(1).default('cordon.dlq.v1'),
    maxBatchRecords: z.number().int().positive().default(1000),
    rules: procRulesConfigSchema.default({}),
  })
  .strict();
export type ProcinspectConfig = z.infer<typeof procinspectConfigSchema>;
export type ProcinspectConfigInput = z.input<typeof procinspectConfigSchema>;

export function parseProcRulesConfig(input: unknown): ProcRulesConfig {
  const r = procRulesConfigSchema.safeParse(input ?? {});
  if (!r.success) throw ERR_PROCINSPECT_CONFIG.withCause(r.error, describeConfigIssues(r.error.issues));
  return r.data;
}
