import { NftBlockSets } from '@cordon/native';
import { plainIpFamily } from '@cordon/policy';
import { childContext, type Context } from '@cordon/runtime';
import type { BlockDecision } from '@cordon/schemas';
import { ERR_BLOCK_TARGET, ERR_NFT } from './errors.js';

/**
 * Local enforcement with nftables (inet family) in the agent's own network namespace: one
 * table, sets of addresses with per-element timeouts (the kernel expires them, so a block
 * outlives neither its TTL nor a crashed agent's intent), and an input chain that drops or
 * rejects traffic from them. Every change is one transaction through a long-lived libnftables
 * session (~0.1 ms; spawning `nft` cost 7–14 ms per block).
 */
export interface NftOptions {
  table?: string;
  ctx: Context;
  /** Enforce inside this network namespace (a test's guest) instead of the process's own. */
  netns?: string;
}

export interface AppliedBlock {
  ip: string;
  action: 'drop' | 'reject';
  /** Milliseconds left when applied. */
  ttlMs: number;
}

export class NftEnforcer {
  readonly table: string;
  private readonly ctx: Context;
  private readonly sets: NftBlockSets;

  constructor(opts: NftOptions) {
    this.table = opts.table ?? 'cordon';
    if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(this.table))
      throw ERR_NFT(`table name "${this.table}" is not a plain identifier`);
    this.ctx = childContext(opts.ctx, 'enforce');
    this.sets = new NftBlockSets('inet', this.table, opts.netns);
  }

  /** Create the table, sets and chain if missing (idempotent; existing elements are kept). */
  async setup(): Promise<void> {
    const t = `inet ${this.table}`;
    await this.guard(() =>
      this.sets.run(
        [
          ...this.sets.declarations(),
          `add chain ${t} input { type filter hook input priority -10; policy accept; }`,
          `flush chain ${t} input`,
          `add rule ${t} input ip saddr @drop4 counter drop`,
          `add rule ${t} input ip6 saddr @drop6 counter drop`,
          `add rule ${t} input ip saddr @reject4 counter reject`,
          `add rule ${t} input ip6 saddr @reject6 counter reject`,
          '',
        ].join('\n'),
      ),
    );
  }

  /** The address a decision blocks, or a typed error for targets an agent cannot enforce. */
  static targetOf(d: BlockDecision): { ip: string; family: 4 | 6 } {
    const ip = d.target.kind === 'ip' ? d.target.ip : d.target.kind === 'five_tuple' ? d.target.src_ip : null;
    if (!ip) throw ERR_BLOCK_TARGET(`target kind ${d.target.kind} carries no address an agent can block`);
    return { ip, family: checkedFamily(ip) };
  }

  async apply(d: BlockDecision, nowMs: number): Promise<AppliedBlock | null> {
    const { ip, family } = NftEnforcer.targetOf(d);
    const ttlMs = Math.floor(d.expires_us / 1000 - nowMs);
    if (ttlMs <= 0) return null; // already over
    await this.guard(() => this.sets.put(ip, family, d.action, ttlMs));
    this.ctx.metrics.inc('applied');
    return { ip, action: d.action, ttlMs };
  }

  /** Remove an address from every set of its family (a lifted block may have been drop or reject). */
  async lift(ip: string): Promise<void> {
    const family = checkedFamily(ip);
    await this.guard(() => this.sets.remove(ip, family));
    this.ctx.metrics.inc('lifted');
  }

  /** Addresses currently in the sets, for reports and tests. */
  list(): Promise<Array<{ set: string; ip: string }>> {
    return this.guard(() => this.sets.list());
  }

  /** Remove every element whose address is not in `keep` (blocks lifted while the agent was down). */
  async reconcile(keep: Set<string>): Promise<number> {
    return (await this.guard(() => this.sets.removeExcept(keep))).length;
  }

  async teardown(): Promise<void> {
    await this.guard(() => this.sets.drop());
  }

  /** Close the nftables session; the table and its elements stay in the kernel. */
  close(): void {
    this.sets.close();
  }

  private async guard<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
    } catch (err) {
      this.ctx.metrics.inc('errors');
      throw ERR_NFT.withCause(err, (err as Error).message.trim().split('\n').slice(0, 3).join(' | '));
    }
  }
}

function checkedFamily(ip: string): 4 | 6 {
  // The address is spliced into an nft script: plain address characters only (IPv6 zone
  // ids such as "%eth0" are refused; nft sets do not take them anyway).
  const f = plainIpFamily(ip);
  if (f === 0) throw ERR_BLOCK_TARGET(`"${ip}" is not a plain IP address`);
  return f;
}
