import { childContext, type Context } from '@cordon/runtime';
import { NftSession } from '@cordon/native';
import { plainIpFamily } from '@cordon/policy';
import { ERR_WATCHDOG_NFT } from './errors.js';

/**
 * The gate on the host's bridge (see gate.ts): a set of MAC addresses in the watchdog's bridge
 * table and a forward chain, ahead of the block chain, that drops every frame from or to them —
 * except DHCP (v4 and v6, so a held VM still gets its address), ARP (so it can find the manager)
 * and the manager's addresses. An accept here does not skip the block chain: a blocked
 * attacker stays blocked. The set survives a restart of the watchdog, so a VM held when it
 * stopped is still held, and is the watchdog's memory of it.
 */
export interface BridgeGateOptions {
  ctx: Context;
  table: string;
  netns?: string;
  /** Addresses a held VM may still exchange frames with (the manager). */
  managerAddresses: string[];
}

const CHAIN = 'gate_forward';
const SET = 'gate';
const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

export class BridgeGate {
  private readonly ctx: Context;
  private session: NftSession | null = null;
  private readonly applied = new Set<string>();

  constructor(private readonly opts: BridgeGateOptions) {
    if (!/^[A-Za-z][A-Za-z0-9_]{0,31}$/.test(opts.table))
      throw ERR_WATCHDOG_NFT(`table name "${opts.table}" is not a plain identifier`);
    for (const a of opts.managerAddresses)
      if (plainIpFamily(a) === 0) throw ERR_WATCHDOG_NFT(`manager address "${a}" is not a plain IP address`);
    this.ctx = childContext(opts.ctx, 'gate');
  }

  /** Create the set and chain (elements already in the set are kept); returns the MACs held now. */
  async setup(): Promise<Set<string>> {
    const t = `bridge ${this.opts.table}`;
    const r = (rule: string) => `add rule ${t} ${CHAIN} ${rule}`;
    const manager = this.opts.managerAddresses.flatMap((a) => {
      const ip = plainIpFamily(a) === 6 ? 'ip6' : 'ip';
      return [r(`ether saddr @${SET} ${ip} daddr ${a} accept`), r(`ether daddr @${SET} ${ip} saddr ${a} accept`)];
    });
    await this.run(
      [
        `add table ${t}`,
        `add set ${t} ${SET} { type ether_addr; }`,
        `add chain ${t} ${CHAIN} { type filter hook forward priority -20; policy accept; }`,
        `flush chain ${t} ${CHAIN}`,
        r(`ether saddr @${SET} ether type arp accept`),
        r(`ether daddr @${SET} ether type arp accept`),
        r(`ether saddr @${SET} udp dport { 67, 547 } accept`),
        r(`ether daddr @${SET} udp dport { 68, 546 } accept`),
        ...manager,
        r(`ether saddr @${SET} counter drop`),
        r(`ether daddr @${SET} counter drop`),
        '',
      ].join('\n'),
    );
    for (const m of await this.list()) this.applied.add(m);
    return new Set(this.applied);
  }

  /** Make the set hold exactly `macs`. */
  async sync(macs: Set<string>): Promise<void> {
    const add = [...macs].filter((m) => !this.applied.has(m));
    const del = [...this.applied].filter((m) => !macs.has(m));
    if (add.length === 0 && del.length === 0) return;
    for (const m of [...add, ...del]) if (!MAC.test(m)) throw ERR_WATCHDOG_NFT(`"${m}" is not a MAC address`);
    const t = `bridge ${this.opts.table}`;
    await this.run(
      [
        ...(add.length ? [`add element ${t} ${SET} { ${add.join(', ')} }`] : []),
        ...(del.length ? [`delete element ${t} ${SET} { ${del.join(', ')} }`] : []),
        '',
      ].join('\n'),
    );
    for (const m of add) this.applied.add(m);
    for (const m of del) this.applied.delete(m);
    this.ctx.metrics.set('held_macs', this.applied.size);
  }

  async list(): Promise<string[]> {
    const out = await this.open().json<{ nftables?: Array<{ set?: { name?: string; elem?: unknown[] } }> }>(
      `list set bridge ${this.opts.table} ${SET}`,
    );
    const macs: string[] = [];
    for (const item of out.nftables ?? [])
      for (const e of item.set?.name === SET ? (item.set.elem ?? []) : [])
        if (typeof e === 'string' && MAC.test(e)) macs.push(e);
    return macs;
  }

  close(): void {
    this.session?.close();
    this.session = null;
  }

  private open(): NftSession {
    return (this.session ??= NftSession.open(this.opts.netns ? { netns: this.opts.netns } : {}));
  }

  private async run(script: string): Promise<void> {
    try {
      await this.open().run(script);
    } catch (err) {
      this.ctx.metrics.inc('errors');
      throw ERR_WATCHDOG_NFT.withCause(err, (err as Error).message.trim().split('\n').slice(0, 3).join(' | '));
    }
  }
}
