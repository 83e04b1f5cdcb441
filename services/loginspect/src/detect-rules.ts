import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { KIND, lowerCase, type LogEvent } from './decode.js';
import {
  cheapFirst,
  conjunction,
  allOf,
  anyOf,
  COSTLY,
  parseCondition,
  reqAll,
  withCost,
  reqAny,
  REQUIREMENTS,
  SigmaConditionError,
  withReq,
  type Aggregation,
  type Pred,
  type Requirement,
  type Requirements,
} from './detect-condition.js';
import { LiteralScanner, RAW } from './detect-literals.js';
import { ERR_LOGINSPECT_RULE_FILE } from './errors.js';
import { compileRegex, compileValue, SigmaValueError, type ValuePredicate } from './detect-value.js';

/**
 * Rules: Sigma YAML (SigmaHQ's files as they are) and Cordon's built-in rules, which are
 * Sigma documents plus an optional `cordon:` block (address extraction, thresholds, blocking).
 * Each document is compiled once (setup) into a predicate over a LogEvent (match); a document
 * that cannot be served — its log source is not something log lines carry, or it uses a
 * feature not implemented — is *refused with a reason*, never dropped silently.
 */

export type Level = 'informational' | 'low' | 'medium' | 'high' | 'critical';

export interface ThresholdSpec {
  count: number;
  windowMs: number;
  /** Counter name: rules sharing it count together (every auth failure of an address). */
  group: string;
  /** Field counted per key: distinct values (Sigma `count(field)`); null counts events. */
  distinct: string | null;
  /** Key: `src_ip` (the extracted address) or an event field. */
  by: string;
  op: Aggregation['op'];
}

export interface CompiledRule {
  id: string;
  title: string;
  level: Level;
  /** 1 (highest) .. 4, as alerts carry it. */
  severity: number;
  origin: 'sigma' | 'cordon';
  file: string;
  author: string | null;
  tags: string[];
  /** Any of these event kinds. */
  kinds: number;
  match: Pred<LogEvent>;
  /** Lists of literals of which one each must occur for `match` to be possible (null: none known). */
  requirement: Requirements | null;
  /** Regexes (with a named group `ip`) over fields, tried in order to name the attacker. */
  extractors: { field: string; cased: boolean; re: RegExp }[];
  /** The detection is only worth reporting with an attacker address. */
  requireAddress: boolean;
  /** The address from the rule's own match (loaded fail2ban filters); tried before `extractors`. */
  addressOf?: (ev: LogEvent) => string | null;
  /** How long a block this rule asks for lasts (a fail2ban jail's bantime); null: the block policy's. */
  blockTtlMs?: number | null;
  /** `each`: every matching line is a detection; `threshold`: only the line that crosses it. */
  report: 'each' | 'threshold';
  threshold: ThresholdSpec | null;
  /** Crossing the threshold asks the enforcer to block the address. */
  block: boolean;
  /**
   * A never-flag entry (`cordon: { never_flag: true }`): a line it matches is benign, and no
   * rule reports it (nor counts it toward a threshold).
   */
  neverFlag: boolean;
  /**
   * Counts only when no earlier line of the same connection (host, program, pid) was counted:
   * a client that disconnects after failing was already counted for its failures, one that
   * disconnects before any failure line is one failed attempt.
   */
  oncePerConnection: boolean;
  /**
   * Counts only when an earlier line of the same connection failed for another user name (a
   * client trying several accounts in one connection, then getting in); every match records
   * its user for the lines after it.
   */
  userSwitch: boolean;
  /** The detection's named searches, kept so `--explain` can say which of them matched. */
  searches: ReadonlyArray<readonly [string, Pred<LogEvent>]>;
  /** Labelled examples the rule file carries (`cordon.examples`), checked by the tests. */
  examples: RuleExamples | null;
}

/** Lines a rule must match (with the attacker address it must name) and lines it must leave alone. */
export interface RuleExamples {
  match: { line: string; ip: string | null }[];
  nomatch: string[];
}

/** The `cordon:` block's keys; any other is refused by name (a typo must not pass silently). */
const CORDON_KEYS = new Set([
  'address',
  'report',
  'threshold',
  'block',
  'never_flag',
  'once_per_connection',
  'user_switch',
  'examples',
]);

