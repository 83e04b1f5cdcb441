/**
 * Every hand-off compares stamps of different machines: an agent's frames and leases are stamped
 * by the guest's clock, the watchdog's by its host's, and the coordinator decides on its own. A
 * guest whose clock is off by *s* leaves up to *s* of its VM's traffic to nobody (or to both) at
 * each hand-off, and a heartbeat stamped *s* ahead looks *s* fresher than it is.
 *
 * So the coordinator measures each sender's clock against its own, from the records it gets:
 * a record stamped `stamp` by its sender and handled at `now` gives `stamp − now` = the offset
 * less the time the record took to arrive. The largest of the last few is the offset less the
 * quickest arrival (a record that waited in a queue only lowers its sample): on one bus that is a
 * millisecond or less, against the hundreds of milliseconds an unsynchronized guest drifts.
 */
export class ClockOffsets {
  private readonly byKey = new Map<string, number[]>();

  /** `window`: the samples an estimate is the largest of (a clock set back shows within it). */
  constructor(private readonly window = 32) {}

  /** A record of `key`'s stamped `stampUs` by its sender and handled at `nowUs`: the estimate after it, µs. */
  add(key: string, stampUs: number, nowUs: number): number {
    let s = this.byKey.get(key);
    if (!s) this.byKey.set(key, (s = []));
    s.push(stampUs - nowUs);
    if (s.length > this.window) s.shift();
    return Math.max(...s);
  }

  /** How many of `key`'s records the estimate is the largest of (at most the window). */
  samples(key: string): number {
    return this.byKey.get(key)?.length ?? 0;
  }

  /** `key`'s clock less the coordinator's, µs; null when none of its records was handled live. */
  get(key: string): number | null {
    const s = this.byKey.get(key);
    return s?.length ? Math.max(...s) : null;
  }

  forget(key: string): void {
    this.byKey.delete(key);
  }

  get size(): number {
    return this.byKey.size;
  }
}
