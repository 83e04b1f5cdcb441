import { isIP } from 'node:net';

/**
 * Addresses that end up in nft scripts and in enforcement decisions must be plain: `isIP`
 * alone accepts IPv6 zone ids ("fe80::1%eth0"), which nft sets do not take and which could
 * carry script text. One definition, shared by the files, the responder and the enforcers.
 */
export function plainIpFamily(ip: string): 4 | 6 | 0 {
  if (!/^[0-9A-Fa-f:.]{2,45}$/.test(ip)) return 0;
  return isIP(ip) as 4 | 6 | 0;
}

const MAC = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** Lower-case colon form, or null when `mac` is not a MAC address. */
export function normalizeMac(mac: string): string | null {
  const m = mac.trim().toLowerCase().replace(/-/g, ':');
  return MAC.test(m) ? m : null;
}
