import type { Clock } from './clock.js';
import { systemClock } from './clock.js';
import type { Logger } from './logger.js';
import { createLogger } from './logger.js';
import { Metrics } from './metrics.js';

/** What every stage is handed instead of reaching for globals. */
export interface Context {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly clock: Clock;
}

export function createContext(overrides: Partial<Context> = {}): Context {
  return {
    log: overrides.log ?? createLogger(),
    metrics: overrides.metrics ?? new Metrics(),
    clock: overrides.clock ?? systemClock,
  };
}

export function childContext(ctx: Context, component: string): Context {
  return { log: ctx.log.child({ component }), metrics: ctx.metrics.child(component), clock: ctx.clock };
}

/**
 * A queue that runs the functions handed to it one at a time, in order, whatever each returns
 * or throws (its own caller sees that): for a stage's batches, checkpoints and rebalance
 * callbacks, which share state and each await the bus in the middle.
 */
export function serialized(): <T>(fn: () => Promise<T>) => Promise<T> {
  let tail: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const run = tail.then(fn, fn);
    tail = run.catch(() => undefined);
    return run;
  };
}
