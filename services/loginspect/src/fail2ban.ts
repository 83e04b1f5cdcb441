import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { normalizeAddress } from './addr.js';
import { KIND, type LogEvent } from './decode.js';
import { RAW } from './detect-literals.js';
import { requiredLiterals } from './detect-regex.js';
import type { CompiledRule, RefusedRule, RuleSet, ThresholdSpec } from './detect-rules.js';

/**
 * fail2ban filters (`filter.d/*.conf`) as Cordon rules: the INI files with their `[INCLUDES]`
 * (before/after, and `.local` overrides), `%(name)s` interpolation (`section/option`,
 * `known/option`), `<tag>` substitution (`<mdre-<mode>>`), `[Definition]`/`[Init]` values,
 * `prefregex` with `<F-CONTENT>`, `failregex`/`ignoreregex` lists, the `<HOST>`/`<ADDR>`/
 * `<IP4>`/`<IP6>`/`<DNS>`/`<F-…>` tags, and `datepattern` (the date is cut from the line
 * before the regexes run, as fail2ban does). Python regular expressions are translated to
 * JavaScript; what cannot be translated exactly is either refused with the reason or, for a
 * conditional group, approximated and reported. Jail settings (`jail.conf`, `jail.local`,
 * `jail.d/`) give each filter its threshold: `maxretry` failures within `findtime`, blocked
 * for `bantime`.
 *
 * Each loaded filter is one CompiledRule (`fail2ban-<name>`); every filter or regex that cannot
 * be loaded is in the report with its reason.
 */

export interface Fail2banOptions {
  /** A fail2ban configuration folder (holding filter.d/ and jail.conf) or a filter.d folder. */
  dir: string;
  /** Only these filters (`sshd`, `sshd[mode=aggressive]`); all when empty. */
  filters?: string[];
}

export interface FilterReport {
  filter: string;
  file: string;
  loaded: boolean;
  /** A file other filters include (`common.conf`, `*-common.conf`): not a filter of its own. */
  include?: boolean;
  failregex: number;
  ignoreregex: number;
  /** Why the filter was not loaded. */
  reason?: string;
  /** Regexes that were refused (the filter loads with the others), and approximations made. */
  notes: string[];
  threshold?: { maxretry: number; findtimeS: number; bantimeS: number; jail: string | null };
}

export interface Fail2banLoad {
  rules: CompiledRule[];
  refused: RefusedRule[];
  reports: FilterReport[];
}

// ---------------------------------------------------------------- INI files

/** Section → option → the values it took, in reading order (the last is current; earlier ones are `known/`). */
type Ini = Map<string, Map<string, string[]>>;

