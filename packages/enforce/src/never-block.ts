import { execFile } from 'node:child_process';
import { BlockList, isIP } from 'node:net';
import { promisify } from 'node:util';
import { ERR_LOCAL_ADDRESSES } from './errors.js';

const run = promisify(execFile);

/**
 * Addresses an enforcer never blocks, whatever a decision on the topic says. A block of one
 * of them cuts the enforcer's own machine off (its address, its gateway, loopback) or does
 * nothing useful but can be forged to do harm (broadcast, multicast, the unspecified
 * address). The list is checked where the element is applied, so a decision that got past
 * the responder — or never came from it — is refused all the same.
 */
export const BUILT_IN_NEVER_BLOCK: ReadonlyArray<{ cidr: string; what: string }> = [
  { cidr: '0.0.0.0/8', what: 'the unspecified address ("this network", 0.0.0.0/8)' },
  { cidr: '127.0.0.0/8', what: 'loopback (127.0.0.0/8)' },
  { cidr: '169.254.0.0/16', what: 'link-local (169.254.0.0/16)' },
  { cidr: '224.0.0.0/4', what: 'multicast (224.0.0.0/4)' },
  { cidr: '255.255.255.255/32', what: 'the broadcast address (255.255.255.255)' },
  { cidr: '::/128', what: 'the unspecified address (::)' },
  { cidr: '::1/128', what: 'loopback (::1)' },
  { cidr: 'fe80::/10', what: 'link-local (fe80::/10)' },
  { cidr: 'ff00::/8', what: 'multicast (ff00::/8)' },
];

/** The enforcer's own network facts, as its namespace's routing tables state them. */
export interface LocalAddresses {
  /** Addresses of this machine's interfaces (the `local` routes). */
  addresses: string[];
  /** Its subnets' broadcast addresses (the `broadcast` routes). */
  broadcasts: string[];
  /** Every next hop of every route: the default gateway and any other router. */
  gateways: string[];
}

interface IpRoute {
  type?: string;
  dst?: string;
  gateway?: string;
  via?: { host?: string };
  nexthops?: Array<{ gateway?: string; via?: { host?: string } }>;
}

/**
 * Read the local addresses of a network namespace (the process's own when `netns` is unset)
 * from `ip -json route show table all`: the kernel's `local` table lists every address of the
 * machine, its `broadcast` routes the subnets' broadcast addresses, and the next hops name the
 * gateways. One source for all three, in any namespace.
 */
export async function readLocalAddresses(netns?: string): Promise<LocalAddresses> {
  const out: LocalAddresses = { addresses: [], broadcasts: [], gateways: [] };
  for (const family of ['-4', '-6']) {
    const args = [...(netns ? ['-n', netns] : []), '-json', family, 'route', 'show', 'table', 'all'];
    let routes: IpRoute[];
    try {
      routes = JSON.parse(
        (await run('ip', args, { timeout: 10_000, maxBuffer: 64 * 1024 * 1024 })).stdout || '[]',
      ) as IpRoute[];
    } catch (err) {
      throw ERR_LOCAL_ADDRESSES.withCause(err, `ip ${args.join(' ')}`, (err as Error).message.split('\n')[0]!);
    }
    for (const r of routes) {
      const dst = r.dst && isIP(r.dst) ? r.dst : null;
      if (r.type === 'local' && dst) out.addresses.push(dst);
      if (r.type === 'broadcast' && dst) out.broadcasts.push(dst);
      for (const hop of [r, ...(r.nexthops ?? [])]) {
        const gw = hop.gateway ?? hop.via?.host;
        if (gw && isIP(gw)) out.gateways.push(gw);
      }
    }
  }
  return {
    addresses: [...new Set(out.addresses)],
    broadcasts: [...new Set(out.broadcasts)],
    gateways: [...new Set(out.gateways)],
  };
}

/** An address or CIDR range: `10.0.0.0/8`, `2001:db8::/32`, `192.0.2.7`. */
export function parseRange(s: string): { address: string; prefix: number; family: 'ipv4' | 'ipv6' } | null {
  const slash = s.indexOf('/');
  const address = slash < 0 ? s : s.slice(0, slash);
  const v = isIP(address);
  if (v === 0 || address.includes('%')) return null;
  const width = v === 4 ? 32 : 128;
  const prefixText = slash < 0 ? String(width) : s.slice(slash + 1);
  if (!/^[0-9]{1,3}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  if (prefix > width) return null;
  return { address, prefix, family: v === 4 ? 'ipv4' : 'ipv6' };
}

interface Entry {
  what: string;
  list: BlockList;
}

function listOf(ranges: Iterable<string>): BlockList {
  const list = new BlockList();
  for (const r of ranges) {
    const p = parseRange(r);
    if (p) list.addSubnet(p.address, p.prefix, p.family);
  }
  return list;
}

/**
 * The never-block list of one enforcer: the built-in ranges, the ranges its configuration
 * adds, and its machine's own addresses, broadcasts and gateways (re-read by `refresh`, as
 * DHCP can change them). `why(ip)` says why an address is protected, or null.
 */
export class NeverBlock {
  private readonly fixed: Entry[];
  private local: Entry[] = [];

  constructor(configured: readonly string[] = []) {
    this.fixed = [
      ...BUILT_IN_NEVER_BLOCK.map((b) => ({ what: b.what, list: listOf([b.cidr]) })),
      ...(configured.length
        ? [{ what: `a configured never-block range (${configured.join(', ')})`, list: listOf(configured) }]
        : []),
    ];
  }

  /** Take the machine's own addresses, broadcasts and gateways as they are now. */
  setLocal(local: LocalAddresses): void {
    const single = (ips: string[]) => ips.map((ip) => `${ip}/${isIP(ip) === 4 ? 32 : 128}`);
    this.local = [
      { what: "this machine's own address", list: listOf(single(local.addresses)) },
      { what: "a broadcast address of this machine's subnets", list: listOf(single(local.broadcasts)) },
      { what: "this machine's gateway", list: listOf(single(local.gateways)) },
    ];
  }

  /** Why `ip` must never be blocked, or null when it may be. IPv4-mapped IPv6 counts as its IPv4 address. */
  why(ip: string): string | null {
    const v = isIP(ip);
    if (v === 0) return null;
    const family = v === 4 ? 'ipv4' : 'ipv6';
    for (const e of [...this.fixed, ...this.local]) if (e.list.check(ip, family)) return e.what;
    return null;
  }
}
