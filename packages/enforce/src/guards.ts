import { z } from 'zod';
import type { Clock } from '@cordon/runtime';
import { ERR_BLOCK_CAP, ERR_BLOCK_NEVER_BLOCK, ERR_BLOCK_RATE } from './errors.js';
import { parseRange, type NeverBlock } from './never-block.js';

/**
 * What an enforcer's configuration says about the decisions it accepts (the watchdog's and the
 * agent's `enforce` sections both spread it): ranges it never blocks on top of the built-in
 * list, the most elements it keeps in force, and how many new ones a minute it applies.
 */
export const enforcerGuardsShape = {
  /** Addresses and CIDR ranges never blocked, on top of the built-in list and this machine's own. */
  neverBlock: z
    .array(
      z
        .string()
        .refine((s) => parseRange(s) !== null, { message: 'an IP address or CIDR range (10.0.0.0/8, 2001:db8::/32)' }),
    )
    .default([]),
  /** Blocks in force at most; past it a new target is refused, and an alert says so. */
  maxBlocks: z.number().int().positive().max(1_000_000).default(10_000),
  /** New targets a minute at most (a bucket of this many, refilled over a minute); restoring at start is not counted. */
  maxNewPerMinute: z.number().int().positive().max(1_000_000).default(600),
};

export const enforcerGuardsSchema = z.object(enforcerGuardsShape).strict();
export type EnforcerGuardsConfig = z.infer<typeof enforcerGuardsSchema>;
export type EnforcerGuardsInput = z.input<typeof enforcerGuardsSchema>;

export type Refusal = { kind: 'never-block' | 'cap' | 'rate'; err: Error };

/**
 * The checks a decision passes before its element is applied: never-block first (no count can
 * make such a block right), then the cap on elements in force, then the rate of new ones. A
 * renewal of a target already in force adds no element: only the never-block list applies.
 */
export class BlockGuards {
  private tokens: number;
  private last: number;

  constructor(
    readonly config: EnforcerGuardsConfig,
    readonly neverBlock: NeverBlock,
    private readonly clock: Clock,
  ) {
    this.tokens = config.maxNewPerMinute;
    this.last = clock.now();
  }

  /** Null when the decision may be applied; else the reason it is refused. Takes a token when it passes as new. */
  check(target: string, inForce: number, renewal: boolean, restoring: boolean): Refusal | null {
    const why = this.neverBlock.why(target);
    if (why !== null) return { kind: 'never-block', err: ERR_BLOCK_NEVER_BLOCK(target, why) };
    if (renewal) return null;
    if (inForce >= this.config.maxBlocks) return { kind: 'cap', err: ERR_BLOCK_CAP(target, this.config.maxBlocks) };
    if (restoring) return null;
    const now = this.clock.now();
    const perMs = this.config.maxNewPerMinute / 60_000;
    this.tokens = Math.min(this.config.maxNewPerMinute, this.tokens + Math.max(0, now - this.last) * perMs);
    this.last = now;
    if (this.tokens < 1) return { kind: 'rate', err: ERR_BLOCK_RATE(target, this.config.maxNewPerMinute) };
    this.tokens -= 1;
    return null;
  }
}