function parseIniInto(text: string, ini: Ini): void {
  let section: Map<string, string[]> | null = null;
  let key: string | null = null;
  for (const raw of text.split(/\r?\n/)) {
    if (/^\s*[#;]/.test(raw)) continue;
    const sec = /^\[([^\]]+)\]\s*$/.exec(raw);
    if (sec) {
      const name = sec[1]!.trim();
      section = ini.get(name) ?? new Map();
      ini.set(name, section);
      key = null;
      continue;
    }
    if (!section) continue;
    if (/^\s+\S/.test(raw) && key !== null) {
      const vals = section.get(key)!;
      vals[vals.length - 1] += `\n${raw.trim()}`;
      continue;
    }
    if (raw.trim() === '') {
      key = null;
      continue;
    }
    const kv = /^([^=:\s][^=:]*?)\s*[=:]\s?(.*)$/.exec(raw);
    if (!kv) continue;
    key = kv[1]!.trim();
    const vals = section.get(key) ?? [];
    vals.push(kv[2]!.trim());
    section.set(key, vals);
  }
}

/** A file with its includes (before, itself, after, then its `.local`), as fail2ban reads it. */
function readConf(path: string, ini: Ini = new Map(), seen = new Set<string>()): Ini {
  if (seen.has(path) || !existsSync(path)) return ini;
  seen.add(path);
  const text = readFileSync(path, 'utf8');
  const own: Ini = new Map();
  parseIniInto(text, own);
  const inc = own.get('INCLUDES');
  const files = (k: string): string[] =>
    (inc?.get(k) ?? [])
      .flatMap((v) => v.split(/\s+/))
      .filter(Boolean)
      .map((f) => join(dirname(path), f));
  for (const f of files('before')) readConf(f, ini, seen);
  parseIniInto(text, ini);
  for (const f of files('after')) readConf(f, ini, seen);
  const local = path.replace(/\.conf$/, '.local');
  if (local !== path) readConf(local, ini, seen);
  return ini;
}

class Interpolator {
  constructor(
    private readonly ini: Ini,
    private readonly overrides: Map<string, string>,
  ) {}

  /** The option's current value in `section` (then Init, Definition, DEFAULT), interpolated. */
  get(section: string, name: string, depth = 0, known = 0): string | undefined {
    if (depth > 40) throw new Error(`interpolation of ${name} is too deep (a cycle?)`);
    if (name.startsWith('known/')) return this.get(section, name.slice(6), depth + 1, known + 1);
    const slash = name.indexOf('/');
    if (slash > 0) return this.get(name.slice(0, slash), name.slice(slash + 1), depth + 1, known);
    if (known === 0 && (section === 'Definition' || section === 'Init') && this.overrides.has(name))
      return this.overrides.get(name);
    for (const s of section === 'Definition' ? ['Init', 'Definition', 'DEFAULT'] : [section, 'DEFAULT']) {
      const vals = this.ini.get(s)?.get(name);
      if (!vals) continue;
      const v = vals[vals.length - 1 - known];
      if (v === undefined) continue;
      return this.expand(s === 'DEFAULT' ? section : s, v, depth + 1, name, vals.length - 1 - known);
    }
    return undefined;
  }

  /** `%(name)s` references and `%%`; a `known/name` inside the value of `name` is its earlier value. */
  expand(section: string, v: string, depth: number, self?: string, index?: number): string {
    return v.replace(/%\(([^)]+)\)s|%%/g, (m, ref: string | undefined) => {
      if (m === '%%') return '%';
      if (ref === undefined) return m;
      let r: string | undefined;
      if (ref.startsWith('known/') && self !== undefined && ref.slice(6) === self && index !== undefined) {
        const vals = this.ini.get(section)?.get(self) ?? this.ini.get('DEFAULT')?.get(self);
        const prev = vals?.[index - 1];
        r = prev === undefined ? '' : this.expand(section, prev, depth + 1, self, index - 1);
      } else r = this.get(section, ref, depth + 1);
      if (r === undefined) throw new Error(`%(${ref})s is not defined`);
      return r;
    });
  }

  /** fail2ban's recursive `<tag>` substitution: innermost first, unknown tags (HOST, F-USER) left as they are. */
  tags(section: string, v: string): string {
    const held: string[] = [];
    let cur = v;
    for (let round = 0; round < 50; round++) {
      let changed = false;
      cur = cur.replace(/<([^<>\s]+)>/g, (m, tag: string) => {
        if (!/^[\w\-./]+$/.test(tag) || /^(?:HOST|ADDR|IP4|IP6|DNS|CIDR|SUBNET|SKIPLINES|F-.*|\/F-.*)$/.test(tag)) {
          held.push(m);
          changed = true;
          return `\u0000${held.length - 1}\u0001`;
        }
        const r = this.get(section, tag);
        if (r === undefined) {
          held.push(m);
          changed = true;
          return `\u0000${held.length - 1}\u0001`;
        }
        changed = true;
        return r;
      });
      if (!changed) break;
    }
    // eslint-disable-next-line no-control-regex
    return cur.replace(/\u0000(\d+)\u0001/g, (_m, i: string) => held[Number(i)]!);
  }
}

// ---------------------------------------------------------------- regexes

const IP4 = '(?:\\d{1,3}\\.){3}\\d{1,3}';
const IP6 = '(?:[0-9a-fA-F]{1,4}::?|::){1,7}(?:[0-9a-fA-F]{1,4}|(?<=:):)';
const R_IP4 = `(?:::f{4,6}:)?(?<ip4>${IP4})`;
const R_IP6 = `(?<ip6>${IP6})`;
const R_DNS = '(?<dns>[\\w\\-.^_]*\\w)';
const R_ADDR = `\\[?(?:${R_IP4}|${R_IP6})\\]?`;
const R_HOST = `(?:${R_ADDR}|${R_DNS})`;
const R_CIDR = '(?<cidr>\\d+)';
const TAGS: Record<string, string> = {
  HOST: R_HOST,
  ADDR: R_ADDR,
  IP4: R_IP4,
  IP6: R_IP6,
  DNS: R_DNS,
  CIDR: R_CIDR,
  SUBNET: `\\[?(?:${R_IP4}|${R_IP6})(?:/${R_CIDR})?\\]?`,
  'F-IP4/': R_IP4,
  'F-IP6/': R_IP6,
  'F-ADDR/': R_ADDR,
  'F-DNS/': R_DNS,
  'F-CIDR/': R_CIDR,
  'F-ID/': '(?<fid>\\S+)',
  'F-PORT/': '(?<fport>\\w+)',
};

