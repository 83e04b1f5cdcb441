import { isIP } from 'node:net';
import { NftSession } from '@cordon/native';
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

const SETS = {
  drop4: 'ipv4_addr',
  drop6: 'ipv6_addr',
  reject4: 'ipv4_addr',
  reject6: 'ipv6_addr',
} as const;

export class NftEnforcer {
  readonly table: string;
  private readonly ctx: Context;
  private session: NftSession | null = null;

  constructor(private readonly opts: NftOptions) {
    this.table = opts.table ?? 'cordon';
    if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(this.table)) throw ERR_NFT(`table name "${this.table}" is not a plain identifier`);
    this.ctx = childContext(opts.ctx, 'enforce');
  }

  /** Create the table, sets and chain if missing (idempotent; existing elements are kept). */
  async setup(): Promise<void> {
    const t = this.table;
    const sets = Object.entries(SETS)
      .map(([name, type]) => `add set inet ${t} ${name} { type ${type}; flags timeout; }`)
      .join('\n');
    await this.nft(`add table inet ${t}
${sets}
add chain inet ${t} input { type filter hook input priority -10; policy accept; }
flush chain inet ${t} input
add rule inet ${t} input ip saddr @drop4 counter drop
add rule inet ${t} input ip6 saddr @drop6 counter drop
add rule inet ${t} input ip saddr @reject4 counter reject
add rule inet ${t} input ip6 saddr @reject6 counter reject
`);
  }

  /** The address a decision blocks, or a typed error for targets an agent cannot enforce. */
  static targetOf(d: BlockDecision): { ip: string; family: 4 | 6 } {
    const ip = d.target.kind === 'ip' ? d.target.ip : d.target.kind === 'five_tuple' ? d.target.src_ip : null;
    if (!ip) throw ERR_BLOCK_TARGET(`target kind ${d.target.kind} carries no address an agent can block`);
    const family = isIP(ip);
    // The address goes into an nft script: only plain address characters may pass (isIP
    // alone accepts IPv6 zone ids such as "%eth0", which nft sets do not take anyway).
    if (family === 0 || !/^[0-9A-Fa-f:.]+$/.test(ip)) throw ERR_BLOCK_TARGET(`"${ip}" is not a plain IP address`);
    return { ip, family: family as 4 | 6 };
  }

  async apply(d: BlockDecision, nowMs: number): Promise<AppliedBlock | null> {
    const { ip, family } = NftEnforcer.targetOf(d);
    const ttlMs = Math.floor(d.expires_us / 1000 - nowMs);
    if (ttlMs <= 0) return null; // already over
    const set = `${d.action}${family}`;
    const secs = Math.max(1, Math.ceil(ttlMs / 1000));
    // delete first (ignored when absent) so a renewed block gets its new timeout
    await this.nft(`add element inet ${this.table} ${set} { ${ip} timeout ${secs}s }\ndelete element inet ${this.table} ${set} { ${ip} }\nadd element inet ${this.table} ${set} { ${ip} timeout ${secs}s }\n`);
    this.ctx.metrics.inc('applied');
    return { ip, action: d.action, ttlMs };
  }

  /** Remove an address from every set of its family (a lifted block may have been drop or reject). */
  async lift(ip: string): Promise<void> {
    const family = isIP(ip);
    if (family === 0 || !/^[0-9A-Fa-f:.]+$/.test(ip)) throw ERR_BLOCK_TARGET(`"${ip}" is not a plain IP address`);
    // add-then-delete makes the delete succeed whether or not the element is there
    const script = (['drop', 'reject'] as const)
      .map((a) => `add element inet ${this.table} ${a}${family} { ${ip} timeout 1s }\ndelete element inet ${this.table} ${a}${family} { ${ip} }\n`)
      .join('');
    await this.nft(script);
    this.ctx.metrics.inc('lifted');
  }

  /** Addresses currently in the sets, for reports and tests. */
  async list(): Promise<Array<{ set: string; ip: string }>> {
    const out = await this.call((n) => n.json<{ nftables?: unknown[] }>(`list table inet ${this.table}`));
    const res: Array<{ set: string; ip: string }> = [];
    for (const item of (out.nftables ?? []) as Array<Record<string, { name?: string; elem?: unknown[] }>>) {
      const set = item.set;
      if (!set?.elem) continue;
      for (const e of set.elem) {
        const v = typeof e === 'string' ? e : (e as { elem?: { val?: string } }).elem?.val;
        if (typeof v === 'string') res.push({ set: set.name!, ip: v });
      }
    }
    return res;
  }

  async teardown(): Promise<void> {
    await this.nft(`add table inet ${this.table}\ndelete table inet ${this.table}\n`);
  }

  /** Close the nftables session; the table and its elements stay in the kernel. */
  close(): void {
    this.session?.close();
    this.session = null;
  }

  private async nft(script: string): Promise<void> {
    await this.call((n) => n.run(script));
  }

  private async call<T>(op: (n: NftSession) => Promise<T>): Promise<T> {
    try {
      this.session ??= NftSession.open(this.opts.netns ? { netns: this.opts.netns } : {});
      return await op(this.session);
    } catch (err) {
      this.ctx.metrics.inc('errors');
      throw ERR_NFT.withCause(err, (err as Error).message.trim().split('\n').slice(0, 3).join(' | '));
    }
  }
}
