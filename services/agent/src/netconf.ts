import { readFile, readdir, readlink } from 'node:fs/promises';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import type { ListeningSocket, NetInterface, NetSnapshot, Route } from '@cordon/schemas';

/**
 * The guest's network configuration as the kernel reports it: listening sockets from
 * /proc/net/{tcp,tcp6,udp,udp6} (with the owning process where /proc/<pid>/fd can tell),
 * interfaces from /sys/class/net (up, promiscuous, MAC) and routes from /proc/net/route and
 * /proc/net/ipv6_route. Parsers are pure functions over the files' text, for tests.
 */

const TCP_LISTEN = '0A';
const UDP_UNCONNECTED = '07';

/** "0100007F:0016" → ['127.0.0.1', 22]; IPv6 addresses are four little-endian 32-bit words. */
export function parseProcAddress(hex: string): [string, number] {
  const [addr = '', port = '0'] = hex.split(':');
  const p = parseInt(port, 16);
  if (addr.length === 8) {
    const b = Buffer.from(addr, 'hex');
    return [`${b[3]}.${b[2]}.${b[1]}.${b[0]}`, p];
  }
  const words: string[] = [];
  for (let i = 0; i < 32; i += 8) {
    const w = Buffer.from(addr.slice(i, i + 8), 'hex').reverse();
    words.push(w.toString('hex'));
  }
  const groups = words
    .join('')
    .match(/.{4}/g)!
    .map((g) => g.replace(/^0+(?=.)/, ''));
  return [compressV6(groups), p];
}

function compressV6(groups: string[]): string {
  // RFC 5952: the longest run of zero groups (length ≥ 2) becomes "::"
  let best = -1,
    bestLen = 0;
  for (let i = 0; i < groups.length;) {
    if (groups[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < groups.length && groups[j] === '0') j++;
    if (j - i > bestLen && j - i >= 2) {
      best = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (best < 0) return groups.join(':');
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`;
}

/** Listening sockets of one /proc/net table; `inodes` collects socket inodes for process lookup. */
export function parseProcNet(
  text: string,
  proto: 'tcp' | 'tcp6' | 'udp' | 'udp6',
  inodes?: Map<string, ListeningSocket>,
): ListeningSocket[] {
  const out: ListeningSocket[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const state = f[3];
    const [, remotePort] = parseProcAddress(f[2]!);
    const listening = proto.startsWith('tcp') ? state === TCP_LISTEN : state === UDP_UNCONNECTED && remotePort === 0;
    if (!listening) continue;
    const [address, port] = parseProcAddress(f[1]!);
    const s: ListeningSocket = { proto, address, port, process: null };
    out.push(s);
    if (inodes && f[9] && f[9] !== '0') inodes.set(f[9], s);
  }
  return out;
}

export function parseRoutes(v4: string, v6: string): Route[] {
  const routes: Route[] = [];
  for (const line of v4.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const [dst] = parseProcAddress(`${f[1]}:0`);
    const [gw] = parseProcAddress(`${f[2]}:0`);
    const [mask] = parseProcAddress(`${f[7]}:0`);
    const bits = mask.split('.').reduce((n, o) => n + (Number(o).toString(2).match(/1/g)?.length ?? 0), 0);
    routes.push({ destination: `${dst}/${bits}`, gateway: gw === '0.0.0.0' ? null : gw, dev: f[0]! });
  }
  for (const line of v6.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10 || f[9] === 'lo') continue;
    const toV6 = (hex: string) => compressV6(hex.match(/.{4}/g)!.map((g) => g.replace(/^0+(?=.)/, '')));
    const gw = toV6(f[4]!);
    routes.push({ destination: `${toV6(f[0]!)}/${parseInt(f[1]!, 16)}`, gateway: gw === '::' ? null : gw, dev: f[9]! });
  }
  return routes.sort((a, b) => `${a.destination}${a.dev}`.localeCompare(`${b.destination}${b.dev}`));
}

const IFF_UP = 0x1;
const IFF_PROMISC = 0x100;

async function readOr(file: string): Promise<string> {
  return readFile(file, 'utf8').catch(() => '');
}

/** Owning processes of listening sockets: /proc/<pid>/fd links name "socket:[inode]". Bounded by `maxPids`. */
async function attachProcesses(inodes: Map<string, ListeningSocket>, proc: string, maxPids = 4096): Promise<void> {
  if (inodes.size === 0) return;
  const pids = (await readdir(proc).catch(() => [])).filter((d) => /^\d+$/.test(d)).slice(0, maxPids);
  for (const pid of pids) {
    const fds = await readdir(join(proc, pid, 'fd')).catch(() => []);
    for (const fd of fds) {
      const link = await readlink(join(proc, pid, 'fd', fd)).catch(() => '');
      const m = /^socket:\[(\d+)\]$/.exec(link);
      const s = m ? inodes.get(m[1]!) : undefined;
      if (s && !s.process) s.process = (await readOr(join(proc, pid, 'comm'))).trim() || pid;
    }
  }
}

export async function collectNetSnapshot(agent: string, vm: string, nowUs: number, root = '/'): Promise<NetSnapshot> {
  const proc = join(root, 'proc');
  const inodes = new Map<string, ListeningSocket>();
  const listening: ListeningSocket[] = [];
  for (const proto of ['tcp', 'tcp6', 'udp', 'udp6'] as const) {
    listening.push(...parseProcNet(await readOr(join(proc, 'net', proto)), proto, inodes));
  }
  await attachProcesses(inodes, proc);
  const sysNet = join(root, 'sys', 'class', 'net');
  const addrs = networkInterfaces();
  const interfaces: NetInterface[] = [];
  for (const name of (await readdir(sysNet).catch(() => [])).sort()) {
    const flags = parseInt((await readOr(join(sysNet, name, 'flags'))).trim() || '0', 16);
    const mac = (await readOr(join(sysNet, name, 'address'))).trim() || null;
    interfaces.push({
      name,
      mac,
      addresses: (addrs[name] ?? []).map((a) => `${a.address}/${a.cidr?.split('/')[1] ?? ''}`).sort(),
      up: (flags & IFF_UP) !== 0,
      promiscuous: (flags & IFF_PROMISC) !== 0,
    });
  }
  const routes = parseRoutes(await readOr(join(proc, 'net', 'route')), await readOr(join(proc, 'net', 'ipv6_route')));
  listening.sort((a, b) => `${a.proto}${a.address}${a.port}`.localeCompare(`${b.proto}${b.address}${b.port}`));
  return { agent, vm, ts_us: nowUs, interfaces, listening, routes };
}
