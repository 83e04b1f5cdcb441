import { childContext, type Context } from '@cordon/runtime';
import { NftBlockSets, type BlockElement } from '@cordon/native';
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

export type SetElement = BlockElement;

const CHAIN = 'block_forward';

export class BridgeEnforcer {
  readonly table: string;
  readonly bridge: string;
  capabilities: Capabilities = { scopedToBridge: false, reject: false };
  private readonly ctx: Context;
  private readonly sets: NftBlockSets;

  constructor(opts: BridgeEnforcerOptions) {
    this.table = opts.table ?? 'cordon_watchdog';
    this.bridge = opts.bridge;
    if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(this.table))
      throw ERR_WATCHDOG_NFT(`table name "${this.table}" is not a plain identifier`);
    if (!/^[A-Za-z0-9_.-]{1,15}$/.test(this.bridge))
      throw ERR_WATCHDOG_NFT(`bridge name "${this.bridge}" is not an interface name`);
    this.ctx = childContext(opts.ctx, 'enforce');
    this.sets = new NftBlockSets('bridge', this.table, opts.netns);
  }

  /** Create the table, sets and chain if missing; existing elements (active blocks) are kept. */
  async setup(): Promise<Capabilities> {
    const t = this.table;
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
        ...this.sets.declarations(),
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
          this.ctx.log.warn(
            { bridge: this.bridge, ...caps },
            'This kernel lacks bridge nftables expressions; blocks apply to every bridge of the host and/or reject is enforced as drop.',
          );
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
    const set = await this.guard(() => this.sets.put(ip, family, d.action, ttlMs));
    this.ctx.metrics.inc('applied');
    return { ip, set, ttlMs };
  }

  async lift(ip: string): Promise<void> {
    const family = checkedFamily(ip);
    await this.guard(() => this.sets.remove(ip, family));
    this.ctx.metrics.inc('lifted');
  }

  /** Elements currently in the sets. */
  list(): Promise<SetElement[]> {
    return this.guard(() => this.sets.list());
  }

  /** Remove every element whose address is not in `keep` (blocks lifted while we were down). */
  async reconcile(keep: Set<string>): Promise<number> {
    const removed = await this.guard(() => this.sets.removeExcept(keep));
    this.ctx.metrics.inc('reconciled', removed.length);
    return removed.length;
  }

  async teardown(): Promise<void> {
    await this.guard(() => this.sets.drop());
  }

  /** Close the nftables session; the table and its elements stay in the kernel. */
  close(): void {
    this.sets.close();
  }

  private async nft(script: string): Promise<void> {
    await this.guard(() => this.sets.run(script));
  }

  private async guard<T>(op: () => Promise<T>): Promise<T> {
    try {
      return await op();
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
