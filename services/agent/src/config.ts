import { availableParallelism } from 'node:os';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { describeConfigIssues } from '@cordon/runtime';
import { enforcerGuardsShape } from '@cordon/enforce';
import { fimPolicySchema } from '@cordon/fim-scan';
import { processPolicySchema } from '@cordon/policy';
import { malwarePolicySchema } from '@cordon/malware';
import { ERR_AGENT_CONFIG } from './errors.js';

/** Where file integrity may look unless the agent's file says otherwise: system binaries, libraries, configuration, boot, served content, root's keys and crontabs. */
export const DEFAULT_FIM_ROOTS = [
  '/etc',
  '/usr',
  '/bin',
  '/sbin',
  '/lib',
  '/lib32',
  '/lib64',
  '/libx32',
  '/boot',
  '/opt',
  '/srv',
  '/var/www',
  '/root/.ssh',
  '/var/spool/cron',
];

const absolute = z
  .string()
  .min(1)
  .refine((p) => isAbsolute(p), { message: 'must be an absolute path' });

export const agentConfigSchema = z
  .object({
    /** Enrollment token from `cordon agents token --vm <vm>`. */
    token: z.string().min(20),
    /** Where the agent keeps its identity, log positions and baselines. */
    stateDir: z.string().min(1).default('./agent-state'),
    heartbeatS: z.number().positive().default(10),
    /**
     * How often the agent's generation (its identity's counter, kept in the state dir) moves
     * forward while it runs: a VM reverted to a snapshot taken more than two of these before the
     * revert is told by its generation going back.
     */
    checkpointS: z.number().positive().default(60),
    /**
     * At start, file integrity waits this long at most for the coordinator's verdict on this
     * start (a reverted VM is re-baselined, not compared); without one, it compares.
     */
    verdictWaitS: z.number().nonnegative().max(600).default(3),
    /**
     * The policy (on the policy topic) whose `agents` section sets logs, fim and netconf below;
     * what it does not set, this file does.
     */
    policy: z.string().min(1).default('default'),
    logs: z.array(z.object({ path: absolute, format: z.string().optional() }).strict()).default([]),
    /**
     * Logs are read only below these directories, whoever names them (this file or the
     * policy): a policy cannot point the agent at /etc/shadow, nor a symlinked directory lead
     * out of them.
     */
    logRoots: z.array(absolute).min(1).default(['/var/log']),
    /** File integrity watches only below these, whoever names the paths. */
    fimRoots: z.array(absolute).min(1).default(DEFAULT_FIM_ROOTS),
    /** Hashing threads at most, whatever a policy's fim.hashConcurrency asks for. */
    fimMaxHashThreads: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(Math.max(1, Math.min(4, availableParallelism()))),
    /** A log seen for the first time is read from its start or only for new lines. */
    logStartAt: z.enum(['beginning', 'end']).default('end'),
    /** Network configuration snapshots (listening sockets, interfaces, routes): how often to look. */
    netconf: z
      .object({ enabled: z.boolean().default(true), intervalS: z.number().positive().default(30) })
      .strict()
      .default({}),
    /** File integrity: paths, patterns, attributes, schedule (see @cordon/fim-scan's policy). */
    fim: fimPolicySchema.optional(),
    /** Process monitoring: exec/exit/uid events (see @cordon/policy's processPolicySchema); off unless enabled. */
    processes: processPolicySchema.default({}),
    /**
     * Record every process event read to this file too, one JSON object a line (what
     * `cordon proctest --events` reads). Only this file may name it, never the policy.
     */
    processRecord: absolute.optional(),
    /** Anti-malware: YARA over changed files, scheduled scans, quarantine (see @cordon/malware's policy). */
    malware: malwarePolicySchema.optional(),
    /**
     * Network inspection of the VM's own traffic: a capture on its NIC, published for the dpi
     * stage while the coordinator assigns the VM to this agent (from the hand-off's time boundary
     * on; frames meanwhile are held for `holdMs`, so a hand-off leaves no hole).
     */
    capture: z
      .object({
        enabled: z.boolean().default(false),
        interface: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,15}$/, 'a Linux interface name')
          .default('eth0'),
        /** Capture inside this network namespace (the lab's VM). */
        netns: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,64}$/)
          .optional(),
        pollMs: z.number().positive().max(1000).default(50),
        holdMs: z.number().int().min(0).max(600_000).default(10_000),
        holdMaxMiB: z.number().int().min(1).max(1024).default(32),
      })
      .strict()
      .default({}),
    /** Root of the machine's identity files (/etc/machine-id, /sys/class/…): "/" but in tests. */
    sysRoot: z.string().min(1).default('/'),
    enforce: z
      .object({
        enabled: z.boolean().default(true),
        table: z
          .string()
          .regex(/^[A-Za-z][A-Za-z0-9_]{0,31}$/)
          .default('cordon'),
        /**
         * Enforce inside this network namespace instead of the agent's own (a sidecar agent
         * for a namespace-isolated workload; the lab uses it because Kafka listens on the
         * host's loopback only).
         */
        netns: z
          .string()
          .regex(/^[A-Za-z0-9_.-]{1,64}$/)
          .optional(),
        /** Never-block ranges (beyond the built-in ones and the guest's own addresses and gateways), cap and rate. */
        ...enforcerGuardsShape,
      })
      .strict()
      .default({}),
  })
  .strict()
  .superRefine((c, ctx) => {
    // this file's own paths must lie within its own roots: a typo is an error now, not a refusal later
    c.logs.forEach((l, i) => {
      if (!isBelowAny(l.path, c.logRoots))
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['logs', i, 'path'],
          message: `not below logRoots (${c.logRoots.join(', ')})`,
        });
    });
    c.malware?.paths.forEach((p, i) => {
      if (!isBelowAny(p, c.fimRoots))
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['malware', 'paths', i],
          message: `not below fimRoots (${c.fimRoots.join(', ')})`,
        });
    });
    c.fim?.paths.forEach((p, i) => {
      if (!isBelowAny(p, c.fimRoots))
        ctx.addIssue({
          code: z.ZodIssueCode.custom,
          path: ['fim', 'paths', i],
          message: `not below fimRoots (${c.fimRoots.join(', ')})`,
        });
    });
  });

/** True when `path` (normalised) is one of `roots` or below one. */
export function isBelowAny(path: string, roots: readonly string[]): boolean {
  const p = resolve(path);
  return roots.some((r) => {
    const root = resolve(r);
    return p === root || p.startsWith(root === '/' ? '/' : `${root}/`);
  });
}

export type AgentConfig = z.infer<typeof agentConfigSchema>;
export type AgentConfigInput = z.input<typeof agentConfigSchema>;

export function parseAgentConfig(input: unknown): AgentConfig {
  const r = agentConfigSchema.safeParse(input ?? {});
  if (!r.success) throw ERR_AGENT_CONFIG.withCause(r.error, describeConfigIssues(r.error.issues));
  return r.data;
}
