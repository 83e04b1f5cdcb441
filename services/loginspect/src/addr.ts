import { isIP } from 'node:net';

/**
 * Addresses as log lines write them: `1.2.3.4`, `1.2.3.4:5543`, `::ffff:1.2.3.4`,
 * `[2001:db8::1]:443`, or a hostname (sshd logs names when UseDNS is on). The normal form is
 * what an enforcer can block and what an analyst searches for: IPv4-mapped IPv6 unwrapped,
 * ports and brackets removed, names left as they are.
 */
export function normalizeAddress(raw: string): string {
  // the usual case, a bare IPv4 address or name without port, brackets or punctuation: itself
  const first = raw.charCodeAt(0);
  const last = raw.charCodeAt(raw.length - 1);
  if (first >= 0x30 && first <= 0x39 && last >= 0x30 && last <= 0x39 && raw.indexOf(':') < 0) return raw;
  let a = raw.trim();
  if (a.startsWith('[')) {
    const end = a.indexOf(']');
    if (end > 0) a = a.slice(1, end);
  }
  // trailing punctuation a message put after the address
  while (a.length && (a.endsWith(',') || a.endsWith('.') || a.endsWith(';') || a.endsWith(')') || a.endsWith(':')))
    a = a.slice(0, -1);
  if (a.startsWith('::ffff:') || a.startsWith('::FFFF:')) {
    const v4 = a.slice(7);
    if (isIP(stripV4Port(v4)) === 4) return stripV4Port(v4);
  }
  const v4 = stripV4Port(a);
  if (v4 !== a && isIP(v4) === 4) return v4;
  return a;
}

function stripV4Port(a: string): string {
  const c = a.indexOf(':');
  if (c > 0 && a.indexOf(':', c + 1) < 0 && isIP(a.slice(0, c)) === 4) return a.slice(0, c);
  return a;
}

/** `2001:db8::1:46652` as Apache 2.4 logs a client: the last group is the port. */
export function stripV6Port(a: string): string {
  if (isIP(a) === 6 || isIP(a) === 0) {
    const c = a.lastIndexOf(':');
    if (c > 0 && /^\d{1,5}$/.test(a.slice(c + 1)) && isIP(a.slice(0, c)) === 6) return a.slice(0, c);
  }
  return a;
}

export function ipVersion(a: string): 0 | 4 | 6 {
  return isIP(a) as 0 | 4 | 6;
}

/** Address as 32 or 128 bits; null when not an address. */
export function addressBits(a: string): { v: 4 | 6; bits: bigint } | null {
  const v = isIP(a);
  if (v === 4) {
    let n = 0n;
    for (const p of a.split('.')) n = (n << 8n) | BigInt(Number(p));
    return { v: 4, bits: n };
  }
  if (v === 6) {
    let s = a;
    const pct = s.indexOf('%');
    if (pct >= 0) s = s.slice(0, pct);
    // a trailing dotted IPv4 (::ffff:1.2.3.4) becomes two hex groups
    const lastColon = s.lastIndexOf(':');
    const tail = s.slice(lastColon + 1);
    if (tail.includes('.')) {
      const b = addressBits(tail);
      if (!b || b.v !== 4) return null;
      s = `${s.slice(0, lastColon + 1)}${((b.bits >> 16n) & 0xffffn).toString(16)}:${(b.bits & 0xffffn).toString(16)}`;
    }
    const dbl = s.indexOf('::');
    const h = (dbl < 0 ? s : s.slice(0, dbl)).split(':').filter((x) => x !== '');
    const r =
      dbl < 0
        ? []
        : s
            .slice(dbl + 2)
            .split(':')
            .filter((x) => x !== '');
    const groups = dbl < 0 ? h : [...h, ...new Array<string>(Math.max(0, 8 - h.length - r.length)).fill('0'), ...r];
    if (groups.length !== 8) return null;
    let n = 0n;
    for (const g of groups) n = (n << 16n) | BigInt(parseInt(g, 16));
    return { v: 6, bits: n };
  }
  return null;
}

export interface Cidr {
  v: 4 | 6;
  net: bigint;
  mask: bigint;
  /** IPv4 only: net and mask as unsigned 32-bit numbers. */
  net4?: number;
  mask4?: number;
}

export function parseCidr(s: string): Cidr | null {
  const slash = s.indexOf('/');
  const addr = slash < 0 ? s : s.slice(0, slash);
  const b = addressBits(addr);
  if (!b) return null;
  const width = b.v === 4 ? 32 : 128;
  const len = slash < 0 ? width : Number(s.slice(slash + 1));
  if (!Number.isInteger(len) || len < 0 || len > width) return null;
  const mask = len === 0 ? 0n : ((1n << BigInt(len)) - 1n) << BigInt(width - len);
  if (b.v === 4) return { v: 4, net: b.bits & mask, mask, net4: Number(b.bits & mask), mask4: Number(mask) };
  return { v: b.v, net: b.bits & mask, mask };
}

/** A strict dotted quad (what `isIP` calls v4) as an unsigned 32-bit number; null otherwise. */
function ipv4Number(a: string): number | null {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i <= a.length; i++) {
    const c = i < a.length ? a.charCodeAt(i) : 0x2e;
    if (c === 0x2e) {
      if (digits === 0 || part > 255) return null;
      n = n * 256 + part;
      if (i < a.length && ++dots > 3) return null;
      part = 0;
      digits = 0;
    } else if (c >= 0x30 && c <= 0x39) {
      if (digits > 0 && part === 0) return null; // leading zero
      part = part * 10 + (c - 0x30);
      if (++digits > 3) return null;
    } else return null;
  }
  return dots === 3 ? n : null;
}

export function cidrContains(c: Cidr, addr: string): boolean {
  const a = normalizeAddress(addr);
  // hot path (Sigma filters on c-ip run on every web line): no BigInt for a plain IPv4
  const n = ipv4Number(a);
  if (n !== null) {
    if (c.net4 !== undefined && c.mask4 !== undefined) return (n & c.mask4) >>> 0 === c.net4;
    if (c.v === 6) return false;
  }
  const b = addressBits(a);
  if (!b || b.v !== c.v) return false;
  return (b.bits & c.mask) === c.net;
}
