import { cidrContains, parseCidr } from './addr.js';
import { boundedRegex, requiredLiterals, topLevelBranches } from './detect-regex.js';
import { anyOf } from './detect-condition.js';

/**
 * Sigma value matching, compiled once: a value with its modifier chain → a predicate on a
 * field's text. Sigma compares case-insensitively unless `|re` or `|cased` says otherwise, so
 * most predicates take the *lower-cased* field (lowered once per event and field) and compare
 * against a pattern lowered at setup; the hot path is `includes`/`startsWith`/`===`, with a
 * regular expression only where a wildcard sits inside the value.
 */
export interface ValuePredicate {
  /** Reads the original (not lower-cased) value. */
  readonly cased: boolean;
  test(value: string): boolean;
  /** Lower-cased literals (≥ 2 chars), one of which every matching value contains: the prefilter's key. */
  required?: string[] | null;
  /** Set when the test is exactly "contains this lower-cased literal" (ignoring case). */
  contains?: string | null;
  /** The test runs a regular expression whose work grows with the text: cheaper tests go first. */
  costly?: boolean;
  /** Same answer as `test(value.toLowerCase())`, read from the original value (no lower-casing). */
  folded?: ((value: string) => boolean) | null;
  /**
   * A regular expression that is an alternation at its top, cut into its alternatives: those
   * with required literals each on their own (`branches`), the others as one (`rest`, null when
   * none). `test` holds exactly when `rest` or one of the branches does.
   */
  branches?: { test: (value: string) => boolean; required: string[] }[] | null;
  rest?: ((value: string) => boolean) | null;
}

export class SigmaValueError extends Error {}

type Piece = { lit: string } | { wild: '*' | '?' };

/** Sigma wildcards: `*` any run, `?` one char; `\*`, `\?`, `\\` are literals, other `\` stay. */
export function parseWildcards(v: string): Piece[] {
  const out: Piece[] = [];
  let lit = '';
  for (let i = 0; i < v.length; i++) {
    const c = v[i]!;
    if (c === '\\' && (v[i + 1] === '*' || v[i + 1] === '?' || v[i + 1] === '\\')) {
      lit += v[i + 1];
      i++;
    } else if (c === '*' || c === '?') {
      if (lit) out.push({ lit });
      lit = '';
      out.push({ wild: c });
    } else lit += c;
  }
  if (lit) out.push({ lit });
  return out;
}

const reEscape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/**
 * Does `s` hold the lower-case ASCII `lit` at `at`, ignoring ASCII case? null when a non-ASCII
 * character is in the way: its lower case may be ASCII or longer, so `toLowerCase` decides.
 */
function foldAt(s: string, at: number, lit: string): boolean | null {
  for (let j = 0; j < lit.length; j++) {
    let c = s.charCodeAt(at + j);
    if (c >= 0x80) return null;
    if (c >= 0x41 && c <= 0x5a) c |= 0x20;
    if (c !== lit.charCodeAt(j)) return false;
  }
  return true;
}

function hasNonAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) >= 0x80) return true;
  return false;
}

const isAscii = (s: string): boolean => /^[\x00-\x7f]*$/.test(s);

/**
 * The same tests as compilePattern makes for equality, prefix and suffix, on the original
 * text: `toLowerCase` of a whole field to compare a few characters is most of their cost.
 */
function foldedPattern(pieces: Piece[]): ((s: string) => boolean) | null {
  const isStar = (p: Piece | undefined): boolean => p !== undefined && 'wild' in p && p.wild === '*';
  const lit = (p: Piece | undefined): string | null => (p !== undefined && 'lit' in p ? p.lit.toLowerCase() : null);
  const slow = (s: string, t: (x: string) => boolean): boolean => t(s.toLowerCase());
  // only the empty string lower-cases to the empty string
  if (pieces.length === 0) return (s) => s === '';
  if (pieces.length === 1) {
    const l = lit(pieces[0]);
    if (l === null || !isAscii(l)) return null;
    const t = (x: string): boolean => x === l;
    return (s) => (s.length !== l.length ? hasNonAscii(s) && slow(s, t) : (foldAt(s, 0, l) ?? slow(s, t)));
  }
  if (pieces.length === 2 && isStar(pieces[0])) {
    const l = lit(pieces[1]);
    if (l === null || !isAscii(l)) return null;
    const t = (x: string): boolean => x.endsWith(l);
    return (s) =>
      s.length < l.length ? hasNonAscii(s) && slow(s, t) : (foldAt(s, s.length - l.length, l) ?? slow(s, t));
  }
  if (pieces.length === 2 && isStar(pieces[1])) {
    const l = lit(pieces[0]);
    if (l === null || !isAscii(l)) return null;
    const t = (x: string): boolean => x.startsWith(l);
    return (s) => (s.length < l.length ? hasNonAscii(s) && slow(s, t) : (foldAt(s, 0, l) ?? slow(s, t)));
  }
  return null;
}

