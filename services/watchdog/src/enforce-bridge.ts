import { childContext, type Context } from '@cordon/runtime';
import { NftSession } from '@cordon/native';
import { plainIpFamily } from '@cordon/policy';
import type { BlockDecision } from '@cordon/schemas';
import { ERR_WATCHDOG_BLOCK_TARGET, ERR_WATCHDOG_NFT } from './errors.js';

/**
 * Enforcement on the host's virtual switch: nftables in the **bridge** family, so frames
 * between VMs on the same bridge — which never touch the host's IP stack — are filtered too.
 * One table; four sets of source addresses with per-element timeouts (the kernel expires a
 * block at its TTL, even if the watchdog is down); a forward chain that drops (or rejects)
 * frames from them.
 *
 * Why by source, on the whole bridge, and not per destination VM: a block is keyed by
 * enforcer + target, so a host holds one decision per attacker, not per (attacker, VM) pair;
 * an attacker that hit one VM of a host tries its neighbours next; and matching only the
 * source keeps the rule independent of the inventory (a VM that changes IP or MAC cannot
 * fall out of its protection). The scope is the host's bridge (`meta ibrname`), so other
 * bridges on the host are not touched.
 *
 * Kernels without the bridge meta or bridge reject expressions (nft_meta_bridge,
 * nft_reject_bridge) exist; setup falls back explicitly — unscoped (every bridge of the host)
 * and reject enforced as drop — and says so in the log and in `capabilities`. Failing
 * closed: the attacker is still stopped, only the RST courtesy or the scope is lost.
 */
export interface BridgeEnforcerOptions {
  ctx: Context;
  bridge: string;
  table?: string;
  /** Enforce inside this network namespace (the lab's host) instead of the process's own. */
  netns?: string;
}

export interface Capabilities {
  /** Rules match only frames entering this bridge. */
  scopedToBridge: boolean;
  /** Reject sends RST / ICMP unreachable; otherwise reject sets drop. */
  reject: boolean;
}

export interface SetElement {
  set: string;
  ip: string;
}

const SETS = { drop4: 'ipv4_addr', drop6: 'ipv6_addr', reject4: 'ipv4_addr', reject6: 'ipv6_addr' } as const;
const CHAIN = 'block_forward';

export class BridgeEnforcer {
  readonly table: string;
  readonly bridge: string;
  capabilities: Capabilities = { scopedToBridge: false, reject: false };
  private readonly ctx: Context;
  private readonly netns: string | undefined;
  private session: NftSession | null = null;