function parseExamples(v: unknown): RuleExamples | null {
  if (v === undefined) return null;
  if (!v || typeof v !== 'object') throw new RuleRefusal('cordon.examples must be a map with match and nomatch lists');
  const e = v as Record<string, unknown>;
  for (const k of Object.keys(e))
    if (k !== 'match' && k !== 'nomatch') throw new RuleRefusal(`cordon.examples: unknown key "${k}" (match, nomatch)`);
  const match = (Array.isArray(e['match']) ? e['match'] : []).map((m: unknown) => {
    if (typeof m === 'string') return { line: m, ip: null };
    const o = m as Record<string, unknown>;
    if (!o || typeof o['line'] !== 'string')
      throw new RuleRefusal('cordon.examples.match: each entry is a line or { line, ip }');
    return { line: o['line'], ip: typeof o['ip'] === 'string' ? o['ip'] : null };
  });
  const nomatch = (Array.isArray(e['nomatch']) ? e['nomatch'] : []).map((m: unknown) => {
    if (typeof m !== 'string') throw new RuleRefusal('cordon.examples.nomatch: each entry is a line');
    return m;
  });
  return { match, nomatch };
}

export interface RefusedRule {
  id: string;
  title: string;
  file: string;
  reason: string;
  /** CORDON_ERR_LOGINSPECT_RULE_FILE when the whole file was refused (it does not parse, or is an alias bomb). */
  code?: string;
}

/** Alias expansions a rule file may need (the yaml library's default, caught and coded here). */
const MAX_ALIAS_COUNT = 100;

export interface RuleSet {
  rules: CompiledRule[];
  refused: RefusedRule[];
  /** Answers the rules' `contains` tests (created by loadRuleDir when absent). */
  literals?: LiteralScanner;
}

class RuleRefusal extends Error {}

// ---------------------------------------------------------------- log sources

const LINUX_SERVICES: Record<string, number> = {
  sshd: KIND.sshd,
  auth: KIND.auth,
  sudo: KIND.sudo,
  cron: KIND.cron,
  vsftpd: KIND.vsftpd,
  clamav: KIND.clamav,
  guacamole: KIND.guacamole | KIND.text,
  auditd: KIND.auditd,
  syslog: KIND.syslog | KIND.text,
};

/**
 * What a rule set is loaded for: log lines (loginspect) or process starts (procinspect, from
 * the agents' process events). Each refuses the other's rules, so neither counts a rule it
 * cannot serve as loaded.
 */
export type RuleTarget = 'logs' | 'processes';

/**
 * The fields of a process start as procinspect fills them: Sysmon for Linux's process_creation
 * names (SigmaHQ's Linux rules are written against them) and Cordon's own. A rule naming any
 * other field (OriginalFileName, LogonId, IntegrityLevel…) is refused: no event carries it.
 */
export const PROCESS_FIELDS: ReadonlySet<string> = new Set([
  'Image',
  'CommandLine',
  'ParentImage',
  'ParentCommandLine',
  'User',
  'CurrentDirectory',
  'ProcessId',
  'ParentProcessId',
  'Hashes',
  'sha256',
  // Cordon's own: the agent's view of the executable and the process tree
  'Comm',
  'Uid',
  'Euid',
  'ImageDeleted',
  'SuidNew',
  'AncestorImages',
  'ExecSource',
]);

/** Every field a detection names (`Field|modifier` keys of its searches). */
function detectionFields(detection: Record<string, unknown>): Set<string> {
  const out = new Set<string>();
  const visit = (def: unknown): void => {
    if (Array.isArray(def)) def.forEach(visit);
    else if (def && typeof def === 'object')
      for (const key of Object.keys(def)) {
        const f = key.split('|')[0]!;
        if (f) out.add(f);
      }
  };
  for (const [name, def] of Object.entries(detection)) if (name !== 'condition' && name !== 'timeframe') visit(def);
  return out;
}