/** Wildcard pieces (implicitly anchored) → the cheapest equivalent test on lowered text. */
function compilePattern(pieces: Piece[], lower: boolean): (s: string) => boolean {
  const norm = (s: string): string => (lower ? s.toLowerCase() : s);
  const lits = pieces.filter((p): p is { lit: string } => 'lit' in p);
  const wilds = pieces.length - lits.length;
  const first = pieces[0];
  const last = pieces[pieces.length - 1];
  if (pieces.length === 0) return (s) => s === '';
  if (wilds === 0) {
    const l = norm(lits[0]!.lit);
    return (s) => s === l;
  }
  const isStar = (p: Piece | undefined): boolean => p !== undefined && 'wild' in p && p.wild === '*';
  if (pieces.length === 1 && isStar(first)) return () => true;
  if (pieces.length === 2 && isStar(first) && lits.length === 1) {
    const l = norm(lits[0]!.lit);
    return (s) => s.endsWith(l);
  }
  if (pieces.length === 2 && isStar(last) && lits.length === 1) {
    const l = norm(lits[0]!.lit);
    return (s) => s.startsWith(l);
  }
  if (pieces.length === 3 && isStar(first) && isStar(last) && lits.length === 1) {
    const l = norm(lits[0]!.lit);
    return (s) => s.includes(l);
  }
  let src = '^';
  for (const p of pieces) src += 'lit' in p ? reEscape(norm(p.lit)) : p.wild === '*' ? '[\\s\\S]*' : '[\\s\\S]';
  const re = new RegExp(`${src}$`);
  return (s) => re.test(s);
}

function base64Variants(s: string, offsets: boolean): string[] {
  const buf = Buffer.from(s, 'utf8');
  if (!offsets) return [buf.toString('base64').replace(/=+$/, '')];
  // base64offset: the value may start at any of 3 byte offsets in the encoded stream; keep the
  // characters that do not depend on the unknown neighbours
  const out: string[] = [];
  for (let i = 0; i < 3; i++) {
    const enc = Buffer.concat([Buffer.alloc(i), buf]).toString('base64');
    const start = [0, 2, 3][i]!;
    const end = [0, -3, -2][(buf.length + i) % 3]!;
    out.push(enc.slice(start, end === 0 ? undefined : enc.length + end).replace(/=+$/, ''));
  }
  return out;
}

const KNOWN = new Set([
  'contains',
  'startswith',
  'endswith',
  'all',
  're',
  'cidr',
  'base64',
  'base64offset',
  'cased',
  'exists',
  'i',
  'm',
  's',
  'gt',
  'gte',
  'lt',
  'lte',
  'windash',
]);

/**
 * One value under a modifier chain (without `all`, handled by the caller) → predicate.
 * `exists` is handled by the caller too (it is about the field, not a value).
 */
