/**
 * Every component reports the same counters: received, sent, dropped, errors — plus its own.
 * A plain in-memory registry; the Prometheus exporter (@cordon/stage) reads it at each scrape.
 */
export class Metrics {
  private counterMap = new Map<string, number>();
  private gaugeMap = new Map<string, number>();

  constructor(private readonly prefix = '') {}

  child(name: string): Metrics {
    const m = new Metrics(this.prefix ? `${this.prefix}.${name}` : name);
    // children share storage with the root so one snapshot sees everything
    m.counterMap = this.counterMap;
    m.gaugeMap = this.gaugeMap;
    return m;
  }

  inc(name: string, by = 1): void {
    const key = this.key(name);
    this.counterMap.set(key, (this.counterMap.get(key) ?? 0) + by);
  }

  set(name: string, value: number): void {
    this.gaugeMap.set(this.key(name), value);
  }

  get(name: string): number {
    const key = this.key(name);
    return this.counterMap.get(key) ?? this.gaugeMap.get(key) ?? 0;
  }

  /** Every counter of the registry (children included), by full dotted key. */
  counters(): ReadonlyMap<string, number> {
    return this.counterMap;
  }

  /** Every gauge of the registry (children included), by full dotted key. */
  gauges(): ReadonlyMap<string, number> {
    return this.gaugeMap;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counterMap, ...this.gaugeMap].sort(([a], [b]) => a.localeCompare(b)));
  }

  private key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }
}