  constructor(opts: BridgeEnforcerOptions) {
    this.table = opts.table ?? 'cordon_watchdog';
    this.bridge = opts.bridge;
    if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(this.table)) throw ERR_WATCHDOG_NFT(`table name "${this.table}" is not a plain identifier`);
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(this.bridge)) throw ERR_WATCHDOG_NFT(`bridge name "${this.bridge}" is not an interface name`);
    this.ctx = childContext(opts.ctx, 'enforce');
    this.netns = opts.netns;
  }

  /** Create the table, sets and chain if missing; existing elements (active blocks) are kept. */
  async setup(): Promise<Capabilities> {
    const t = this.table;
    const sets = Object.entries(SETS).map(([name, type]) => `add set bridge ${t} ${name} { type ${type}; flags timeout; }`);
    let lastErr: unknown;
    for (const caps of [
      { scopedToBridge: true, reject: true },
      { scopedToBridge: true, reject: false },
      { scopedToBridge: false, reject: true },
      { scopedToBridge: false, reject: false },
    ]) {
      const scope = caps.scopedToBridge ? `meta ibrname "${this.bridge}" ` : '';
      const rej = caps.reject ? 'reject' : 'drop';
      const script = [
        `add table bridge ${t}`,
        ...sets,
        `add chain bridge ${t} ${CHAIN} { type filter hook forward priority -10; policy accept; }`,
        `flush chain bridge ${t} ${CHAIN}`,
        `add rule bridge ${t} ${CHAIN} ${scope}ip saddr @drop4 counter drop`,
        `add rule bridge ${t} ${CHAIN} ${scope}ip6 saddr @drop6 counter drop`,
        `add rule bridge ${t} ${CHAIN} ${scope}ip saddr @reject4 counter ${rej}`,
        `add rule bridge ${t} ${CHAIN} ${scope}ip6 saddr @reject6 counter ${rej}`,
        '',
      ].join('\n');
      try {
        await this.nft(script); // one transaction: it applies whole or not at all
        this.capabilities = caps;
        if (!caps.scopedToBridge || !caps.reject) {
          this.ctx.log.warn({ bridge: this.bridge, ...caps }, 'This kernel lacks bridge nftables expressions; blocks apply to every bridge of the host and/or reject is enforced as drop.');
        }
        this.ctx.metrics.set('scoped_to_bridge', caps.scopedToBridge ? 1 : 0);
        this.ctx.metrics.set('reject_supported', caps.reject ? 1 : 0);
        return caps;
      } catch (err) {
        lastErr = err;
      }
    }
    throw lastErr;
  }

  /** The address a decision blocks, or a typed error for targets the bridge cannot enforce. */
  static targetOf(d: BlockDecision): { ip: string; family: 4 | 6 } {
    const ip = d.target.kind === 'ip' ? d.target.ip : d.target.kind === 'five_tuple' ? d.target.src_ip : null;
    if (!ip) throw ERR_WATCHDOG_BLOCK_TARGET(`target kind ${d.target.kind} carries no source address`);
    return { ip, family: checkedFamily(ip) };
  }

  /** Add (or renew) a block for its remaining time; null when it is already over. */
  async apply(d: BlockDecision, nowMs: number): Promise<{ ip: string; set: string; ttlMs: number } | null> {
    const { ip, family } = BridgeEnforcer.targetOf(d);
    const ttlMs = Math.floor(d.expires_us / 1000 - nowMs);
    if (ttlMs <= 0) return null;
    const set = `${d.action}${family}`;
    const other = `${d.action === 'drop' ? 'reject' : 'drop'}${family}`;
    const t = this.table;
    // add+delete+add: a renewed block gets its new timeout; and an address moves out of the
    // other action's set, so one address is in one set only
    await this.nft(
      `add element bridge ${t} ${other} { ${ip} timeout 1s }\ndelete element bridge ${t} ${other} { ${ip} }\n` +
        `add element bridge ${t} ${set} { ${ip} timeout ${ttlMs}ms }\ndelete element bridge ${t} ${set} { ${ip} }\nadd element bridge ${t} ${set} { ${ip} timeout ${ttlMs}ms }\n`,
    );
    this.ctx.metrics.inc('applied');
    return { ip, set, ttlMs };
  }

  async lift(ip: string): Promise<void> {
    const family = checkedFamily(ip);
    // add-then-delete makes the delete succeed whether or not the element is there
    await this.nft(
      (['drop', 'reject'] as const).map((a) => `add element bridge ${this.table} ${a}${family} { ${ip} timeout 1s }\ndelete element bridge ${this.table} ${a}${family} { ${ip} }\n`).join(''),
    );
    this.ctx.metrics.inc('lifted');
  }

  /** Elements currently in the sets. */
  async list(): Promise<SetElement[]> {
    const parsed = await this.call((n) => n.json<{ nftables?: Array<{ set?: { name?: string; elem?: unknown[] } }> }>(`list table bridge ${this.table}`));
    const res: SetElement[] = [];
    for (const item of parsed.nftables ?? []) {
      const set = item.set;
      if (!set?.name || !set.elem) continue;
      for (const e of set.elem) {
        const v = typeof e === 'string' ? e : (e as { elem?: { val?: unknown } }).elem?.val;
        if (typeof v === 'string') res.push({ set: set.name, ip: v });
      }
    }
    return res;
  }

  /** Remove every element whose address is not in `keep` (blocks lifted while we were down). */
  async reconcile(keep: Set<string>): Promise<number> {
    const stale = (await this.list()).filter((e) => !keep.has(e.ip));
    if (stale.length === 0) return 0;
    for (const e of stale) checkedFamily(e.ip); // what nft printed goes back into a script
    await this.nft(stale.map((e) => `delete element bridge ${this.table} ${e.set} { ${e.ip} }\n`).join(''));
    this.ctx.metrics.inc('reconciled', stale.length);
    return stale.length;
  }

  async teardown(): Promise<void> {
    await this.nft(`add table bridge ${this.table}\ndelete table bridge ${this.table}\n`);
  }

  /** Close the nftables session; the table and its elements stay in the kernel. */
  close(): void {
    this.session?.close();
    this.session = null;
  }

  private async nft(script: string): Promise<void> {
    await this.call((n) => n.run(script));
  }

  /** One long-lived libnftables session: a change costs ~0.1 ms, not an `nft` process. */
  private async call<T>(op: (n: NftSession) => Promise<T>): Promise<T> {
    try {
      this.session ??= NftSession.open(this.netns ? { netns: this.netns } : {});
      return await op(this.session);
    } catch (err) {
      this.ctx.metrics.inc('errors');
      throw ERR_WATCHDOG_NFT.withCause(err, (err as Error).message.trim().split('\n').slice(0, 3).join(' | '));
    }
  }
}

function checkedFamily(ip: string): 4 | 6 {
  // the address is spliced into an nft script: plain address characters only
  const f = plainIpFamily(ip);
  if (f === 0) throw ERR_WATCHDOG_BLOCK_TARGET(`"${ip}" is not a plain IP address`);
  return f;
}
