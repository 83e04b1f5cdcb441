import { NftSession } from './nft.js';
import { ERR_NATIVE_NFT } from './errors.js';

export type BlockAction = 'drop' | 'reject';

export interface BlockElement {
  set: string;
  ip: string;
}

/** One set per action and address family; an address is in one of them at most. */
export const BLOCK_SETS = { drop4: 'ipv4_addr', drop6: 'ipv6_addr', reject4: 'ipv4_addr', reject6: 'ipv6_addr' } as const;

/**
 * A duration in nft's own units ("7d", "1d18h40m", "250ms"). nft (1.0.6) refuses a count of
 * 100,000,000 milliseconds (27.7 hours) and more with "value too large", so TTLs written as
 * "<n>ms" stopped short of a repeat offender's day-and-more blocks.
 */
export function nftDuration(ms: number): string {
  if (!Number.isSafeInteger(ms) || ms < 1) throw ERR_NATIVE_NFT('writing a timeout', `${ms} ms is not a whole number of milliseconds of at least 1`);
  const parts: string[] = [];
  let rest = ms;
  for (const [unit, size] of [['d', 86_400_000], ['h', 3_600_000], ['m', 60_000], ['s', 1000], ['ms', 1]] as const) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0) parts.push(`${n}${unit}`);
  }
  return parts.join('');
}

/**
 * Blocked addresses as elements with per-element timeouts in one nftables table: the kernel
 * expires a block at its TTL whether or not its enforcer still runs. The watchdog (bridge
 * family) and the agent (inet family) each write their own chain around these sets.
 *
 * Addresses reach nft scripts verbatim: callers pass plain IP addresses they have checked.
 * Every change is one transaction on a long-lived libnftables session.
 */
export class NftBlockSets {
  private session: NftSession | null = null;

  constructor(
    readonly family: 'inet' | 'bridge',
    readonly table: string,
    private readonly netns?: string,
  ) {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(table)) throw ERR_NATIVE_NFT('naming the nftables table', `"${table}" is not a plain identifier`);
  }

  /** The table and its sets, created if missing (existing elements are kept). */
  declarations(): string[] {
    const t = `${this.family} ${this.table}`;
    return [`add table ${t}`, ...Object.entries(BLOCK_SETS).map(([name, type]) => `add set ${t} ${name} { type ${type}; flags timeout; }`)];
  }

  /** Apply a script as one transaction. */
  async run(script: string): Promise<void> {
    await this.open().run(script);
  }

  /** Block `ip` for `ttlMs` with `action`; a renewal gets the new timeout; returns the set. */
  async put(ip: string, ipFamily: 4 | 6, action: BlockAction, ttlMs: number): Promise<string> {
    const t = `${this.family} ${this.table}`;
    const set = `${action}${ipFamily}`;
    const other = `${action === 'drop' ? 'reject' : 'drop'}${ipFamily}`;
    // add-then-delete deletes whether or not the element is there: out of the other action's
    // set, then a fresh element (an existing one would keep its old timeout)
    await this.run(
      `add element ${t} ${other} { ${ip} timeout 1s }\ndelete element ${t} ${other} { ${ip} }\n` +
        `add element ${t} ${set} { ${ip} timeout ${nftDuration(ttlMs)} }\ndelete element ${t} ${set} { ${ip} }\nadd element ${t} ${set} { ${ip} timeout ${nftDuration(ttlMs)} }\n`,
    );
    return set;
  }

  /** Unblock `ip` (whichever action it had; nothing to do is fine). */
  async remove(ip: string, ipFamily: 4 | 6): Promise<void> {
    const t = `${this.family} ${this.table}`;
    await this.run((['drop', 'reject'] as const).map((a) => `add element ${t} ${a}${ipFamily} { ${ip} timeout 1s }\ndelete element ${t} ${a}${ipFamily} { ${ip} }\n`).join(''));
  }

  /** The elements in the sets now. */
  async list(): Promise<BlockElement[]> {
    const out = await this.open().json<{ nftables?: Array<{ set?: { name?: string; elem?: unknown[] } }> }>(`list table ${this.family} ${this.table}`);
    const res: BlockElement[] = [];
    for (const item of out.nftables ?? []) {
      const set = item.set;
      if (!set?.name || !set.elem || !(set.name in BLOCK_SETS)) continue;
      for (const e of set.elem) {
        // with a timeout an element prints as { elem: { val, timeout, expires } }
        const v = typeof e === 'string' ? e : (e as { elem?: { val?: unknown } }).elem?.val;
        if (typeof v === 'string') res.push({ set: set.name, ip: v });
      }
    }
    return res;
  }

  /** Remove every element whose address is not in `keep` (blocks lifted while the enforcer was down). */
  async removeExcept(keep: Set<string>): Promise<BlockElement[]> {
    const stale = (await this.list()).filter((e) => !keep.has(e.ip));
    // what nft printed goes back into a script: plain address characters only
    const bad = stale.find((e) => !/^[0-9A-Fa-f:.]+$/.test(e.ip));
    if (bad) throw ERR_NATIVE_NFT(`listing ${this.table}`, `nft printed an element that is not a plain address: ${bad.ip}`);
    if (stale.length) await this.run(stale.map((e) => `delete element ${this.family} ${this.table} ${e.set} { ${e.ip} }\n`).join(''));
    return stale;
  }

  /** Delete the table, its chains and every element. */
  async drop(): Promise<void> {
    await this.run(`add table ${this.family} ${this.table}\ndelete table ${this.family} ${this.table}\n`);
  }

  /** The session, opened at first use (a setup error surfaces where the caller handles it). */
  private open(): NftSession {
    return (this.session ??= NftSession.open(this.netns ? { netns: this.netns } : {}));
  }

  /** Close the session; the table and its elements stay in the kernel. */
  close(): void {
    this.session?.close();
    this.session = null;
  }
}
