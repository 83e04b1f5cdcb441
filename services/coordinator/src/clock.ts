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
 *
 * Records handled in one burst are one measurement, not several: a reader that starts (or falls
 * behind) gets the records sent meanwhile all at once, every one of them late, so they all make
 * the sender look behind. Only samples handled at separate moments, apart by at least `gapUs`
 * (half a heartbeat interval), count toward how well an estimate is measured (`samples`).
 */
export class ClockOffsets {
  private readonly byKey = new Map<string, { offsets: number[]; moments: number; lastMomentUs: number }>();

  /** `window`: the samples an estimate is the largest of (a clock set back shows within it). */
  constructor(private readonly window = 32) {}

  /**
   * A record of `key`'s stamped `stampUs` by its sender and handled at `nowUs`: the estimate after
   * it, µs. `gapUs`: how long after the last counted moment a record counts as another one.
   */
  add(key: string, stampUs: number, nowUs: number, gapUs = 0): number {
    let s = this.byKey.get(key);
    if (!s) this.byKey.set(key, (s = { offsets: [], moments: 0, lastMomentUs: -Infinity }));
    s.offsets.push(stampUs - nowUs);
    if (s.offsets.length > this.window) s.offsets.shift();
    if (nowUs - s.lastMomentUs >= gapUs || s.moments === 0) {
      s.moments = Math.min(s.moments + 1, this.window);
      s.lastMomentUs = nowUs;
    }
    return Math.max(...s.offsets);
  }

  /** How many separate moments `key`'s estimate is measured at (at most the window). */
  samples(key: string): number {
    return this.byKey.get(key)?.moments ?? 0;
  }

  /** `key`'s clock less the coordinator's, µs; null when none of its records was handled live. */
  get(key: string): number | null {
    const s = this.byKey.get(key);
    return s?.offsets.length ? Math.max(...s.offsets) : null;
  }

  forget(key: string): void {
    this.byKey.delete(key);
  }

  get size(): number {
    return this.byKey.size;
  }
}