class RegexRefusal extends Error {}

/** fail2ban's tags → groups: `<HOST>` → ip4/ip6/dns, `<F-USER>…</F-USER>` → (?<user>…). */
function resolveTags(re: string): string {
  const open = new Set<string>();
  return re.replace(/<\/?[\w-]+\/?>/g, (tag) => {
    const tn = tag.slice(1, -1);
    if (tn === 'SKIPLINES')
      throw new RegexRefusal('<SKIPLINES> matches across lines (multi-line filters are not loaded)');
    const fixed = TAGS[tn];
    if (fixed) return fixed;
    const m = /^(\/?)F-([A-Z0-9_-]+)$/.exec(tn);
    if (!m) return tag;
    const name = m[2]!.toLowerCase() === 'id' ? 'fid' : m[2]!.toLowerCase() === 'port' ? 'fport' : m[2]!.toLowerCase();
    if (m[1]) return open.has(name) ? ')' : tag;
    open.add(name);
    return `(?<${name.replace(/-/g, '_')}>`;
  });
}

export interface Translated {
  source: string;
  flags: string;
  notes: string[];
}

/**
 * A Python `re` pattern as a JavaScript one: named groups and back-references, `{,n}`, `\Z`/`\A`,
 * global flags anywhere (`(?i)` → the `i` flag for the whole pattern, noted when not at the
 * start), `[]…]` classes, duplicate group names renamed; a conditional group `(?(g)yes|no)`
 * becomes `(?:yes|no)` (noted: it may match where fail2ban would not). Verbose mode and
 * possessive quantifiers are refused.
 */
export function translatePython(src: string): Translated {
  const notes: string[] = [];
  let flags = '';
  let out = '';
  const names = new Map<string, number>();
  let i = 0;
  const n = src.length;
  // conditional groups being rewritten: the depth at which each opened
  const stack: ('group' | 'cond')[] = [];
  while (i < n) {
    const c = src[i]!;
    if (c === '\\') {
      const d = src[i + 1];
      if (d === 'Z') out += '(?![\\s\\S])';
      else if (d === 'A') out += '^';
      else if (d === undefined) throw new RegexRefusal('a trailing backslash');
      else out += c + d;
      i += 2;
      continue;
    }
    if (c === '[') {
      // a character class: copied as is, but Python's leading `]` is a literal
      let j = i + 1;
      let cls = '[';
      if (src[j] === '^') {
        cls += '^';
        j++;
      }
      if (src[j] === ']') {
        cls += '\\]';
        j++;
      }
      while (j < n && src[j] !== ']') {
        if (src[j] === '\\') {
          cls += src[j]! + (src[j + 1] ?? '');
          j += 2;
          continue;
        }
        if (src[j] === '[') cls += '\\[';
        else cls += src[j];
        j++;
      }
      out += `${cls}]`;
      i = j + 1;
      continue;
    }
    if (c === '(' && src[i + 1] === '?') {
      const rest = src.slice(i + 2);
      let m: RegExpExecArray | null;
      if ((m = /^P<([A-Za-z_]\w*)>/.exec(rest))) {
        out += `(?<${uniqueName(m[1]!, names)}>`;
        stack.push('group');
        i += 2 + m[0].length;
        continue;
      }
      if ((m = /^<([A-Za-z_]\w*)>/.exec(rest))) {
        out += `(?<${uniqueName(m[1]!, names)}>`;
        stack.push('group');
        i += 2 + m[0].length;
        continue;
      }
      if ((m = /^P=([A-Za-z_]\w*)\)/.exec(rest))) {
        out += `\\k<${m[1]}>`;
        i += 2 + m[0].length;
        continue;
      }
      if ((m = /^([aiLmsux]+)\)/.exec(rest))) {
        for (const f of m[1]!) {
          if (f === 'x') throw new RegexRefusal('verbose mode (?x) is not supported');
          if (f === 'i' || f === 's' || f === 'm') {
            if (!flags.includes(f)) flags += f;
          }
        }
        if (out.replace(/^\^?/, '') !== '' && out !== '(?:' && m[1]!.includes('i'))
          notes.push(`(?${m[1]}) in the middle of the pattern applies to the whole pattern here`);
        i += 2 + m[0].length;
        continue;
      }
      if ((m = /^\(([A-Za-z_]\w*|\d+)\)/.exec(rest))) {
        notes.push(`the conditional group (?(${m[1]})…|…) matches either branch here`);
        out += '(?:';
        stack.push('cond');
        i += 2 + m[0].length;
        continue;
      }
      if (rest.startsWith('#')) {
        const close = src.indexOf(')', i);
        i = close < 0 ? n : close + 1;
        continue;
      }
      if (rest.startsWith('>')) throw new RegexRefusal('atomic groups (?>…) are not supported');
      out += '(?';
      stack.push('group');
      i += 2;
      continue;
    }
    if (c === '(') stack.push('group');
    if (c === ')') stack.pop();
    if (c === '{' && /^\{,\d+\}/.test(src.slice(i))) {
      out += '{0,';
      i += 2;
      continue;
    }
    if ((c === '+' || c === '*' || c === '?' || c === '}') && src[i + 1] === '+')
      throw new RegexRefusal('possessive quantifiers are not supported');
    out += c;
    i++;
  }
  return { source: out, flags, notes: [...new Set(notes)] };
}

