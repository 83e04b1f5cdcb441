import { z } from 'zod';
import { describeConfigIssues } from '@cordon/runtime';
import { enforcerGuardsShape } from '@cordon/enforce';
import { fimPolicySchema } from '@cordon/fim-scan';
import { ERR_AGENT_CONFIG } from './errors.js';

export const agentConfigSchema = z
  .object({
    /** Enrollment token from `cordon agents token --vm <vm>`. */
    token: z.string().min(20),
    /** Where the agent keeps its identity, log positions and baselines. */
    stateDir: z.string().min(1).default('./agent-state'),
    heartbeatS: z.number().positive().default(10),
    /**
     * The policy (on the policy topic) whose `agents` section sets logs, fim and netconf below;
     * what it does not set, this file does.
     */
    policy: z.string().min(1).default('default'),
    logs: z.array(z.object({ path: z.string().min(1), format: z.string().optional() }).strict()).default([]),
    /** A log seen for the first time is read from its start or only for new lines. */
    logStartAt: z.enum(['beginning', 'end']).default('end'),
    /** Network configuration snapshots (listening sockets, interfaces, routes): how often to look. */
    netconf: z.object({ enabled: z.boolean().default(true), intervalS: z.number().positive().default(30) }).strict().default({}),
    /** File integrity: paths, patterns, attributes, schedule (see @cordon/fim-scan's policy). */
    fim: fimPolicySchema.optional(),
    enforce: z
      .object({
        enabled: z.boolean().default(true),
        table: z.string().regex(/^[A-Za-z][A-Za-z0-9_]{0,31}$/).default('cordon'),
        /**
         * Enforce inside this network namespace instead of the agent's own (a sidecar agent
         * for a namespace-isolated workload; the lab uses it because Kafka listens on the
         * host's loopback only).
         */
        netns: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/).optional(),
        /** Never-block ranges (beyond the built-in ones and the guest's own addresses and gateways), cap and rate. */
        ...enforcerGuardsShape,
      })
      .strict()
      .default({}),
  })
  .strict();

export type AgentConfig = z.infer<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;

export function parseAgentConfig(input: unknown): AgentConfig {
  const r = agentConfigSchema.safeParse(input ?? {});
  if (!r.success) throw ERR_AGENT_CONFIG.withCause(r.error, describeConfigIssues(r.error.issues));
  return r.data;
}
