import { isAbsolute } from 'node:path';
import { z } from 'zod';

/**
 * Process monitoring in the agent (exec, exit and uid events on `cordon.processes.v1`): what a
 * policy's `agents.default.processes` / `agents.vms.<vm>.processes` sets, as for fim and logs.
 * Where its events are recorded to a file is not here but in the agent's own file: a policy
 * must not make an agent write a path of its choosing.
 */
export const processPolicySchema = z
  .object({
    enabled: z.boolean().default(false),
    /** `auto`: the kernel's process events connector (root), else /proc polling. */
    mode: z.enum(['auto', 'connector', 'poll']).default('auto'),
    /** /proc polling interval (poll mode only). */
    pollMs: z.number().int().min(50).max(60_000).default(1000),
    /**
     * Executables whose events are not published (still kept for process trees): exact paths,
     * or with `*` (any characters, also `/`). A noisy monitoring agent, a build farm's compiler.
     */
    excludeImages: z
      .array(
        z
          .string()
          .min(1)
          .refine((p) => isAbsolute(p), { message: 'must be an absolute path (or pattern)' }),
      )
      .max(1000)
      .default([]),
    /** Exit events too (twice the volume); exec and uid changes always. */
    exits: z.boolean().default(true),
    /** Events published per second at most; beyond, they are counted as dropped and alerted. */
    maxEventsPerSecond: z.number().int().min(1).max(1_000_000).default(5000),
    /** Events waiting in the agent at most (its native queue); beyond, dropped, counted and alerted. */
    maxQueue: z.number().int().min(16).max(1_048_576).default(65_536),
    /**
     * Below this many execs a second the agent's reader runs at a raised priority (root), so a
     * short process's details are read before it is gone; above, it yields to the machine's
     * own work (an exec storm loses details, counted as incomplete, not events). 0: never raised.
     */
    boostBelowExecsPerSecond: z.number().int().min(0).max(1_000_000).default(500),
    /** Executables larger than this are not hashed. */
    hashMaxMiB: z.number().int().min(0).max(4096).default(64),
    /** Processes remembered for process trees (oldest forgotten first). */
    tableSize: z.number().int().min(64).max(1_048_576).default(32_768),
    /**
     * Where the setuid executables of the baseline are found at start: a setuid executable
     * run from elsewhere, or changed since, is `suid_new`.
     */
    suidBaselineDirs: z
      .array(z.string().refine((p) => isAbsolute(p), { message: 'must be an absolute path' }))
      .max(64)
      .default([
        '/bin',
        '/sbin',
        '/usr/bin',
        '/usr/sbin',
        '/usr/lib',
        '/usr/libexec',
        '/usr/local/bin',
        '/usr/local/sbin',
      ]),
  })
  .strict();
export type ProcessPolicy = z.infer<typeof processPolicySchema>;
