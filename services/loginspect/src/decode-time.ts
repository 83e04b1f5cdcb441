/**
 * Timestamps as the common log formats write them, to epoch milliseconds (UTC when the line
 * names no zone). Syslog's RFC 3164 stamp has no year: it is inferred from a reference time
 * (the agent's read time, or the file's mtime for `logtest`) as the latest year that does not
 * put the line more than a week in the reference's future — so a December line read in
 * January lands in the previous year, and the result is the same on every replay.
 */

const MONTHS: Record<string, number> = {
  jan: 0,
  feb: 1,
  mar: 2,
  apr: 3,
  may: 4,
  jun: 5,
  jul: 6,
  aug: 7,
  sep: 8,
  oct: 9,
  nov: 10,
  dec: 11,
};

const WEEK_MS = 7 * 24 * 3600 * 1000;

export function monthIndex(name: string): number {
  return MONTHS[name.toLowerCase()] ?? -1;
}

export function yearlessToMs(month: number, day: number, h: number, m: number, s: number, refMs: number): number {
  // a file's lines share one reference time; the service's, one a record
  if (refMs !== lastRefMs) {
    lastRefMs = refMs;
    lastRefYear = new Date(refMs).getUTCFullYear();
  }
  const refYear = lastRefYear;
  let t = Date.UTC(refYear, month, day, h, m, s);
  if (t > refMs + WEEK_MS) t = Date.UTC(refYear - 1, month, day, h, m, s);
  return t;
}

/** The reference time `yearlessToMs` was given last, and its year. */
let lastRefMs = NaN;
let lastRefYear = 0;

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
  return clfTimeAt(s, 0, s.length);
}

/** `parseClfTime(s.slice(from, to))`, without cutting the stamp out of the line in the usual case. */
export function clfTimeAt(s: string, from: number, to: number): number | null {
  // the shape nearly every line has, `dd/Mon/yyyy:hh:mm:ss +zzzz`, without the regex
  if (
    to - from === 26 &&
    s.charCodeAt(from + 2) === 0x2f &&
    s.charCodeAt(from + 6) === 0x2f &&
    s.charCodeAt(from + 11) === 0x3a &&
    s.charCodeAt(from + 14) === 0x3a &&
    s.charCodeAt(from + 17) === 0x3a &&
    s.charCodeAt(from + 20) === 0x20
  ) {
    const sign = s.charCodeAt(from + 21);
    const day = digit(s, from) * 10 + digit(s, from + 1);
    const year = digit(s, from + 7) * 1000 + digit(s, from + 8) * 100 + digit(s, from + 9) * 10 + digit(s, from + 10);
    const hh = digit(s, from + 12) * 10 + digit(s, from + 13);
    const mi = digit(s, from + 15) * 10 + digit(s, from + 16);
    const ss = digit(s, from + 18) * 10 + digit(s, from + 19);
    const zone = (digit(s, from + 22) * 10 + digit(s, from + 23)) * 60 + digit(s, from + 24) * 10 + digit(s, from + 25);
    const mon = monthAt(s, from + 3);
    if ((sign === 0x2b || sign === 0x2d) && mon >= 0 && !Number.isNaN(day + year + hh + mi + ss + zone)) {
      // Date.UTC is the day's start plus h·3600 s + m·60 s + s, for any values: the day's start
      // is kept, as a log's lines come day by day
      const key = (year * 12 + mon) * 100 + day;
      if (key !== lastDayKey) {
        lastDayKey = key;
        lastDayMs = Date.UTC(year, mon, day);
      }
      return lastDayMs + hh * 3_600_000 + mi * 60_000 + ss * 1000 - (sign === 0x2d ? -zone : zone) * 60_000;
    }
  }
  const m = CLF_TS.exec(from === 0 && to === s.length ? s : s.slice(from, to));
  if (!m) return null;
  const mon = monthIndex(m[2]!);
  if (mon < 0) return null;
  const t = Date.UTC(Number(m[3]), mon, Number(m[1]), Number(m[4]), Number(m[5]), Number(m[6]));
  return t - zoneOffsetMin(m[7]) * 60_000;
}

/** The day `clfTimeAt` read last, `(year * 12 + month) * 100 + day`, and its start (ms). */
let lastDayKey = -1;
let lastDayMs = 0;

function digit(s: string, i: number): number {
  const c = s.charCodeAt(i) - 0x30;
  return c >= 0 && c <= 9 ? c : NaN;
}

/** Three letters packed (ASCII lower case) → month index. */
const MONTH_CODES = new Map(
  Object.entries(MONTHS).map(([name, i]) => [
    (name.charCodeAt(0) << 16) | (name.charCodeAt(1) << 8) | name.charCodeAt(2),
    i,
  ]),
);

/**
 * `monthIndex(s.slice(at, at + 3))` without the slice: ASCII case folding is all `toLowerCase`
 * can do here (no month holds `k`, the Kelvin sign's lower case; U+0130's is two characters).
 */
export function monthAt(s: string, at: number): number {
  const a = s.charCodeAt(at);
  const b = s.charCodeAt(at + 1);
  const c = s.charCodeAt(at + 2);
  if (a > 0x7f || b > 0x7f || c > 0x7f) return -1;
  return MONTH_CODES.get((lowerAscii(a) << 16) | (lowerAscii(b) << 8) | lowerAscii(c)) ?? -1;
}

function lowerAscii(c: number): number {
  return c >= 0x41 && c <= 0x5a ? c | 0x20 : c;
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

export function isoToMs(
  y: string,
  mo: string,
  d: string,
  h: string,
  mi: string,
  s: string,
  frac: string | undefined,
  zone: string | undefined,
): number {
  const ms = frac ? Math.floor(Number(`0${frac}`) * 1000) : 0;
  return (
    Date.UTC(Number(y), Number(mo) - 1, Number(d), Number(h), Number(mi), Number(s)) + ms - zoneOffsetMin(zone) * 60_000
  );
}