/** Sigma logsource → the event kinds that serve it, or the reason none does. */
export function kindsForLogsource(
  ls: Record<string, unknown> | undefined,
  target: RuleTarget = 'logs',
): number | string {
  const product = typeof ls?.['product'] === 'string' ? ls['product'].toLowerCase() : null;
  const category = typeof ls?.['category'] === 'string' ? ls['category'].toLowerCase() : null;
  const service = typeof ls?.['service'] === 'string' ? ls['service'].toLowerCase() : null;
  const processCreation = product === 'linux' && category === 'process_creation' && !service;
  if (target === 'processes')
    return processCreation
      ? KIND.process
      : `log source ${[product, category, service].filter(Boolean).join('/') || '(none)'} is not a Linux process_creation source (procinspect serves product linux, category process_creation)`;
  if (processCreation)
    return 'log source category "process_creation" is served by the procinspect stage (agents\' process events), not by log lines';
  if (category === 'webserver') return KIND.webAccess;
  if (service === 'apache') return KIND.apacheError;
  if (service === 'nginx') return KIND.nginxError;
  // Cordon's own: both web servers' error logs (Sigma has no log source for "any web error log")
  if (service === 'webserver-error') return KIND.apacheError | KIND.nginxError;
  if (product !== 'linux')
    return `log source product "${product ?? '(none)'}" is not served (loginspect reads Linux and web-server logs)`;
  if (category) {
    return `log source category "${category}" needs endpoint telemetry (process, file or network events from an EDR/Sysmon-for-Linux), which log lines do not carry`;
  }
  if (service) return LINUX_SERVICES[service] ?? `log source service "${service}" is not decoded`;
  return KIND.syslog | KIND.text | KIND.auth;
}

// ---------------------------------------------------------------- detection

const lowerOf = (ev: LogEvent, name: string, v: string): string => {
  let lc = (ev as LogEvent & { lc?: Record<string, string> }).lc;
  if (!lc) (ev as LogEvent & { lc?: Record<string, string> }).lc = lc = {};
  let l = lc[name];
  if (l === undefined) lc[name] = l = lowerCase(v);
  return l;
};

/** The field's text as the predicate wants it (original or lowered); undefined when absent. */
export function fieldText(ev: LogEvent, name: string, cased: boolean): string | undefined {
  if (name === RAW) return cased ? ev.raw : lowerOf(ev, RAW, ev.raw);
  const v = ev.fields[name];
  if (v === undefined) return undefined;
  return cased ? v : lowerOf(ev, name, v);
}

interface CompileOut {
  extractors: CompiledRule['extractors'];
  /** When given, `contains` tests become lookups in its per-event scan. */
  literals: LiteralScanner | null;
}

/**
 * One value's predicate over the event: a `contains` the scanner can answer becomes a lookup of
 * its hit (the field scanned once per event for every rule's literals); the rest read the
 * field's text, lower-cased unless the predicate is case-sensitive.
 */
/** Up to this many alternatives, each is asked about its literals (see `eventPred`). */
const FEW_BRANCHES = 8;

function eventPred(field: string, p: ValuePredicate, out: CompileOut): Pred<LogEvent> {
  const sc = out.literals;
  if (sc && p.contains && LiteralScanner.accepts(p.contains)) {
    const f = sc.fieldId(field);
    const id = sc.register(field, p.contains);
    return (ev) => sc.has(ev, f, id);
  }
  if (sc && p.branches) {
    // an alternation cut into its alternatives: once the field is scanned, only those whose
    // literals it holds run (and the rest, as one); before, the whole pattern
    const f = sc.fieldId(field);
    const whole = p.test;
    const rest = p.rest ?? null;
    const gated = p.branches.map((b) => ({
      test: b.test,
      ids: b.required.every((l) => LiteralScanner.accepts(l))
        ? Int32Array.from(b.required, (l) => sc.register(field, l))
        : null,
    }));
    if (gated.length <= FEW_BRANCHES)
      return (ev) => {
        const s = field === RAW ? ev.raw : ev.fields[field];
        if (s === undefined) return false;
        if (!sc.scannedIn(ev, f)) return whole(s);
        if (rest !== null && rest(s)) return true;
        for (let k = 0; k < gated.length; k++) {
          const b = gated[k]!;
          if ((b.ids === null || sc.found1(b.ids)) && b.test(s)) return true;
        }
        return false;
      };
    // Many alternatives (a list of CVE probes has dozens, each with its own literals): go from
    // the few literals the event holds to the alternatives that need them, instead of asking
    // every alternative about its literals. Which alternative matches first does not matter.
    const open = gated.filter((b) => b.ids === null).map((b) => b.test);
    const needing: (number[] | undefined)[] = [];
    gated.forEach((b, k) => {
      for (const id of b.ids ?? []) {
        const list = (needing[id] ??= []);
        if (!list.includes(k)) list.push(k);
      }
    });
    const tried = new Uint32Array(gated.length);
    let stamp = 0;
    return (ev) => {
      const s = field === RAW ? ev.raw : ev.fields[field];
      if (s === undefined) return false;
      if (!sc.scannedIn(ev, f)) return whole(s);
      if (rest !== null && rest(s)) return true;
      for (let k = 0; k < open.length; k++) if (open[k]!(s)) return true;
      if (++stamp === 0x100000000) {
        tried.fill(0);
        stamp = 1;
      }
      // every literal found in the event so far (this field's among them: it was scanned)
      const hits = sc.hits;
      for (let j = 0; j < sc.hitCount; j++) {
        const list = needing[hits[j]!];
        if (list === undefined) continue;
        for (let i = 0; i < list.length; i++) {
          const k = list[i]!;
          if (tried[k] === stamp) continue;
          tried[k] = stamp;
          if (gated[k]!.test(s)) return true;
        }
      }
      return false;
    };
  }
  const pred = textPred(field, p);
  // a regular expression one of whose required literals must be in the field: when the line's
  // scan (done for the prefilter) found none of them, it cannot match. A rule's `1 of them`
  // over sixteen daemons' patterns then runs only the patterns whose words the line holds.
  if (sc && p.costly && p.required && p.required.length > 0 && p.required.every((l) => LiteralScanner.accepts(l))) {
    const f = sc.fieldId(field);
    const ids = Int32Array.from(p.required, (l) => sc.register(field, l));
    return (ev) => !sc.lacks(ev, f, ids) && pred(ev);
  }
  return pred;
}

