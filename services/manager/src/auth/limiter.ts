/**
 * Sign-in throttling: a user name tried from one address fails `maxFailures` times within
 * `windowMs` → that pair is locked out for `lockoutMs`; one address failing `perIpMax` times
 * within a minute, whatever the names, is locked out too (a spray across users). Kept in the
 * memory of each manager instance: two instances each allow their own count (the audit
 * trail has every failure either way).
 */
export interface LimiterConfig {
  maxFailures: number;
  windowMs: number;
  lockoutMs: number;
  perIpMax: number;
}

interface Entry {
  failures: number[];
  lockedUntil: number;
}

export class LoginLimiter {
  private readonly pairs = new Map<string, Entry>();
  private readonly ips = new Map<string, Entry>();

  constructor(private readonly cfg: LimiterConfig) {}

  /** Milliseconds until this pair may try again (0: now). */
  retryAfter(user: string, ip: string, now: number): number {
    const a = this.pairs.get(`${user}\n${ip}`);
    const b = this.ips.get(ip);
    return Math.max(0, (a?.lockedUntil ?? 0) - now, (b?.lockedUntil ?? 0) - now);
  }

  failed(user: string, ip: string, now: number): void {
    this.count(this.pairs, `${user}\n${ip}`, now, this.cfg.windowMs, this.cfg.maxFailures);
    this.count(this.ips, ip, now, 60_000, this.cfg.perIpMax);
    if (this.pairs.size > 100_000) this.sweep(now);
  }

  succeeded(user: string, ip: string): void {
    this.pairs.delete(`${user}\n${ip}`);
  }

  private count(map: Map<string, Entry>, key: string, now: number, windowMs: number, max: number): void {
    const e = map.get(key) ?? { failures: [], lockedUntil: 0 };
    e.failures = e.failures.filter((t) => t > now - windowMs);
    e.failures.push(now);
    if (e.failures.length >= max) {
      e.lockedUntil = now + this.cfg.lockoutMs;
      e.failures = [];
    }
    map.set(key, e);
  }

  private sweep(now: number): void {
    for (const map of [this.pairs, this.ips])
      for (const [k, e] of map)
        if (e.lockedUntil < now && e.failures.every((t) => t < now - this.cfg.windowMs)) map.delete(k);
  }
}
