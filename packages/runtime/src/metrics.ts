/**
 * Every component reports the same counters: received, sent, dropped, errors — plus its own.
 * A plain in-memory registry; exporters read `snapshot()`.
 */
export class Metrics {
  private readonly counters = new Map<string, number>();
  private readonly gauges = new Map<string, number>();

  constructor(private readonly prefix = '') {}

  child(name: string): Metrics {
    const m = new Metrics(this.prefix ? `${this.prefix}.${name}` : name);
    // children share storage with the root so one snapshot sees everything
    (m as unknown as { counters: Map<string, number> }).counters = this.counters;
    (m as unknown as { gauges: Map<string, number> }).gauges = this.gauges;
    return m;
  }

  inc(name: string, by = 1): void {
    const key = this.key(name);
    this.counters.set(key, (this.counters.get(key) ?? 0) + by);
  }

  set(name: string, value: number): void {
    this.gauges.set(this.key(name), value);
  }

  get(name: string): number {
    const key = this.key(name);
    return this.counters.get(key) ?? this.gauges.get(key) ?? 0;
  }

  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counters, ...this.gauges].sort(([a], [b]) => a.localeCompare(b)));
  }

  private key(name: string): string {
    return this.prefix ? `${this.prefix}.${name}` : name;
  }
}