/** The value's test on the field's text (original or lower-cased, as the predicate wants). */
function textPred(field: string, p: ValuePredicate): Pred<LogEvent> {
  const folded = p.folded;
  if (folded) {
    if (field === RAW) return (ev) => folded(ev.raw);
    return (ev) => {
      const s = ev.fields[field];
      return s !== undefined && folded(s);
    };
  }
  if (field === RAW) return (ev) => p.test(p.cased ? ev.raw : lowerOf(ev, RAW, ev.raw));
  return (ev) => {
    const s = fieldText(ev, field, p.cased);
    return s !== undefined && p.test(s);
  };
}

/** Values ORed on one field: when every one is a scannable `contains`, one lookup over their ids. */
function anyValue(field: string, preds: ValuePredicate[], out: CompileOut): Pred<LogEvent> {
  const sc = out.literals;
  if (sc && preds.length > 1 && preds.every((p) => p.contains && LiteralScanner.accepts(p.contains))) {
    const fs = Int32Array.of(sc.fieldId(field));
    const ids = Int32Array.from(preds.map((p) => sc.register(field, p.contains!)));
    return (ev) => sc.any(ev, fs, ids);
  }
  return anyOf(preds.map((p) => eventPred(field, p, out)));
}

function valuePreds(values: unknown, mods: string[]): ValuePredicate[] {
  const list = Array.isArray(values) ? values : [values];
  if (list.length === 0) throw new RuleRefusal('an empty value list');
  return list.map((v) => compileValue(v, mods));
}

/** Values on one field: with `all`, each value's literals (where it has some); else one of any value's. */
function valuesRequirement(field: string, preds: ValuePredicate[], all: boolean): Requirements | undefined {
  const reqs = preds.map((p) => (p.required ? p.required.map((lit) => ({ field, lit })) : null));
  if (all) return conjunction(reqs.map((r) => (r ? [r] : undefined)));
  const known = reqs.filter((r): r is Requirement => r !== null);
  return known.length === reqs.length ? [known.flat()] : undefined;
}