export function compileValue(value: unknown, modifiers: string[]): ValuePredicate {
  for (const m of modifiers) if (!KNOWN.has(m)) throw new SigmaValueError(`modifier "${m}" is not supported`);
  if (value === null || value === undefined) return { cased: true, test: (s) => s === '' };
  if (typeof value === 'object') throw new SigmaValueError(`value ${JSON.stringify(value)} is not a string or number`);
  const str = String(value);
  const has = (m: string): boolean => modifiers.includes(m);
  if (has('re')) {
    const inline = extractFlags(convertPcre(str));
    const flags = [
      ...new Set((has('i') ? 'i' : '') + (has('m') ? 'm' : '') + (has('s') ? 's' : '') + inline.flags),
    ].join('');
    let re: RegExp;
    try {
      re = new RegExp(inline.src, flags);
    } catch (err) {
      throw new SigmaValueError(
        `regular expression ${JSON.stringify(str)} does not compile: ${(err as Error).message}`,
      );
    }
    // `^[\s\S]{N,}` ("N characters or more", for overlong requests) is a length test
    const long = /^\^\[\\s\\S\]\{(\d+),\}$/.exec(inline.src);
    if (long && !flags.includes('m')) {
      const n = Number(long[1]);
      return { cased: true, test: (s) => s.length >= n };
    }
    const costly = !boundedRegex(inline.src, flags);
    return {
      cased: true,
      test: (s) => re.test(s),
      costly,
      required: requiredLiterals(inline.src, flags),
      ...(costly ? splitRegex(inline.src, flags) : {}),
    };
  }
  if (has('cidr')) {
    const c = parseCidr(str);
    if (!c) throw new SigmaValueError(`"${str}" is not a CIDR`);
    return { cased: true, test: (s) => cidrContains(c, s) };
  }
  if (has('gt') || has('gte') || has('lt') || has('lte')) {
    const n = Number(str);
    if (!Number.isFinite(n)) throw new SigmaValueError(`"${str}" is not a number`);
    const cmp = has('gt')
      ? (x: number) => x > n
      : has('gte')
        ? (x: number) => x >= n
        : has('lt')
          ? (x: number) => x < n
          : (x: number) => x <= n;
    return { cased: true, test: (s) => s !== '' && cmp(Number(s)) };
  }
  const cased = has('cased') || has('base64') || has('base64offset');
  let variants = [str];
  if (has('windash')) {
    const dashes = ['-', '/', '\u2013', '\u2014', '\u2015'];
    variants = variants.flatMap((v) => (/(^|\s)-/.test(v) ? dashes.map((d) => v.replace(/(^|\s)-/g, `$1${d}`)) : [v]));
  }
  if (has('base64') || has('base64offset')) {
    // the encoded text is what the log holds; wildcards would not survive encoding
    variants = variants.flatMap((v) => base64Variants(v, has('base64offset')).map((e) => e.replace(/[*?\\]/g, '\\$&')));
  }
  let anchor: string | null = null;
  let folded: ((s: string) => boolean) | null = null;
  const tests = variants.map((v) => {
    let pieces = parseWildcards(v);
    if (!cased && variants.length === 1) {
      for (const p of pieces)
        if ('lit' in p && p.lit.length >= 3 && p.lit.length > (anchor?.length ?? 0)) anchor = p.lit.toLowerCase();
    }
    const star: Piece = { wild: '*' };
    if (has('contains') || has('endswith')) pieces = [star, ...pieces];
    if (has('contains') || has('startswith')) pieces = [...pieces, star];
    // base64 without contains/startswith/endswith is still a substring of the encoded field
    if ((has('base64') || has('base64offset')) && !has('contains') && !has('startswith') && !has('endswith'))
      pieces = [star, ...pieces, star];
    const merged = mergeStars(pieces);
    if (!cased && variants.length === 1) folded = foldedPattern(merged);
    return compilePattern(merged, !cased);
  });
  if (tests.length === 1) {
    const merged =
      variants.length === 1 && !cased && has('contains') && !has('startswith') && !has('endswith')
        ? parseWildcards(variants[0]!)
        : null;
    const contains = merged && merged.length === 1 && 'lit' in merged[0]! ? merged[0].lit.toLowerCase() : null;
    return { cased, test: tests[0]!, required: anchor === null ? null : [anchor], contains, folded };
  }
  return { cased, test: anyOf(tests), required: null };
}

/** A top-level alternation cut into the alternatives that have required literals and one regex of the rest. */
function splitRegex(src: string, flags: string): Pick<ValuePredicate, 'branches' | 'rest'> {
  const parts = topLevelBranches(src, flags);
  if (!parts) return {};
  const branches: { test: (value: string) => boolean; required: string[] }[] = [];
  const rest: string[] = [];
  for (const part of parts) {
    const required = requiredLiterals(part, flags);
    if (!required) {
      rest.push(part);
      continue;
    }
    const re = new RegExp(part, flags);
    branches.push({ test: (s) => re.test(s), required });
  }
  if (branches.length === 0) return {};
  const restRe = rest.length ? new RegExp(rest.join('|'), flags) : null;
  return { branches, rest: restRe && ((s) => restRe.test(s)) };
}

function mergeStars(pieces: Piece[]): Piece[] {
  const out: Piece[] = [];
  for (const p of pieces) {
    const prev = out[out.length - 1];
    if ('wild' in p && p.wild === '*' && prev && 'wild' in prev && prev.wild === '*') continue;
    if ('lit' in p && prev && 'lit' in prev) {
      out[out.length - 1] = { lit: prev.lit + p.lit };
      continue;
    }
    out.push(p);
  }
  return out;
}

/** PCRE-isms Sigma rules use that JavaScript spells differently: `(?i)` prefix, `(?P<n>`. */
function convertPcre(src: string): string {
  return src.replace(/\(\?P</g, '(?<');
}

/** A Sigma `|re` value as a JavaScript RegExp (PCRE inline flags and `(?P<name>` understood). */
export function compileRegex(src: string, extraFlags = ''): RegExp {
  const inline = extractFlags(convertPcre(src));
  return new RegExp(inline.src, [...new Set(extraFlags + inline.flags)].join(''));
}

export function extractFlags(src: string): { src: string; flags: string } {
  const m = /^\(\?([imsx]+)\)/.exec(src);
  if (!m) return { src, flags: '' };
  return { src: src.slice(m[0].length), flags: m[1]!.replace(/x/g, '') };
}
