import type { ThresholdSpec } from './detect-rules.js';

/**
 * "N events of one key within a window" counters, as fail2ban counts failures per address.
 * Time is log time passed in by the caller; a counter that crosses resets (the address is
 * about to be blocked; counting starts again for when the block expires). Bounded: past
 * `maxKeys` the key touched least recently is forgotten (and counted as an eviction).
 */
export interface Crossing {
  group: string;
  key: string;
  /** Events (or distinct values) counted when it crossed. */
  count: number;
  windowMs: number;
  firstMs: number;
}

interface Counter {
  /** Event times in the window (ascending). */
  times: number[];
  /** Distinct value → last time seen (Sigma count(field)). */
  values: Map<string, number> | null;
}

export class ThresholdTable {
  private readonly counters = new Map<string, Counter>();
  evictions = 0;

  constructor(private readonly maxKeys: number) {}

  get size(): number {
    return this.counters.size;
  }

  add(spec: ThresholdSpec, key: string, now: number, distinct: string | null): Crossing | null {
    const id = `${spec.group}\u0000${key}`;
    let c = this.counters.get(id);
    if (c) this.counters.delete(id); // re-inserted below: Map order = recency
    else c = { times: [], values: spec.distinct ? new Map() : null };
    this.counters.set(id, c);
    if (this.counters.size > this.maxKeys) {
      this.counters.delete(this.counters.keys().next().value!);
      this.evictions++;
    }
    const from = now - spec.windowMs;
    let count: number;
    let firstMs: number;
    if (c.values) {
      c.values.set(distinct ?? '', now);
      for (const [v, t] of c.values) if (t < from) c.values.delete(v);
      count = c.values.size;
      firstMs = Math.min(...c.values.values());
    } else {
      // out-of-order lines (merged sources) are placed by time, so the window stays exact
      let i = c.times.length;
      while (i > 0 && c.times[i - 1]! > now) i--;
      if (i === c.times.length) c.times.push(now);
      else c.times.splice(i, 0, now);
      let drop = 0;
      while (drop < c.times.length && c.times[drop]! < from) drop++;
      if (drop) c.times.splice(0, drop);
      count = c.times.length;
      firstMs = c.times[0]!;
    }
    if (count < spec.count) return null;
    this.counters.delete(id);
    return { group: spec.group, key, count, windowMs: spec.windowMs, firstMs };
  }
}