function fieldPred(key: string, values: unknown, out: CompileOut): Pred<LogEvent> {
  const [field, ...mods] = key.split('|') as [string, ...string[]];
  const all = mods.includes('all');
  const vm = mods.filter((m) => m !== 'all');
  if (vm.includes('exists')) {
    const want = values === true || values === 'true';
    return (ev) => (ev.fields[field] !== undefined) === want;
  }
  if (vm.includes('fieldref')) throw new RuleRefusal('the fieldref modifier is not supported');
  const list = Array.isArray(values) ? values : [values];
  const hasNull = list.some((v) => v === null);
  const nonNull = list.filter((v) => v !== null);
  if (nonNull.length === 0 && list.length === 0) throw new RuleRefusal(`${field}: an empty value list`);
  const preds = nonNull.length ? valuePreds(nonNull, vm) : [];
  if (vm.includes('re')) {
    for (const v of list)
      if (typeof v === 'string' && v.includes('(?<ip'))
        out.extractors.push({ field, cased: true, re: compileRegex(v) });
  }
  const nullPred: Pred<LogEvent> = (ev) => {
    const v = ev.fields[field];
    return v === undefined || v === '';
  };
  if (preds.length === 0) return nullPred;
  const pred = all ? allOf(preds.map((p) => eventPred(field, p, out))) : anyValue(field, preds, out);
  if (preds.some((p) => p.costly)) COSTLY.add(pred);
  if (hasNull) return withCost((ev: LogEvent) => nullPred(ev) || pred(ev), [pred]);
  withReq(pred, valuesRequirement(field, preds, all));
  return pred;
}

/** Field-less values: Sigma keywords, matched anywhere in the raw line. */
function keywordPred(values: unknown, mods: string[], out: CompileOut): Pred<LogEvent> {
  const all = mods.includes('all');
  const vm = mods.filter((m) => m !== 'all');
  const explicit =
    vm.includes('contains') ||
    vm.includes('startswith') ||
    vm.includes('endswith') ||
    vm.includes('re') ||
    vm.includes('cidr');
  const preds = valuePreds(values, explicit ? vm : [...vm, 'contains']);
  const pred = all ? allOf(preds.map((p) => eventPred(RAW, p, out))) : anyValue(RAW, preds, out);
  if (preds.some((p) => p.costly)) COSTLY.add(pred);
  withReq(pred, valuesRequirement(RAW, preds, all));
  return pred;
}

function mapPred(map: Record<string, unknown>, out: CompileOut): Pred<LogEvent> {
  const parts: Pred<LogEvent>[] = [];
  for (const [key, values] of Object.entries(map)) {
    if (key === '' || key.startsWith('|')) parts.push(keywordPred(values, key.split('|').filter(Boolean), out));
    else parts.push(fieldPred(key, values, out));
  }
  if (parts.length === 0) throw new RuleRefusal('an empty selection');
  if (parts.length === 1) return parts[0]!;
  return withCost(withReq(allOf(cheapFirst(parts)), reqAll(parts)), parts);
}

function searchPred(def: unknown, out: CompileOut): Pred<LogEvent> {
  if (def === null || def === undefined) throw new RuleRefusal('an empty search identifier');
  if (Array.isArray(def)) {
    if (def.every((d) => typeof d !== 'object' || d === null)) return keywordPred(def, [], out);
    const preds = def.map((d) =>
      typeof d === 'object' && d !== null ? mapPred(d as Record<string, unknown>, out) : keywordPred(d, [], out),
    );
    return withCost(withReq(anyOf(cheapFirst(preds)), reqAny(preds)), preds);
  }
  if (typeof def === 'object') return mapPred(def as Record<string, unknown>, out);
  return keywordPred(def, [], out);
}

// ---------------------------------------------------------------- documents

const LEVELS: Record<string, number> = { critical: 1, high: 2, medium: 3, low: 4, informational: 4 };

function parseDuration(v: unknown): number {
  if (typeof v === 'number') return v * 1000;
  const m = typeof v === 'string' ? /^(\d+)\s*([smhdM]?)$/.exec(v.trim()) : null;
  if (!m) throw new RuleRefusal(`duration ${JSON.stringify(v)} is not understood (use 30s, 10m, 1h, 2d)`);
  const n = Number(m[1]);
  const unit = m[2] || 's';
  return n * ({ s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, M: 30 * 86_400_000 } as Record<string, number>)[unit]!;
}

/**
 * `<HOST>` in a Cordon rule's regex: where the attacker's address (or host name) sits. Each
 * occurrence gets its own group (ip, ip1, ip2, …: JavaScript forbids duplicate names); the
 * first one that took part in the match is the address.
 */
export const HOST_PATTERN =
  '(?<ip@>(?:::ffff:)?\\d{1,3}(?:\\.\\d{1,3}){3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*[0-9A-Fa-f]|[A-Za-z0-9](?:[\\w\\-]*\\.)+[A-Za-z][\\w\\-]*)';