function uniqueName(name: string, names: Map<string, number>): string {
  const k = names.get(name) ?? 0;
  names.set(name, k + 1);
  return k === 0 ? name : `${name}__${k}`;
}

/** Does the pattern match a newline (an unescaped `\n` or a literal one)? */
function hasNewline(src: string): boolean {
  for (let i = 0; i < src.length; i++) {
    if (src[i] === '\n') return true;
    if (src[i] === '\\') {
      if (src[i + 1] === 'n') return true;
      i++;
    }
  }
  return false;
}

function compile(src: string, what: string): { re: RegExp; notes: string[] } {
  if (hasNewline(src)) throw new RegexRefusal(`${what} matches across lines (multi-line filters are not loaded)`);
  const t = translatePython(resolveTags(src));
  try {
    return { re: new RegExp(t.source, t.flags), notes: t.notes };
  } catch (err) {
    throw new RegexRefusal(`${what} does not compile in JavaScript: ${(err as Error).message}`);
  }
}

// ---------------------------------------------------------------- dates

const MON = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)\\w*';
const DAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)\\w*';
const STRF: Record<string, string> = {
  Y: '\\d{4}',
  ExY: '\\d{4}',
  y: '\\d{2}',
  Exy: '\\d{2}',
  m: '(?:1[0-2]|0?[1-9]| [1-9])',
  Exm: '(?:1[0-2]|0[1-9])',
  d: '(?:3[01]|[12]\\d|0?[1-9]| [1-9])',
  Exd: '(?:3[01]|[12]\\d|0[1-9])',
  H: '(?:2[0-3]|[01]?\\d)',
  ExH: '(?:2[0-3]|[01]\\d)',
  k: '\\s?(?:2[0-3]|[01]?\\d)',
  I: '(?:1[0-2]|0?[1-9])',
  l: '\\s?(?:1[0-2]|0?[1-9])',
  M: '[0-5]\\d',
  ExM: '[0-5]\\d',
  S: '(?:[0-5]\\d|6[01])',
  ExS: '(?:[0-5]\\d|6[01])',
  f: '\\d+',
  z: '(?:Z|UTC|GMT|[+-]\\d{2}(?::?\\d{2})?)',
  Z: '[A-Z]{3,5}',
  a: DAY,
  A: DAY,
  b: MON,
  B: MON,
  Exb: MON,
  p: '[AaPp][Mm]',
  j: '\\d{3}',
  s: '\\d{10}',
  '%': '%',
};

/** fail2ban's default date templates, as regexes (searched anywhere; the earliest match is the date). */
const DEFAULT_DATES = [
  '%ExY(?P<_sep>[-/.])%m(?P=_sep)%d(?:T|  ?)%H:%M:%S(?:[.,]%f)?(?:\\s*%z)?',
  '(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?',
  '(?:%a )?%b %d %ExY %k:%M:%S(?:\\.%f)?',
  '%d(?P<_sep>[-/])%m(?P=_sep)(?:%ExY|%Exy) %k:%M:%S',
  '%d(?P<_sep>[-/])%b(?P=_sep)%ExY[ :]?%H:%M:%S(?:\\.%f)?(?: %z)?',
  '%m/%d/%ExY:%H:%M:%S',
  '%m-%d-%ExY %k:%M:%S(?:\\.%f)?',
  'EPOCH',
  '{^LN-BEG}%H:%M:%S',
  '%Exy%Exm%Exd  ?%H:%M:%S',
  '%b %d, %ExY %I:%M:%S %p',
  '^%b-%d-%Exy %k:%M:%S',
  '%ExY%Exm%Exd(?:T|  ?)%ExH%ExM%ExS(?:[.,]%f)?(?:\\s*%z)?',
  '(?:%Z )?(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?',
  '(?:%z )?(?:%a )?%b %d %k:%M:%S(?:\\.%f)?(?: %ExY)?',
];

