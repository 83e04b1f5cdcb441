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
  key: string;
  groupName: string;
  /** The counters of its group, to leave when forgotten. */
  group: Map<string, Counter>;
  /** Event times in the window (ascending). */
  times: number[];
  /** Distinct value → last time seen (Sigma count(field)). */
  values: Map<string, number> | null;
  /** Neighbours in recency order (least recent first); `linked` while in the table. */
  older: Counter | null;
  newer: Counter | null;
  linked: boolean;
}

/** One counter as a checkpoint holds it. */
export interface CounterSnapshot {
  group: string;
  key: string;
  times: number[];
  /** [distinct value, last time seen] for count(field) rules. */
  values: Array<[string, number]> | null;
}

export class ThresholdTable {
  /** Group → key → counter: no `group + key` string is built (and hashed) per event. */
  private readonly groups = new Map<string, Map<string, Counter>>();
  private oldest: Counter | null = null;
  private newest: Counter | null = null;
  private count = 0;
  evictions = 0;

  constructor(private readonly maxKeys: number) {}

  get size(): number {
    return this.count;
  }

  add(spec: ThresholdSpec, key: string, now: number, distinct: string | null): Crossing | null {
    let group = this.groups.get(spec.group);
    if (!group) {
      group = new Map();
      this.groups.set(spec.group, group);
    }
    let c = group.get(key);
    if (c) this.unlink(c);
    else {
      c = {
        key,
        groupName: spec.group,
        group,
        times: [],
        values: spec.distinct ? new Map() : null,
        older: null,
        newer: null,
        linked: false,
      };
      group.set(key, c);
      this.count++;
    }
    this.append(c);
    if (this.count > this.maxKeys) {
      this.forget(this.oldest!);
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
    this.forget(c);
    return { group: spec.group, key, count, windowMs: spec.windowMs, firstMs };
  }

  /** Every counter, least recently touched first (the order `restore` needs to evict alike). */
  snapshot(): CounterSnapshot[] {
    const out: CounterSnapshot[] = [];
    for (let c = this.oldest; c; c = c.newer) {
      out.push({ group: c.groupName, key: c.key, times: [...c.times], values: c.values ? [...c.values] : null });
    }
    return out;
  }

  /** A table holding `counters` (from `snapshot`), in their recency order. */
  static restore(maxKeys: number, counters: CounterSnapshot[]): ThresholdTable {
    const t = new ThresholdTable(maxKeys);
    for (const s of counters.slice(-maxKeys)) {
      let group = t.groups.get(s.group);
      if (!group) t.groups.set(s.group, (group = new Map()));
      const c: Counter = {
        key: s.key,
        groupName: s.group,
        group,
        times: [...s.times],
        values: s.values ? new Map(s.values) : null,
        older: null,
        newer: null,
        linked: false,
      };
      group.set(s.key, c);
      t.count++;
      t.append(c);
    }
    return t;
  }

  /** Make `c` the most recently touched. */
  private append(c: Counter): void {
    c.older = this.newest;
    c.newer = null;
    if (this.newest) this.newest.newer = c;
    else this.oldest = c;
    this.newest = c;
    c.linked = true;
  }

  private unlink(c: Counter): void {
    if (c.older) c.older.newer = c.newer;
    else this.oldest = c.newer;
    if (c.newer) c.newer.older = c.older;
    else this.newest = c.older;
    c.older = c.newer = null;
    c.linked = false;
  }

  /** Drop the counter (a crossing resets it; the least recent goes when the table is full). */
  private forget(c: Counter): void {
    if (!c.linked) return;
    this.unlink(c);
    c.group.delete(c.key);
    this.count--;
  }
}