function expandMacros(node: unknown): unknown {
  if (typeof node === 'string') {
    let n = 0;
    return node.replace(/<HOST>/g, () => HOST_PATTERN.replace('@', n++ === 0 ? '' : String(n - 1)));
  }
  if (Array.isArray(node)) return node.map(expandMacros);
  if (node && typeof node === 'object')
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, expandMacros(v)]));
  return node;
}

export function compileRule(
  doc: Record<string, unknown>,
  file: string,
  origin: 'sigma' | 'cordon',
  literals: LiteralScanner | null = null,
  target: RuleTarget = 'logs',
): CompiledRule {
  const id = typeof doc['id'] === 'string' ? doc['id'] : '';
  if (!id) throw new RuleRefusal('the rule has no id');
  const title = typeof doc['title'] === 'string' ? doc['title'] : id;
  const levelName = (typeof doc['level'] === 'string' ? doc['level'] : 'medium').toLowerCase() as Level;
  const kinds = kindsForLogsource(doc['logsource'] as Record<string, unknown> | undefined, target);
  if (typeof kinds === 'string') throw new RuleRefusal(kinds);
  const ext = (doc['cordon'] ?? {}) as Record<string, unknown>;
  for (const k of Object.keys(ext))
    if (!CORDON_KEYS.has(k)) throw new RuleRefusal(`cordon: unknown key "${k}" (${[...CORDON_KEYS].join(', ')})`);
  const detectionRaw = doc['detection'] as Record<string, unknown> | undefined;
  if (!detectionRaw || typeof detectionRaw !== 'object') throw new RuleRefusal('the rule has no detection');
  const detection = (origin === 'cordon' ? expandMacros(detectionRaw) : detectionRaw) as Record<string, unknown>;
  if (target === 'processes') {
    const missing = [...detectionFields(detection)].filter((f) => !PROCESS_FIELDS.has(f)).sort();
    if (missing.length)
      throw new RuleRefusal(
        `field${missing.length > 1 ? 's' : ''} ${missing.join(', ')} ${missing.length > 1 ? 'are' : 'is'} not carried by Linux process events`,
      );
  }
  const out: CompileOut = { extractors: [], literals };
  const searches = new Map<string, Pred<LogEvent>>();
  for (const [name, def] of Object.entries(detection)) {
    if (name === 'condition' || name === 'timeframe') continue;
    try {
      searches.set(name, searchPred(def, out));
    } catch (err) {
      if (err instanceof SigmaValueError || err instanceof RuleRefusal)
        throw new RuleRefusal(`${name}: ${err.message}`);
      throw err;
    }
  }
  const cond = detection['condition'];
  const condSrc = Array.isArray(cond) ? (cond.length === 1 ? cond[0] : null) : cond;
  if (typeof condSrc !== 'string')
    throw new RuleRefusal(
      Array.isArray(cond) ? 'a list of conditions is not supported' : 'the detection has no condition',
    );
  let parsed;
  try {
    parsed = parseCondition(condSrc, searches);
  } catch (err) {
    if (err instanceof SigmaConditionError) throw new RuleRefusal(err.message);
    throw err;
  }
  let threshold: ThresholdSpec | null = null;
  let report: CompiledRule['report'] = ext['report'] === 'threshold' ? 'threshold' : 'each';
  if (parsed.aggregation) {
    const agg = parsed.aggregation;
    if (agg.op === '<' || agg.op === '<=')
      throw new RuleRefusal(`aggregation "count() ${agg.op} N" (absence of events) is not supported`);
    const count = agg.op === '>' ? agg.value + 1 : agg.value;
    // no timeframe: Sigma counts over everything seen (the counter still resets when it fires)
    const windowMs =
      detection['timeframe'] === undefined ? Number.MAX_SAFE_INTEGER : parseDuration(detection['timeframe']);
    threshold = { count, windowMs, group: `rule:${id}`, distinct: agg.distinct, by: agg.by ?? '*', op: agg.op };
    report = 'threshold';
  }
  const th = ext['threshold'] as Record<string, unknown> | undefined;
  if (th) {
    threshold = {
      count: Number(th['count'] ?? 5),
      windowMs: parseDuration(th['window'] ?? '10m'),
      group: typeof th['group'] === 'string' ? th['group'] : `rule:${id}`,
      distinct: typeof th['distinct'] === 'string' ? th['distinct'] : null,
      by: typeof th['by'] === 'string' ? th['by'] : 'src_ip',
      op: '>=',
    };
    if (!(threshold.count >= 1)) throw new RuleRefusal('cordon.threshold.count must be ≥ 1');
  }
  const tags = Array.isArray(doc['tags']) ? doc['tags'].filter((t): t is string => typeof t === 'string') : [];
  return {
    id,
    title,
    level: levelName in LEVELS ? levelName : 'medium',
    severity: LEVELS[levelName] ?? 3,
    origin,
    file,
    author: typeof doc['author'] === 'string' ? doc['author'] : null,
    tags,
    kinds,
    match: parsed.match,
    requirement: REQUIREMENTS.get(parsed.match) ?? null,
    extractors: out.extractors,
    requireAddress: ext['address'] === 'required',
    report,
    threshold,
    block: ext['block'] === true,
    neverFlag: ext['never_flag'] === true,
    oncePerConnection: ext['once_per_connection'] === true,
    userSwitch: ext['user_switch'] === true,
    searches: [...searches],
    examples: parseExamples(ext['examples']),
  };
}

