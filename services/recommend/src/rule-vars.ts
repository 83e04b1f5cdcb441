import { isIP } from 'node:net';

/**
 * Suricata's address and port specs (`$HOME_NET`, `[10.0.0.0/8,!10.0.0.5]`, `!$HTTP_PORTS`,
 * `[1024:65535,!8080]`) parsed once per distinct text and resolved against the rule variables,
 * then asked one question: does this side of the rule include this VM, this port?
 *
 * The defaults are Suricata's, as the DPI engine uses them (native/src/detect_vars.rs), so a
 * rule recommended here is a rule that fires there; `recommend.vars` overrides them.
 */

/** A spec that cannot be read, or a variable that is not defined: the rule is skipped with `reason`. */
export class SpecError extends Error {
  constructor(
    readonly reason: 'address' | 'port' | 'variable',
    message: string,
  ) {
    super(message);
  }
}

export const DEFAULT_ADDRESS_VARS: Readonly<Record<string, string>> = Object.freeze({
  HOME_NET: '[192.168.0.0/16,10.0.0.0/8,172.16.0.0/12]',
  EXTERNAL_NET: '!$HOME_NET',
  ...Object.fromEntries(
    [
      'HTTP_SERVERS',
      'SMTP_SERVERS',
      'SQL_SERVERS',
      'DNS_SERVERS',
      'TELNET_SERVERS',
      'AIM_SERVERS',
      'DC_SERVERS',
      'DNP3_SERVER',
      'DNP3_CLIENT',
      'MODBUS_CLIENT',
      'MODBUS_SERVER',
      'ENIP_CLIENT',
      'ENIP_SERVER',
    ].map((v) => [v, '$HOME_NET']),
  ),
});

export const DEFAULT_PORT_VARS: Readonly<Record<string, string>> = Object.freeze({
  HTTP_PORTS: '80',
  SHELLCODE_PORTS: '!80',
  ORACLE_PORTS: '1521',
  SSH_PORTS: '22',
  DNP3_PORTS: '20000',
  MODBUS_PORTS: '502',
  FILE_DATA_PORTS: '[$HTTP_PORTS,110,143]',
  FTP_PORTS: '21',
  GENEVE_PORTS: '6081',
  VXLAN_PORTS: '4789',
  TEREDO_PORTS: '3544',
});

// ---------------------------------------------------------------- addresses

export interface Ip {
  v: 4 | 6;
  n: bigint;
}

export type AddrNode =
  | { k: 'any' }
  | { k: 'net'; v: 4 | 6; base: bigint; bits: number }
  | { k: 'not'; a: AddrNode }
  | { k: 'list'; items: AddrNode[] }
  /** A variable, kept by name (the VM with no known address is "in $HOME_NET") over its resolved value. */
  | { k: 'var'; name: string; a: AddrNode };

