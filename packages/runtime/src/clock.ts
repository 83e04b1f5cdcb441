/** A clock you can pass is a clock a test can control. */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
}

export const systemClock: Clock = { now: () => Date.now() };

/**
 * The system clock set off by `offsetMs`: a lab's guest whose clock is wrong. A sensor on it
 * moves its capture's stamps (the kernel's, on the system clock) by the same offset, as the
 * guest's kernel would have stamped them.
 */
export class OffsetClock implements Clock {
  constructor(readonly offsetMs: number) {}
  now(): number {
    return Date.now() + this.offsetMs;
  }
}

/** How far `clock` is set off from the system's (and the kernel's), µs: 0 but for an OffsetClock. */
export function clockOffsetUs(clock: Clock): number {
  return clock instanceof OffsetClock ? Math.round(clock.offsetMs * 1000) : 0;
}

export class ManualClock implements Clock {
  constructor(private t = 0) {}
  now(): number {
    return this.t;
  }
  set(t: number): void {
    this.t = t;
  }
  advance(ms: number): void {
    this.t += ms;
  }
}