function listYaml(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const st = statSync(p);
      if (st.isDirectory()) walk(p);
      else if (/\.ya?ml$/i.test(name)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

/** Every YAML under `dir`: compiled rules, and every document that was refused with its reason. */
export function loadRuleDir(
  dir: string,
  origin: 'sigma' | 'cordon',
  into: RuleSet = { rules: [], refused: [] },
  target: RuleTarget = 'logs',
): RuleSet {
  const seen = new Set(into.rules.map((r) => r.id));
  for (const path of listYaml(dir)) {
    const file = relative(dir, path);
    const refuseFile = (detail: string): void => {
      into.refused.push({
        id: '',
        title: '',
        file,
        reason: ERR_LOGINSPECT_RULE_FILE(file, detail).message,
        code: ERR_LOGINSPECT_RULE_FILE.code,
      });
    };
    let values: unknown[] = [];
    try {
      const docs = parseAllDocuments(readFileSync(path, 'utf8'));
      for (const d of Array.isArray(docs) ? docs : [docs]) {
        if (d.errors.length) {
          refuseFile(`YAML error: ${d.errors[0]!.message.split('\n')[0]!}`);
          continue;
        }
        // an alias expanded more than this many times is a resource exhaustion attack ("billion laughs"): the file goes, its neighbours load
        values.push(d.toJS({ maxAliasCount: MAX_ALIAS_COUNT }));
      }
    } catch (err) {
      const aliases = /alias/i.test((err as Error).message)
        ? ` (at most ${MAX_ALIAS_COUNT} alias expansions; write the values out)`
        : '';
      refuseFile(`${(err as Error).message.split('\n')[0]!}${aliases}`);
      values = [];
    }
    for (const value of values) {
      const doc = value as Record<string, unknown> | null;
      if (!doc || typeof doc !== 'object') continue;
      const id = typeof doc['id'] === 'string' ? doc['id'] : '';
      const title = typeof doc['title'] === 'string' ? doc['title'] : '';
      try {
        if (doc['action'] !== undefined)
          throw new RuleRefusal(`multi-document rule collections (action: ${String(doc['action'])}) are not supported`);
        if (doc['correlation'] !== undefined) throw new RuleRefusal('Sigma correlation documents are not supported');
        if (seen.has(id)) throw new RuleRefusal(`duplicate rule id ${id}`);
        into.rules.push(compileRule(doc, file, origin, (into.literals ??= new LiteralScanner()), target));
        seen.add(id);
      } catch (err) {
        if (!(err instanceof RuleRefusal)) throw err;
        into.refused.push({ id, title, file, reason: err.message });
      }
    }
  }
  return into;
}

/** The rules folder shipped with this package (src/ and dist/src/ both find it). */
export function builtinRulesDir(): string {
  const here = import.meta.dirname;
  for (const up of [
    ['..', 'rules'],
    ['..', '..', 'rules'],
  ]) {
    const p = join(here, ...up);
    try {
      if (statSync(p).isDirectory()) return p;
    } catch {
      // try the next layout
    }
  }
  return join(here, '..', '..', 'rules');
}