export function parseIp(text: string): Ip | null {
  const fam = isIP(text);
  if (fam === 4) return { v: 4, n: text.split('.').reduce((n, o) => (n << 8n) | BigInt(Number(o)), 0n) };
  if (fam !== 6 || text.includes('%')) return null;
  let s = text;
  // an embedded IPv4 tail (::ffff:1.2.3.4) becomes two hex groups
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(s);
  if (v4) {
    const n = parseIp(v4[1]!)!.n;
    s = `${s.slice(0, -v4[1]!.length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = s.includes('::') ? s.split('::') : [s, null];
  const h = head ? head.split(':') : [];
  const t = tail === null || tail === undefined ? [] : tail ? tail.split(':') : [];
  const groups = tail === null ? h : [...h, ...Array<string>(8 - h.length - t.length).fill('0'), ...t];
  if (groups.length !== 8) return null;
  return { v: 6, n: groups.reduce((n, g) => (n << 16n) | BigInt(parseInt(g, 16)), 0n) };
}

const width = (v: 4 | 6) => (v === 4 ? 32 : 128);

function inNet(ip: Ip, net: { v: 4 | 6; base: bigint; bits: number }): boolean {
  if (ip.v !== net.v) return false;
  const shift = BigInt(width(net.v) - net.bits);
  return ip.n >> shift === net.base >> shift;
}

/** Top-level comma split of a bracketed list's inside; null when brackets do not balance. */
function splitList(inner: string): string[] | null {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const c of inner) {
    if (c === '[') depth++;
    if (c === ']') depth--;
    if (depth < 0) return null;
    if (c === ',' && depth === 0) {
      out.push(cur.trim());
      cur = '';
    } else cur += c;
  }
  if (depth !== 0) return null;
  out.push(cur.trim());
  return out;
}

/** `[ … ]` whose closing bracket is the last character (not `[a],[b]`). */
function isWholeList(s: string): boolean {
  if (!s.startsWith('[') || !s.endsWith(']')) return false;
  let depth = 0;
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '[') depth++;
    if (s[i] === ']') depth--;
    if (depth === 0 && i < s.length - 1) return false;
  }
  return depth === 0;
}

const MAX_DEPTH = 16;

/**
 * Rule variables and the specs parsed with them, cached by text: ET Open has ~25,000 rules
 * but a few hundred distinct port specs and a few thousand address specs.
 */
export class RuleVars {
  private readonly address: Record<string, string>;
  private readonly port: Record<string, string>;
  private readonly addrCache = new Map<string, AddrNode | SpecError>();
  private readonly portCache = new Map<string, PortSet | SpecError>();

  constructor(overrides: { address?: Record<string, string>; port?: Record<string, string> } = {}) {
    this.address = { ...DEFAULT_ADDRESS_VARS, ...overrides.address };
    this.port = { ...DEFAULT_PORT_VARS, ...overrides.port };
  }

  /** The resolved spec, or throws SpecError. */
  addr(text: string): AddrNode {
    let r = this.addrCache.get(text);
    if (r === undefined) {
      try {
        r = this.parseAddr(text.trim(), 0);
      } catch (err) {
        if (!(err instanceof SpecError)) throw err;
        r = err;
      }
      this.addrCache.set(text, r);
    }
    if (r instanceof SpecError) throw r;
    return r;
  }

  ports(text: string): PortSet {
    let r = this.portCache.get(text);
    if (r === undefined) {
      try {
        r = this.parsePorts(text.trim(), 0);
      } catch (err) {
        if (!(err instanceof SpecError)) throw err;
        r = err;
      }
      this.portCache.set(text, r);
    }
    if (r instanceof SpecError) throw r;
    return r;
  }

  private parseAddr(s: string, depth: number): AddrNode {
    if (depth > MAX_DEPTH) throw new SpecError('address', `address spec nests deeper than ${MAX_DEPTH}`);
    if (s === '') throw new SpecError('address', 'empty address');
    if (s.startsWith('!')) return { k: 'not', a: this.parseAddr(s.slice(1).trim(), depth + 1) };
    if (isWholeList(s)) {
      const items = splitList(s.slice(1, -1));
      if (!items || items.some((i) => i === '')) throw new SpecError('address', `malformed list ${s.slice(0, 80)}`);
      return { k: 'list', items: items.map((i) => this.parseAddr(i, depth + 1)) };
    }
    if (s === 'any') return { k: 'any' };
    if (s.startsWith('$')) {
      const name = s.slice(1);
      const def = this.address[name];
      if (def === undefined) throw new SpecError('variable', `address variable $${name} is not defined`);
      return { k: 'var', name, a: this.parseAddr(def.trim(), depth + 1) };
    }
    const [ipText, bitsText, extra] = s.split('/');
    if (extra !== undefined) throw new SpecError('address', `not an address: ${s.slice(0, 80)}`);
    const ip = parseIp(ipText!);
    if (!ip) throw new SpecError('address', `not an address: ${s.slice(0, 80)}`);
    const bits = bitsText === undefined ? width(ip.v) : /^\d{1,3}$/.test(bitsText) ? Number(bitsText) : NaN;
    if (!(bits >= 0 && bits <= width(ip.v))) throw new SpecError('address', `bad prefix length in ${s.slice(0, 80)}`);
    return { k: 'net', v: ip.v, base: ip.n, bits };
  }

  private parsePorts(s: string, depth: number): PortSet {
    if (depth > MAX_DEPTH) throw new SpecError('port', `port spec nests deeper than ${MAX_DEPTH}`);
    if (s === '') throw new SpecError('port', 'empty port');
    if (s.startsWith('!')) return complement(this.parsePorts(s.slice(1).trim(), depth + 1));
    if (isWholeList(s)) {
      const items = splitList(s.slice(1, -1));
      if (!items || items.some((i) => i === '')) throw new SpecError('port', `malformed list ${s.slice(0, 80)}`);
      const pos: PortSet[] = [];
      const neg: PortSet[] = [];
      for (const i of items) {
        if (i.startsWith('!')) neg.push(this.parsePorts(i.slice(1).trim(), depth + 1));
        else pos.push(this.parsePorts(i, depth + 1));
      }
      const base = pos.length ? union(pos.flat()) : ALL_PORTS;
      return subtract(base, union(neg.flat()));
    }
    if (s === 'any') return ALL_PORTS;
    if (s.startsWith('$')) {
      const name = s.slice(1);
      const def = this.port[name];
      if (def === undefined) throw new SpecError('variable', `port variable $${name} is not defined`);
      return this.parsePorts(def.trim(), depth + 1);
    }
    const m = /^(\d{1,5})?(:)?(\d{1,5})?$/.exec(s);
    if (!m || (!m[1] && !m[3])) throw new SpecError('port', `not a port: ${s.slice(0, 80)}`);
    const lo = m[1] ? Number(m[1]) : 0;
    const hi = m[2] ? (m[3] ? Number(m[3]) : 65535) : lo;
    if (m[2] === undefined && m[3] !== undefined) throw new SpecError('port', `not a port: ${s}`);
    if (lo > 65535 || hi > 65535 || lo > hi) throw new SpecError('port', `port out of range: ${s}`);
    return [[lo, hi]];
  }
}

/**
 * Does the spec include the VM? `target` is the VM's addresses; `'home'` stands for a VM whose
 * addresses are unknown, taken to be inside $HOME_NET (Cordon protects it) and nothing else.
 */
export function addrIncludes(node: AddrNode, target: Ip[] | 'home'): boolean {
  if (target === 'home') return includesHome(node);
  return target.some((ip) => includesIp(node, ip));
}

function includesIp(node: AddrNode, ip: Ip): boolean {
  switch (node.k) {
    case 'any':
      return true;
    case 'net':
      return inNet(ip, node);
    case 'var':
      return includesIp(node.a, ip);
    case 'not':
      return !includesIp(node.a, ip);
    case 'list': {
      let anyPos = false;
      let hit = false;
      for (const i of node.items) {
        if (i.k === 'not') {
          if (includesIp(i.a, ip)) return false;
        } else {
          anyPos = true;
          if (!hit && includesIp(i, ip)) hit = true;
        }
      }
      return hit || !anyPos;
    }
  }
}

function includesHome(node: AddrNode): boolean {
  switch (node.k) {
    case 'any':
      return true;
    case 'net':
      return false;
    case 'var':
      return node.name === 'HOME_NET' ? true : includesHome(node.a);
    case 'not':
      return !includesHome(node.a);
    case 'list': {
      let anyPos = false;
      let hit = false;
      for (const i of node.items) {
        if (i.k === 'not') {
          if (includesHome(i.a)) return false;
        } else {
          anyPos = true;
          if (includesHome(i)) hit = true;
        }
      }
      return hit || !anyPos;
    }
  }
}

// ---------------------------------------------------------------- ports

/** Sorted, merged, inclusive ranges within 0..65535. */
export type PortSet = ReadonlyArray<readonly [number, number]>;

export const ALL_PORTS: PortSet = Object.freeze([[0, 65535] as const]);

function union(ranges: ReadonlyArray<readonly [number, number]>): PortSet {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of sorted) {
    const last = out[out.length - 1];
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

function complement(set: PortSet): PortSet {
  const out: Array<[number, number]> = [];
  let next = 0;
  for (const [lo, hi] of set) {
    if (lo > next) out.push([next, lo - 1]);
    next = hi + 1;
  }
  if (next <= 65535) out.push([next, 65535]);
  return out;
}

function subtract(a: PortSet, b: PortSet): PortSet {
  if (!b.length) return a;
  const nb = complement(b);
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of a) {
    for (const [l2, h2] of nb) {
      const l = Math.max(lo, l2);
      const h = Math.min(hi, h2);
      if (l <= h) out.push([l, h]);
    }
  }
  return union(out);
}

export function portIncludes(set: PortSet, port: number): boolean {
  for (const [lo, hi] of set) if (port >= lo && port <= hi) return true;
  return false;
}

export function portCount(set: PortSet): number {
  return set.reduce((n, [lo, hi]) => n + hi - lo + 1, 0);
}

/**
 * A side whose ports do not pick a service: `any`, or everything but a few ports (`!80`,
 * `1:65535`). Such a rule is about the host, not about one of its services.
 */
export function isPortAgnostic(set: PortSet): boolean {
  return portCount(set) >= 65536 - 1024;
}
