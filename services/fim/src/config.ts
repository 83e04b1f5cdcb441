import { z } from 'zod';
import { describeConfigIssues } from '@cordon/runtime';
import { compileGlob, FILE_ATTRIBUTES } from '@cordon/fim-scan';
import { ERR_FIMPROC_CONFIG } from './errors.js';

const glob = z
  .string()
  .min(1)
  .superRefine((s, ctx) => {
    try {
      compileGlob(s);
    } catch (err) {
      ctx.addIssue({ code: z.ZodIssueCode.custom, message: (err as Error).message });
    }
  });

/**
 * A rule: which paths it covers, which changes there matter and how much. Rules are tried
 * in order and the first whose paths match decides (as a firewall's), so specific rules go
 * before general ones; a path no rule matches gets `defaultRule`.
 */
export const fimRuleSchema = z
  .object({
    /** Stable id; alerts carry rule_id "fim:<id>". */
    id: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, 'lowercase letters, digits, ".", "_" and "-"'),
    /** Glob patterns (see @cordon/fim-scan's glob syntax). */
    paths: z.array(glob).min(1),
    /** 1 (highest) .. 4. */
    severity: z.number().int().min(1).max(4).default(2),
    /** Changed attributes that raise an alert; a change touching none of them is not one. */
    attributes: z
      .array(z.enum(FILE_ATTRIBUTES))
      .min(1)
      .default(FILE_ATTRIBUTES.filter((a) => a !== 'ctime')),
    /** Operations that raise an alert. */
    ops: z
      .array(z.enum(['added', 'removed', 'changed', 'renamed']))
      .min(1)
      .default(['added', 'removed', 'changed', 'renamed']),
    /** Paths that change by design (logs, caches): matched, never alerted. */
    ignore: z.boolean().default(false),
    /** Words for the alert's signature, e.g. "System account database". */
    title: z.string().min(1).optional(),
  })
  .strict();

export type FimRule = z.infer<typeof fimRuleSchema>;

export const fimProcessorConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-fim'),
    inputTopic: z.string().min(1).default('cordon.fim.v1'),
    outputTopic: z.string().min(1).default('cordon.alerts.v1'),
    dlqTopic: z.string().min(1).default('cordon.dlq.v1'),
    maxBatchRecords: z.number().int().positive().default(500),
    rules: z.array(fimRuleSchema).default([]),
    /**
     * For paths no rule names. ctime is left out by default: it moves with every other
     * change (and with nothing else an attacker controls), so alone it is noise.
     */
    defaultRule: fimRuleSchema.omit({ id: true, paths: true }).strict().default({ severity: 3 }),
    /** A path that could not be checked (unreadable, unstable, too large) raises a severity-4 alert. */
    alertOnErrors: z.boolean().default(true),
  })
  .strict()
  .superRefine((c, ctx) => {
    const seen = new Set<string>();
    c.rules.forEach((r, i) => {
      if (seen.has(r.id))
        ctx.addIssue({ code: z.ZodIssueCode.custom, path: ['rules', i, 'id'], message: `duplicate rule id "${r.id}"` });
      seen.add(r.id);
    });
  });

export type FimProcessorConfig = z.infer<typeof fimProcessorConfigSchema>;
export type FimProcessorConfigInput = z.input<typeof fimProcessorConfigSchema>;

/** Parse once at the edge: defaults filled in, unknown keys rejected by name. */
export function parseFimProcessorConfig(input: unknown): FimProcessorConfig {
  const r = fimProcessorConfigSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  throw ERR_FIMPROC_CONFIG.withCause(r.error, describeConfigIssues(r.error.issues));
}
