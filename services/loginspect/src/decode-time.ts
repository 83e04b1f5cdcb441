/**
 * Timestamps as the common log formats write them, to epoch milliseconds (UTC when the line
 * names no zone). Syslog's RFC 3164 stamp has no year: it is inferred from a reference time
 * (the agent's read time, or the file's mtime for `logtest`) as the latest year that does not
 * put the line more than a week in the reference's future — so a December line read in
 * January lands in the previous year, and the result is the same on every replay.
 */

const MONTHS: Record<string, number> = {
  jan: 0, feb: 1, mar: 2, apr: 3, may: 4, jun: 5, jul: 6, aug: 7, sep: 8, oct: 9, nov: 10, dec: 11,
};

const WEEK_MS = 7 * 24 * 3600 * 1000;

export function monthIndex(name: string): number {
  return MONTHS[name.toLowerCase()] ?? -1;
}

export function yearlessToMs(month: number, day: number, h: number, m: number, s: number, refMs: number): number {
  const refYear = new Date(refMs).getUTCFullYear();
  let t = Date.UTC(refYear, month, day, h, m, s);
  if (t > refMs + WEEK_MS) t = Date.UTC(refYear - 1, month, day, h, m, s);
  return t;
}

/** "+0100", "+01:00", "Z", "" → offset in minutes east of UTC. */
export function zoneOffsetMin(z: string | undefined): number {
  if (!z || z === 'Z' || z === 'z') return 0;
  const sign = z[0] === '-' ? -1 : 1;
  const digits = z.slice(1).replace(':', '');
  const hh = Number(digits.slice(0, 2));
  const mm = Number(digits.slice(2, 4) || '0');
  if (!Number.isFinite(hh) || !Number.isFinite(mm)) return 0;
  return sign * (hh * 60 + mm);
}

const CLF_TS = /^(\d{1,2})\/([A-Za-z]{3})\/(\d{4}):(\d{1,2}):(\d\d):(\d\d)(?:\.\d+)?\s*([+-]\d{2}:?\d{2}|Z)?/;

/** Apache/nginx access log stamp: `05/Mar/2007:14:39:21 +0100`. */
export function parseClfTime(s: string): number | null {
  // the shape nearly every line has, `dd/Mon/yyyy:hh:mm:ss +zzzz`, without the regex
  if (s.length === 26 && s.charCodeAt(2) === 0x2f && s.charCodeAt(6) === 0x2f && s.charCodeAt(11) === 0x3a && s.charCodeAt(14) === 0x3a && s.charCodeAt(17) === 0x3a && s.charCodeAt(20) === 0x20) {
    const sign = s.charCodeAt(21);
    const d = (i: number): number => {
      const c = s.charCodeAt(i) - 0x30;
      return c >= 0 && c <= 9 ? c : NaN;
    };
    const day = d(0) * 10 + d(1);
    const year = d(7) * 1000 + d(8) * 100 + d(9) * 10 + d(10);
    const hh = d(12) * 10 + d(13);
    const mi = d(15) * 10 + d(16);
    const ss = d(18) * 10 + d(19);
    const zone = (d(22) * 10 + d(23)) * 60 + d(24) * 10 + d(25);
    const mon = MONTHS[s.slice(3, 6).toLowerCase()] ?? -1;
    if ((sign === 0x2b || sign === 0x2d) && mon >= 0 && !Number.isNaN(day + year + hh + mi + ss + zone)) {
      return Date.UTC(year, mon, day, hh, mi, ss) - (sign === 0x2d ? -zone : zone) * 60_000;
    }
  }
  const m = CLF_TS.exec(s);
  if (!m) return null;
  const mon = monthIndex(m[2]!);
  if (mon < 0) return null;
  const t = Date.UTC(Number(m[3]), mon, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  return t - zoneOffsetMin(m[7]) * 60_000;
}

const CTIME_TS = /^(?:[A-Za-z]{3} )?([A-Za-z]{3}) +(\d{1,2}) (\d\d):(\d\d):(\d\d)(?:\.(\d+))? (\d{4})/;

/** Apache error log stamp: `Tue Jul 22 06:48:30 2008` or `Thu Jun 27 11:55:44.569531 2013`. */
export function parseCtime(s: string): number | null {
  const m = CTIME_TS.exec(s);
  if (!m) return null;
  const mon = monthIndex(m[1]!);
  if (mon < 0) return null;
  const ms = m[6] ? Math.floor(Number(`0.${m[6]}`) * 1000) : 0;
  return Date.UTC(Number(m[7]), mon, Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])) + ms;
}

export function isoToMs(y: string, mo: string, d: string, h: string, mi: string, s: string, frac: string | undefined, zone: string | undefined): number {
  const ms = frac ? Math.floor(Number(`0${frac}`) * 1000) : 0;
  return Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) + ms - zoneOffsetMin(zone) * 60_000;
}