/** A date template (`{^LN-BEG}%b %d …`, `^[^\[]*\[({DATE})`, `EPOCH`) as regexes whose group `date` is the stamp to cut. */
function dateRegexes(template: string): RegExp[] {
  let t = template.trim();
  let begin = false;
  if (t.startsWith('{^LN-BEG}')) {
    begin = true;
    t = t.slice(9);
  }
  const defaults = (): string[] =>
    DEFAULT_DATES.filter((d) => d !== 'EPOCH').map((d) => strf(d.replace(/^\{\^LN-BEG\}|^\^/, '')));
  if (t === 'EPOCH' || t === 'LEPOCH')
    return [new RegExp(`${begin ? '^\\s*' : '(?:^|(?<=\\W))'}(?<date>\\d{10}(?:\\.\\d{3,6})?)(?!\\w)`)];
  if (t === 'TAI64N') return [new RegExp(`${begin ? '^\\s*' : ''}(?<date>@[0-9a-f]{24})`)];
  if (t === '{DEFAULT}' || t === '')
    return defaults().map((d) => new RegExp(`${begin ? '^\\s*\\[?' : '(?<![\\w])'}(?<date>${d})(?![\\w])`));
  if (t.includes('{DATE}')) {
    // fail2ban cuts the template's first group when it has one (`^[^\[]*(\[{DATE}\s*\])` cuts the brackets too)
    const group = /(?<!\\)\((?!\?)/.exec(t);
    const marked = group
      ? `${t.slice(0, group.index)}(?P<date>${t.slice(group.index + 1)}`
      : t.replace('{DATE}', '(?P<date>{DATE})');
    const tp = translatePython(marked.replace('{DATE}', '\u0000'));
    return defaults().map((d) => new RegExp(tp.source.replace('\u0000', `(?:${d})`), tp.flags));
  }
  const anchored = t.startsWith('^');
  if (anchored) t = t.slice(1);
  return [new RegExp(`${begin || anchored ? '^\\s*\\[?' : '(?<![\\w])'}(?<date>${strf(t)})(?![\\w])`)];
}

function strf(t: string): string {
  const src = t.replace(/%(Ex[YymdHMSb]|[A-Za-z%])/g, (m, code: string) => STRF[code] ?? m);
  return translatePython(src).source;
}

let defaultDate: RegExp[] | null = null;

/** The line with its stamp cut out, as fail2ban's failregex sees it; null stamp when none found. */
export function cutDate(line: string, dates: RegExp[] | null): string {
  const list = dates ?? (defaultDate ??= DEFAULT_DATES.flatMap((d) => dateRegexes(d)));
  let bestStart = Infinity;
  let bestLen = 0;
  for (const re of list) {
    const m = re.exec(line);
    const date = m?.groups?.['date'];
    if (!m || !date) continue;
    const start = m.index + m[0].lastIndexOf(date);
    if (start < bestStart) {
      bestStart = start;
      bestLen = date.length;
      if (dates) break;
    }
  }
  if (bestStart === Infinity) return line;
  const start = bestStart;
  const date = { length: bestLen };
  return line.slice(0, start) + line.slice(start + date.length);
}

// ---------------------------------------------------------------- filters

interface LoadedFilter {
  name: string;
  prefregex: RegExp | null;
  failregex: RegExp[];
  ignoreregex: RegExp[];
  dates: RegExp[] | null;
}

function splitList(v: string | undefined): string[] {
  return (v ?? '')
    .split('\n')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

/** One filter file (with options such as `mode=aggressive`) → its compiled regexes and report. */
export function loadFilter(
  file: string,
  options: Map<string, string> = new Map(),
  name = basename(file).replace(/\.(conf|local)$/, ''),
): { filter: LoadedFilter | null; report: FilterReport } {
  const report: FilterReport = { filter: name, file, loaded: false, failregex: 0, ignoreregex: 0, notes: [] };
  try {
    const ini = readConf(file);
    if (!ini.has('Definition')) throw new RegexRefusal('the file has no [Definition] section');
    const ip = new Interpolator(ini, options);
    const value = (k: string): string | undefined => {
      const v = ip.get('Definition', k);
      return v === undefined ? undefined : ip.tags('Definition', v);
    };
    const maxlines = Number(value('maxlines') ?? '1');
    if (maxlines > 1)
      throw new RegexRefusal(
        `maxlines = ${maxlines}: multi-line filters are not loaded (Cordon matches one line at a time)`,
      );
    const fails = splitList(value('failregex'));
    if (fails.length === 0) throw new RegexRefusal('failregex is empty');
    const pref = value('prefregex');
    const dp = value('datepattern');
    let prefregex: RegExp | null = null;
    if (pref && pref.trim()) {
      const c = compile(pref.trim(), 'prefregex');
      prefregex = c.re;
      report.notes.push(...c.notes.map((x) => `prefregex: ${x}`));
    }
    const failregex: RegExp[] = [];
    fails.forEach((f, k) => {
      try {
        const c = compile(f, `failregex #${k + 1}`);
        if (
          !/\(\?<(?:ip4|ip6|dns|fid)(?:__\d+)?>/.test(c.re.source) &&
          !/\(\?<(?:ip4|ip6|dns|fid)/.test(prefregex?.source ?? '')
        ) {
          throw new RegexRefusal(
            'it has no <HOST>, <ADDR> or <F-ID> (fail2ban attributes such lines through earlier lines of the session, which loaded filters do not track)',
          );
        }
        failregex.push(c.re);
        for (const x of c.notes) report.notes.push(`failregex #${k + 1}: ${x}`);
      } catch (err) {
        if (!(err instanceof RegexRefusal)) throw err;
        report.notes.push(`failregex #${k + 1} refused: ${err.message}`);
      }
    });
    if (failregex.length === 0) throw new RegexRefusal(`no failregex could be loaded (${report.notes.join('; ')})`);
    const ignoreregex: RegExp[] = [];
    splitList(value('ignoreregex')).forEach((g, k) => {
      try {
        ignoreregex.push(compile(g, `ignoreregex #${k + 1}`).re);
      } catch (err) {
        if (!(err instanceof RegexRefusal)) throw err;
        report.notes.push(`ignoreregex #${k + 1} refused: ${err.message}`);
      }
    });
    let dates: RegExp[] | null = null;
    if (dp && dp.trim()) {
      dates = [];
      for (const d of splitList(dp)) {
        try {
          dates.push(...dateRegexes(d));
        } catch (err) {
          report.notes.push(`datepattern ${d} refused: ${(err as Error).message}`);
        }
      }
      if (dates.length === 0) dates = null;
    }
    report.loaded = true;
    report.failregex = failregex.length;
    report.ignoreregex = ignoreregex.length;
    return { filter: { name, prefregex, failregex, ignoreregex, dates }, report };
  } catch (err) {
    report.reason = (err as Error).message;
    return { filter: null, report };
  }
}

/** The failure a filter finds in a line: the attacker's address (or fail2ban's failure id); null when none. */
export function matchFilter(f: LoadedFilter, line: string): string | null {
  const text = cutDate(line, f.dates);
  let content = text;
  let prefGroups: Record<string, string | undefined> | undefined;
  if (f.prefregex) {
    const p = f.prefregex.exec(text);
    if (!p) return null;
    prefGroups = p.groups;
    content = p.groups?.['content'] ?? text;
  }
  for (const re of f.failregex) {
    const m = re.exec(content);
    if (!m) continue;
    for (const g of f.ignoreregex) if (g.test(text)) return null;
    const groups = { ...prefGroups, ...m.groups };
    // <F-NOFAIL> or <F-MLFGAINED> (a login that succeeded) in the match: the line alone is no failure
    for (const [name, v] of Object.entries(groups))
      if (v !== undefined && /^(?:nofail|mlfgained)(?:__\d+)?$/.test(name)) return null;
    for (const k of ['ip4', 'ip6', 'dns', 'fid']) {
      for (const [name, v] of Object.entries(groups)) {
        if (v && (name === k || name.startsWith(`${k}__`))) return k === 'fid' ? v : normalizeAddress(v);
      }
    }
  }
  return null;
}

// ---------------------------------------------------------------- jails

function parseDurationS(v: string | undefined, dflt: number): number {
  if (v === undefined || v.trim() === '') return dflt;
  const s = v.trim();
  if (/^-?\d+(?:\.\d+)?$/.test(s)) return Number(s);
  let total = 0;
  const re =
    /(\d+(?:\.\d+)?)\s*(seconds?|secs?|s|minutes?|mins?|m|hours?|h|days?|d|weeks?|wk?|w|months?|mo|years?|y)?/gi;
  let m: RegExpExecArray | null;
  let any = false;
  while ((m = re.exec(s))) {
    if (!m[0].trim()) break;
    any = true;
    const u = (m[2] ?? 's').toLowerCase();
    const k = u.startsWith('mo')
      ? 2_592_000
      : u.startsWith('s')
        ? 1
        : u.startsWith('m')
          ? 60
          : u.startsWith('h')
            ? 3600
            : u.startsWith('d')
              ? 86400
              : u.startsWith('w')
                ? 604800
                : u.startsWith('y')
                  ? 31_536_000
                  : 1;
    total += Number(m[1]) * k;
  }
  return any ? total : dflt;
}

interface JailSettings {
  jail: string;
  enabled: boolean;
  maxretry: number;
  findtimeS: number;
  bantimeS: number;
  options: Map<string, string>;
}

/** Jails by filter name: maxretry, findtime, bantime and filter options (`sshd[mode=aggressive]`). */
function readJails(root: string): Map<string, JailSettings> {
  const ini: Ini = new Map();
  const files = ['jail.conf', 'jail.local'].map((f) => join(root, f));
  const d = join(root, 'jail.d');
  if (existsSync(d)) for (const f of readdirSync(d).sort()) if (/\.(conf|local)$/.test(f)) files.push(join(d, f));
  for (const f of files) if (existsSync(f)) readConf(f, ini);
  const out = new Map<string, JailSettings>();
  for (const [jail, opts] of ini) {
    if (jail === 'DEFAULT' || jail === 'INCLUDES' || jail === 'Definition' || jail === 'Init') continue;
    const ip = new Interpolator(ini, new Map([['__name__', jail]]));
    const get = (k: string): string | undefined => {
      try {
        const own = opts.get(k);
        const v = own ? own[own.length - 1] : ini.get('DEFAULT')?.get(k)?.slice(-1)[0];
        return v === undefined ? undefined : ip.expand(jail, v.replace(/%\(__name__\)s/g, jail), 0);
      } catch {
        return undefined;
      }
    };
    const filterSpec = (get('filter') ?? jail).split('\n')[0]!.trim();
    const fm = /^([\w\-.]+)(?:\[(.*)\])?$/.exec(filterSpec);
    if (!fm) continue;
    const options = new Map<string, string>();
    for (const kv of (fm[2] ?? '').split(/,\s*/)) {
      const eq = kv.indexOf('=');
      if (eq > 0)
        options.set(
          kv.slice(0, eq).trim(),
          kv
            .slice(eq + 1)
            .trim()
            .replace(/^["']|["']$/g, ''),
        );
    }
    const s: JailSettings = {
      jail,
      enabled: /^(?:true|yes|1|on)$/i.test(get('enabled') ?? 'false'),
      maxretry: Number(get('maxretry') ?? 5) || 5,
      findtimeS: parseDurationS(get('findtime'), 600),
      bantimeS: parseDurationS(get('bantime'), 600),
      options,
    };
    const prev = out.get(fm[1]!);
    if (!prev || (!prev.enabled && s.enabled)) out.set(fm[1]!, s);
  }
  return out;
}

// ---------------------------------------------------------------- as rules

/** Every filter under the folder (or those named), as rules, with the load report. */
export function loadFail2ban(opts: Fail2banOptions, into?: RuleSet): Fail2banLoad {
  let filterDir = opts.dir;
  let root = dirname(opts.dir);
  if (existsSync(join(opts.dir, 'filter.d')) && statSync(join(opts.dir, 'filter.d')).isDirectory()) {
    filterDir = join(opts.dir, 'filter.d');
    root = opts.dir;
  }
  const jails = readJails(root);
  const wanted = (opts.filters ?? []).map((spec) => {
    const m = /^([\w\-.]+)(?:\[(.*)\])?$/.exec(spec.trim());
    const options = new Map<string, string>();
    for (const kv of (m?.[2] ?? '').split(/,\s*/)) {
      const eq = kv.indexOf('=');
      if (eq > 0) options.set(kv.slice(0, eq).trim(), kv.slice(eq + 1).trim());
    }
    return { name: m?.[1] ?? spec, options };
  });
  const names = wanted.length
    ? wanted.map((w) => w.name)
    : readdirSync(filterDir)
        .filter((f) => f.endsWith('.conf'))
        .map((f) => f.slice(0, -5))
        .sort();
  const out: Fail2banLoad = { rules: [], refused: [], reports: [] };
  for (const name of names) {
    const file = join(filterDir, `${name}.conf`);
    const jail = jails.get(name);
    const options = new Map([...(jail?.options ?? []), ...(wanted.find((w) => w.name === name)?.options ?? [])]);
    if (!existsSync(file)) {
      const report: FilterReport = {
        filter: name,
        file,
        loaded: false,
        failregex: 0,
        ignoreregex: 0,
        notes: [],
        reason: 'no such filter file',
      };
      out.reports.push(report);
      out.refused.push({ id: `fail2ban-${name}`, title: name, file, reason: report.reason! });
      continue;
    }
    if (name === 'common' || name.endsWith('-common')) {
      out.reports.push({
        filter: name,
        file,
        loaded: false,
        include: true,
        failregex: 0,
        ignoreregex: 0,
        notes: [],
        reason: 'an include file for other filters, not a filter',
      });
      continue;
    }
    const { filter, report } = loadFilter(file, options, name);
    out.reports.push(report);
    if (!filter) {
      out.refused.push({ id: `fail2ban-${name}`, title: name, file, reason: report.reason ?? 'not loaded' });
      continue;
    }
    const threshold: ThresholdSpec = {
      count: jail?.maxretry ?? 5,
      windowMs: (jail?.findtimeS ?? 600) * 1000,
      group: `fail2ban:${name}`,
      distinct: null,
      by: 'src_ip',
      op: '>=',
    };
    report.threshold = {
      maxretry: threshold.count,
      findtimeS: threshold.windowMs / 1000,
      bantimeS: jail?.bantimeS ?? 600,
      jail: jail?.jail ?? null,
    };
    out.rules.push(filterRule(filter, file, threshold, (jail?.bantimeS ?? 600) * 1000));
  }
  if (into) {
    into.rules.push(...out.rules);
    into.refused.push(...out.refused);
  }
  return out;
}

function filterRule(f: LoadedFilter, file: string, threshold: ThresholdSpec, banMs: number): CompiledRule {
  let lastEv: LogEvent | null = null;
  let lastAddr: string | null = null;
  const run = (ev: LogEvent): string | null => {
    if (ev !== lastEv) {
      lastEv = ev;
      lastAddr = matchFilter(f, ev.line ?? ev.raw);
    }
    return lastAddr;
  };
  // the prefilter's literals: one of each failregex's required literals must be in the line
  // a literal holding `[]` spans the cut stamp (`[10/Mar/2024:…]` → `[]`): not in the raw line
  const lits = f.failregex.map((re) => {
    const l = requiredLiterals(re.source, re.flags);
    return l && l.every((x) => !x.includes('[]')) ? l : null;
  });
  const requirement = lits.every((l): l is string[] => l !== null)
    ? [lits.flat().map((lit) => ({ field: RAW, lit }))]
    : null;
  const pl = f.prefregex ? requiredLiterals(f.prefregex.source, f.prefregex.flags) : null;
  const prefLits = pl && pl.every((x) => !x.includes('[]')) ? pl : null;
  const reqs = [...(requirement ?? []), ...(prefLits ? [prefLits.map((lit) => ({ field: RAW, lit }))] : [])];
  const match = (ev: LogEvent): boolean => run(ev) !== null;
  return {
    id: `fail2ban-${f.name}`,
    title: `fail2ban filter ${f.name}`,
    level: 'medium',
    severity: 3,
    origin: 'cordon',
    file,
    author: null,
    tags: [],
    kinds:
      KIND.syslog |
      KIND.text |
      KIND.auth |
      KIND.sshd |
      KIND.webAccess |
      KIND.apacheError |
      KIND.nginxError |
      KIND.auditd,
    match,
    requirement: reqs.length ? reqs : null,
    extractors: [],
    addressOf: run,
    requireAddress: true,
    report: 'each',
    threshold,
    block: true,
    blockTtlMs: banMs > 0 ? banMs : null,
    neverFlag: false,
    oncePerConnection: false,
    userSwitch: false,
    searches: [['failregex', match]],
    examples: null,
  };
}
