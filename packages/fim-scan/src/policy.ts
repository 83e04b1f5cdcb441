import { isAbsolute, normalize } from 'node:path';
import { availableParallelism } from 'node:os';
import { z } from 'zod';
import { describeConfigIssues } from '@cordon/runtime';
import { ERR_FIM_POLICY } from './errors.js';
import { compileGlob, type GlobMatcher } from './glob.js';

/**
 * The attributes FIM can check, as AIDE (p i u g s m c sha256, l for link targets),
 * Tripwire and OSSEC syscheck name them. `owner` and `group` are the names of uid/gid,
 * resolved from /etc/passwd and /etc/group at scan time (AIDE's u and g compare the numbers;
 * the names are what an analyst reads).
 */
export const FILE_ATTRIBUTES = [
  'type',
  'size',
  'mode',
  'uid',
  'gid',
  'owner',
  'group',
  'inode',
  'mtime',
  'ctime',
  'sha256',
  'link_target',
] as const;
export type FileAttribute = (typeof FILE_ATTRIBUTES)[number];

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

export const fimPolicySchema = z
  .object({
    /** Absolute paths watched recursively (a file may be named directly). */
    paths: z.array(z.string().refine((p) => isAbsolute(p), { message: 'must be an absolute path' })).min(1),
    /** When not empty, only paths matching one of these are recorded (directories are still descended). */
    include: z.array(glob).default([]),
    /** Matching paths are skipped; a matching directory is not descended. */
    exclude: z.array(glob).default([]),
    /** Attributes whose change is a change. Default: all of them, as AIDE's p+i+u+g+s+m+c+sha256 plus link targets. */
    attributes: z
      .array(z.enum(FILE_ATTRIBUTES))
      .min(1)
      .default([...FILE_ATTRIBUTES]),
    /** inotify watches on every watched directory; off: scheduled scans only. */
    realtime: z.boolean().default(true),
    /** Seconds between scheduled full scans; 0: none (startup scan and realtime only). */
    scanIntervalS: z.number().nonnegative().default(3600),
    /** Files larger than this are not hashed (their other attributes are still checked). */
    maxHashBytes: z
      .number()
      .int()
      .positive()
      .default(256 * 1024 * 1024),
    /** Hashing workers (threads). */
    hashConcurrency: z
      .number()
      .int()
      .min(1)
      .max(64)
      .default(Math.max(1, Math.min(4, availableParallelism()))),
    /**
     * Reuse the baseline's SHA-256 when size, mtime, ctime, inode and device are unchanged.
     * Off by default: AIDE and Tripwire re-hash every file on every check, and so does Cordon
     * unless the policy says this shortcut is acceptable (ctime cannot be set from user space,
     * so only a raw-device or kernel-level writer could slip past it).
     */
    trustStat: z.boolean().default(false),
    /** Realtime: quiet time before changed paths are re-checked … */
    debounceMs: z.number().int().nonnegative().default(200),
    /** … but never longer than this after the first change of a burst. */
    maxDelayMs: z.number().int().positive().default(1000),
    /** Realtime: distinct changed paths held before falling back to a rescan of the watched trees. */
    maxPendingPaths: z.number().int().positive().default(10_000),
    /** Realtime: directory watches at most; beyond it the scheduled scan covers the rest. */
    maxWatches: z.number().int().positive().default(65_536),
    /** Baseline writes after realtime changes are batched: at most one per this many ms. */
    persistIntervalMs: z.number().int().nonnegative().default(5000),
  })
  .strict();

export type FimPolicyInput = z.input<typeof fimPolicySchema>;
export type FimPolicyConfig = z.infer<typeof fimPolicySchema>;

/** The validated policy with its patterns compiled. */
export interface FimPolicy extends FimPolicyConfig {
  readonly includeGlobs: readonly GlobMatcher[];
  readonly excludeGlobs: readonly GlobMatcher[];
  readonly attributeSet: ReadonlySet<FileAttribute>;
}

/** Parse once at the edge: defaults filled in, unknown keys rejected by name. */
export function parseFimPolicy(input: unknown): FimPolicy {
  if (isCompiled(input)) return input;
  const r = fimPolicySchema.safeParse(input ?? {});
  if (!r.success) throw ERR_FIM_POLICY.withCause(r.error, describeConfigIssues(r.error.issues));
  const cfg = r.data;
  // Roots below other roots would be scanned twice.
  const paths = [...new Set(cfg.paths.map((p) => trimSlash(normalize(p))))].sort();
  const roots = paths.filter((p) => !paths.some((q) => q !== p && isUnder(p, q)));
  return {
    ...cfg,
    paths: roots,
    includeGlobs: cfg.include.map(compileGlob),
    excludeGlobs: cfg.exclude.map(compileGlob),
    attributeSet: new Set(cfg.attributes),
  };
}

function isCompiled(x: unknown): x is FimPolicy {
  return typeof x === 'object' && x !== null && 'attributeSet' in x && 'excludeGlobs' in x;
}

export function isExcluded(policy: FimPolicy, path: string): boolean {
  return policy.excludeGlobs.some((g) => g.matches(path));
}

export function isIncluded(policy: FimPolicy, path: string): boolean {
  return policy.includeGlobs.length === 0 || policy.includeGlobs.some((g) => g.matches(path));
}

/** True when `path` is `dir` or below it. */
export function isUnder(path: string, dir: string): boolean {
  return path === dir || (path.startsWith(dir) && (dir.endsWith('/') || path.charCodeAt(dir.length) === 47));
}

function trimSlash(p: string): string {
  return p.length > 1 && p.endsWith('/') ? p.slice(0, -1) : p;
}
