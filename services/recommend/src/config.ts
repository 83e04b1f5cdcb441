import { z } from 'zod';
import { describeConfigIssues } from '@cordon/runtime';
import { ERR_RECOMMEND_CONFIG } from './errors.js';

export const SEVERITIES = ['Informational', 'Minor', 'Major', 'Critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

const varName = z
  .string()
  .regex(/^[A-Z][A-Z0-9_]{0,63}$/, 'a rule variable name (HOME_NET, HTTP_PORTS, …) without the "$"');

export const recommendConfigSchema = z
  .object({
    groupId: z.string().min(1).default('cordon-recommend'),
    /** The policy (PolicyRecord id) whose rules are judged and into which a selection is applied. */
    policyId: z.string().min(1).default('default'),
    /**
     * Which of the policy's rule files are candidates, by name as the policy topic names them:
     * a file ("demo.rules", "et-open/emerging-dns.rules") or a rule set's prefix ("et-open").
     * Empty: every rule file of the policy. Rules of other files are never judged nor dropped.
     */
    ruleSets: z.array(z.string().min(1)).default([]),
    /** Answered flows to a port of a VM (within maxAgeS) before it counts as a service of the VM. */
    minFlows: z.number().int().positive().default(3),
    /** Flow evidence older than this, measured back from the newest flow seen, no longer counts. */
    maxAgeS: z
      .number()
      .int()
      .positive()
      .default(7 * 86_400),
    /**
     * Rules that watch the VM as a client (it connects out): `observed` — only for protocols it
     * was seen connecting out with (answered flows it started, minFlows of them); `never`.
     */
    clientRules: z.enum(['observed', 'never']).default('observed'),
    /** Rules below this `signature_severity` are not recommended (rules without one are judged on the rest). */
    minSeverity: z.enum(SEVERITIES).default('Minor'),
    /**
     * Where the sensor sits, in ET's `deployment` words: a rule that names deployments, none of
     * them here, is not recommended. `SSLDecrypt` in the list also means HTTP inside TLS is
     * visible, so a web server on a TLS port gets HTTP rules too.
     */
    deployments: z.array(z.string().min(1)).default(['Perimeter', 'Internet', 'Datacenter', 'Internal', 'alert_only']),
    /** Rule variables over Suricata's defaults (the DPI engine's), e.g. HOME_NET: "[10.0.0.0/8]". */
    vars: z
      .object({
        address: z.record(varName, z.string().min(1)).default({}),
        port: z.record(varName, z.string().min(1)).default({}),
      })
      .strict()
      .default({}),
    /** How often VMs whose evidence changed are recomputed (a burst of flows is one recomputation). */
    recomputeIntervalMs: z.number().int().positive().default(5_000),
    /** How often the evidence of each input partition is checkpointed to cordon.state.v1. */
    checkpointIntervalMs: z.number().int().positive().default(10_000),
    /**
     * Write each new recommendation into the policy topic as the VM's rule selection (a
     * `setting` record rule-selection:<vm>). Pinned rules are always part of it.
     */
    autoApply: z.boolean().default(false),
    /** Distinct ports kept per VM address and direction; more (a scan answered on every port) are counted, not kept. */
    maxPortsPerAddress: z.number().int().positive().default(1024),
    /** Listening sockets accepted in one netconf snapshot; a larger one is dead-lettered. */
    maxSocketsPerSnapshot: z.number().int().positive().default(4096),
    /** A recommendation record larger than this leaves out the msg of kept rules (the bus refuses records over 1 MiB). */
    maxRecordBytes: z.number().int().positive().default(900_000),
    maxBatchRecords: z.number().int().positive().default(500),
  })
  .strict();

export type RecommendConfig = z.infer<typeof recommendConfigSchema>;
export type RecommendConfigInput = z.input<typeof recommendConfigSchema>;

/** Parse once at the edge: defaults filled in, unknown keys rejected by name. */
export function parseRecommendConfig(input: unknown): RecommendConfig {
  const r = recommendConfigSchema.safeParse(input ?? {});
  if (r.success) return r.data;
  throw ERR_RECOMMEND_CONFIG.withCause(r.error, describeConfigIssues(r.error.issues));
}
