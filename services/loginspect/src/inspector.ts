import { cidrContains, normalizeAddress, parseCidr, type Cidr } from './addr.js';
import type { BlockPolicy, InspectorConfig } from './config.js';
import { decodeLine, KIND, type LogEvent } from './decode.js';
import { builtinRulesDir, fieldText, loadRuleDir, type CompiledRule, type RuleSet } from './detect-rules.js';
import { LiteralScanner } from './detect-literals.js';
import { LiteralPrefilter } from './prefilter.js';
import { ACCESS_ROW } from '@cordon/native';
import { AccessBatch } from './access-batch.js';
import { LineWriter, type LineBytes } from './lines.js';
import { gunzipSync, gzipSync } from 'node:zlib';
import { ThresholdTable, type CounterSnapshot, type Crossing } from './threshold.js';
import { ERR_LOGINSPECT_STATE } from './errors.js';
import { loadFail2ban, type Fail2banLoad } from './fail2ban.js';

/**
 * The pure stage: raw line → decoded event → rule matches (with the attacker's address) →
 * threshold crossings → block requests. All state (sshd sessions, threshold counters, repeat
 * offenders) lives in an InspectState the caller owns — one per input partition — and moves
 * only with log time, so the same lines give the same output on every replay.
 */

export interface Detection {
  rule: CompiledRule;
  event: LogEvent;
  srcIp: string | null;
  /** Set when this detection is a threshold crossing (the Nth event of its key in the window). */
  crossing: Crossing | null;
}

export interface BlockRequest {
  ip: string;
  rule: CompiledRule;
  /** Log time of the line that crossed the threshold. */
  tsMs: number;
  ttlMs: number;
  /** How many times this address has been blocked (1 = first). */
  offense: number;
  crossing: Crossing;
}

export interface InspectResult {
  event: LogEvent;
  detections: Detection[];
  blocks: BlockRequest[];
  /** The never-flag entry that declared this line benign (its matches were dropped), else null. */
  suppressedBy: CompiledRule | null;
}

/** Why a rule matched a line: what `cordon logtest --explain` prints. */
export interface Explanation {
  rule: CompiledRule;
  /** The rule's named searches that matched the line. */
  selections: string[];
  srcIp: string | null;
  /** Where the address came from: the rule's `<HOST>` in a field, the format's client field, the connection's peer. */
  addressFrom: string | null;
}

export interface LineMeta {
  /** Reference time for year-less stamps and for lines without one (ms). */
  refMs: number;
  hint?: string | null;
}

export interface InspectState {
  sessions: Map<string, string>;
  /**
   * Per connection (host|program|pid): a counted failure was seen (`true`), or a failure whose
   * line did not name the client waits for a later line of the connection that does (its rules).
   */
  connections: Map<string, true | CompiledRule[]>;
  /** Per connection: the user names its failures named (for `user_switch` rules). */
  connUsers: Map<string, string[]>;
  thresholds: ThresholdTable;
  offenders: Map<string, { count: number; lastMs: number }>;
  /** Log time of the newest stamped line: lines without a stamp count at this time. */
  clockMs: number;
  counters: { lines: number; detections: number; blocks: number; thresholdEvictions: number };
}

interface StateDoc {
  v: 1;
  clockMs: number;
  sessions: Array<[string, string]>;
  /** Connections that already had a counted failure (absent in older checkpoints). */
  failed?: string[];
  /** The user names each connection failed for (absent in older checkpoints). */
  users?: Array<[string, string[]]>;
  offenders: Array<[string, number, number]>;
  thresholds: CounterSnapshot[];
}

/** Where sshd names its peer; remembered per pid so later lines of the connection can be attributed. */
const SSH_PEER =
  /(?:^|\s|;)(?:from|by|Connection from|Remote:)\s*(?:(?:authenticating |invalid )?user \S* ?)?((?:::ffff:)?\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4}:[0-9A-Fa-f:.]*[0-9A-Fa-f])(?: port \d+|$|\s*\[preauth\]|:|-\d+;)/;

export class LogInspector {
  readonly rules: RuleSet;
  private readonly byKinds = new Map<number, { rules: CompiledRule[]; pre: LiteralPrefilter }>();
  private readonly ignore: Cidr[];
  private readonly policy: BlockPolicy;
  /** The rules the line being inspected matched: `match` fills `[0 .. n)`. */
  private readonly matched: CompiledRule[] = [];
  /** The batch given to `prepare`, its access lines decoded natively. */
  private readonly access = new AccessBatch();
  private readonly writer = new LineWriter();

  constructor(
    rules: RuleSet,
    private readonly config: InspectorConfig,
  ) {
    this.rules = rules;
    this.policy = config.blocks;
    this.ignore = config.blocks.ignore.map((c) => parseCidr(c)).filter((c): c is Cidr => c !== null);
  }

  /** Filters loaded from `fail2ban.dir`, each with what was loaded and why not (null without one). */
  fail2ban: Fail2banLoad | null = null;

  /** Load the rule folders the config names (built-in first, then extra dirs, then Sigma, then fail2ban filters). */
  static fromConfig(config: InspectorConfig): LogInspector {
    const set: RuleSet = { rules: [], refused: [], literals: new LiteralScanner() };
    if (config.builtinRules) loadRuleDir(builtinRulesDir(), 'cordon', set);
    for (const d of config.ruleDirs) loadRuleDir(d, 'cordon', set);
    for (const d of config.sigmaDirs) loadRuleDir(d, 'sigma', set);
    const f2b = config.fail2ban
      ? loadFail2ban({ dir: config.fail2ban.dir, filters: config.fail2ban.filters }, set)
      : null;
    const inspector = new LogInspector(set, config);
    inspector.fail2ban = f2b;
    return inspector;
  }

  newState(): InspectState {
    return {
      sessions: new Map(),
      connections: new Map(),
      connUsers: new Map(),
      thresholds: new ThresholdTable(this.config.maxThresholdKeys),
      offenders: new Map(),
      clockMs: 0,
      counters: { lines: 0, detections: 0, blocks: 0, thresholdEvictions: 0 },
    };
  }

  /**
   * The state as bytes for a checkpoint (gzip'd JSON, versioned): threshold counters, sshd
   * sessions, repeat offenders, the log clock — what a restarted stage needs to count on
   * where it stopped (a brute force in progress keeps its count across a restart).
   */
  saveState(state: InspectState): Buffer {
    const doc: StateDoc = {
      v: 1,
      clockMs: state.clockMs,
      sessions: [...state.sessions],
      failed: [...state.connections].filter(([, v]) => v === true).map(([k]) => k),
      users: [...state.connUsers],
      offenders: [...state.offenders].map(([ip, o]) => [ip, o.count, o.lastMs]),
      thresholds: state.thresholds.snapshot(),
    };
    return gzipSync(JSON.stringify(doc));
  }

  /** A state from `saveState` bytes; throws CORDON_ERR_LOGINSPECT_STATE for bytes it cannot use. */
  loadState(bytes: Buffer): InspectState {
    let doc: StateDoc;
    try {
      doc = JSON.parse(gunzipSync(bytes).toString('utf8')) as StateDoc;
    } catch (err) {
      throw ERR_LOGINSPECT_STATE.withCause(err, (err as Error).message);
    }
    if (
      doc?.v !== 1 ||
      !Array.isArray(doc.sessions) ||
      !Array.isArray(doc.offenders) ||
      !Array.isArray(doc.thresholds) ||
      typeof doc.clockMs !== 'number'
    ) {
      throw ERR_LOGINSPECT_STATE('not a version 1 loginspect state');
    }
    const state = this.newState();
    state.clockMs = doc.clockMs;
    for (const [k, v] of doc.sessions.slice(-this.config.maxSessions)) state.sessions.set(String(k), String(v));
    for (const k of (doc.failed ?? []).slice(-this.config.maxSessions)) state.connections.set(String(k), true);
    for (const [k, u] of (doc.users ?? []).slice(-this.config.maxSessions))
      if (Array.isArray(u)) state.connUsers.set(String(k), u.map(String));
    for (const [ip, count, lastMs] of doc.offenders.slice(-this.config.maxThresholdKeys))
      state.offenders.set(String(ip), { count: Number(count), lastMs: Number(lastMs) });
    state.thresholds = ThresholdTable.restore(this.config.maxThresholdKeys, doc.thresholds);
    return state;
  }

  private rulesFor(kinds: number): { rules: CompiledRule[]; pre: LiteralPrefilter } {
    let entry = this.byKinds.get(kinds);
    if (!entry) {
      const rules = this.rules.rules.filter((r) => (r.kinds & kinds) !== 0);
      entry = { rules, pre: new LiteralPrefilter(rules, (this.rules.literals ??= new LiteralScanner())) };
      this.byKinds.set(kinds, entry);
    }
    return entry;
  }

  /**
   * Read a batch of lines ahead, natively when the DPI engine is built: where each web access
   * line's fields lie (`AccessBatch`), and the rules' literals, in one Hyperscan call (a
   * JavaScript scan visits every character of a line; that search is a few times faster).
   * `inspect(state, lines[k], meta, k)` then uses both; the results are the same. `bytes`: where
   * the lines lie in the bytes they were read from (`forEachLines`), read as they are.
   */
  prepare(lines: readonly string[], bytes?: LineBytes): void {
    // lines that came as strings (the service's records): written out once for both native
    // passes; a line longer than maxLineBytes is cut before decoding, so neither could use it
    const b = bytes ?? this.writer.write(lines, this.config.maxLineBytes);
    this.access.prepare(lines, b, this.config.maxLineBytes);
    this.rules.literals?.prescan(lines, b);
  }

  /** `batchLine`: the line's place in the batch given to `prepare` (-1: not of that batch). */
  inspect(state: InspectState, raw: string, meta: LineMeta, batchLine = -1): InspectResult {
    this.rules.literals?.useLine(batchLine);
    const line = raw.length > this.config.maxLineBytes ? raw.slice(0, this.config.maxLineBytes) : raw;
    const rows = this.access.rowsFor(batchLine, line);
    const ev = decodeLine(line, meta, rows, rows === null ? 0 : batchLine * ACCESS_ROW);
    state.counters.lines++;
    if (ev.ts !== null && ev.ts > state.clockMs) state.clockMs = ev.ts;
    if (state.clockMs === 0) state.clockMs = meta.refMs;
    const now = ev.ts ?? state.clockMs;
    // sshd connections: one process per client, whose lines do not all name the client
    const conn = ev.pid && ev.kinds & KIND.sshd ? `${ev.host ?? ''}|${ev.program ?? ''}|${ev.pid}` : null;
    let pending: CompiledRule[] | null = null;
    if (ev.kinds & KIND.sshd && ev.pid && this.rememberPeer(state, ev) && conn) {
      const waiting = state.connections.get(conn);
      if (Array.isArray(waiting)) pending = waiting;
    }
    const n = this.match(ev);
    if (n === 0 && pending === null) return { event: ev, detections: EMPTY_D, blocks: EMPTY_B, suppressedBy: null };
    const matched = this.matched;
    for (let k = 0; k < n; k++)
      if (matched[k]!.neverFlag) return { event: ev, detections: EMPTY_D, blocks: EMPTY_B, suppressedBy: matched[k]! };
    let detections: Detection[] | null = null;
    let blocks: BlockRequest[] | null = null;
    // failures of this connection that named no client: this line names it
    let all = matched;
    let count = n;
    if (pending) {
      const fresh = matched.slice(0, n);
      all = [...pending.filter((r) => !fresh.includes(r)), ...fresh];
      count = all.length;
    }
    if (pending && conn) state.connections.delete(conn);
    const user = conn ? connectionUser(ev) : null;
    for (let i = 0; i < count; i++) {
      const rule = all[i]!;
      if (rule.oncePerConnection && conn && state.connections.get(conn) === true) continue;
      if (rule.userSwitch) {
        const seen = conn ? state.connUsers.get(conn) : undefined;
        const switched = seen !== undefined && user !== null && seen.some((u) => u !== user);
        if (conn && user !== null) this.recordUser(state, conn, user);
        if (!switched) continue;
      }
      const srcIp = this.address(state, rule, ev);
      if (rule.requireAddress && srcIp === null) {
        // a failure line that does not name the client (kex errors, `Too many authentication
        // failures`): counted when a later line of its connection does
        if (conn && rule.threshold) this.await(state, conn, rule);
        continue;
      }
      let crossing: Crossing | null = null;
      if (rule.threshold) {
        const spec = rule.threshold;
        const key = spec.by === 'src_ip' ? srcIp : spec.by === '*' ? '*' : (ev.fields[spec.by] ?? null);
        if (key === null) {
          if (rule.report === 'threshold') continue;
        } else {
          const distinct = spec.distinct ? (fieldText(ev, spec.distinct, true) ?? '') : null;
          crossing = state.thresholds.add(spec, key, now, distinct);
          state.counters.thresholdEvictions = state.thresholds.evictions;
          if (conn && spec.by === 'src_ip') {
            this.markFailed(state, conn);
            if (user !== null) this.recordUser(state, conn, user);
          }
        }
      }
      if (rule.report === 'threshold' && crossing === null) continue;
      // a literal [d] is one element long; `[]` then push reserves seventeen
      const d: Detection = { rule, event: ev, srcIp, crossing };
      if (detections === null) detections = [d];
      else detections.push(d);
      state.counters.detections++;
      if (crossing && rule.block && srcIp && !this.ignored(srcIp)) {
        const b = this.block(state, rule, srcIp, now, crossing);
        if (blocks === null) blocks = [b];
        else blocks.push(b);
        state.counters.blocks++;
      }
    }
    return { event: ev, detections: detections ?? EMPTY_D, blocks: blocks ?? EMPTY_B, suppressedBy: null };
  }

  /**
   * The rules whose detection matches the event, in rule order (never-flag entries included):
   * `matched[0 .. n)`, n returned. One array for every line: a line's matches are read before
   * the next line's are looked for.
   */
  private match(ev: LogEvent): number {
    const { rules, pre } = this.rulesFor(ev.kinds);
    pre.select(ev);
    const matched = this.matched;
    let n = 0;
    for (let k = 0; k < pre.count; k++) {
      const rule = rules[pre.order[k]!]!;
      if (rule.match(ev)) matched[n++] = rule;
    }
    return n;
  }

  /**
   * Why each rule that matches `raw` does: its searches that matched, the address and where it
   * came from. Reads the state (the connection's peer) without changing it.
   */
  explain(state: InspectState, raw: string, meta: LineMeta): { event: LogEvent; explanations: Explanation[] } {
    this.rules.literals?.useLine(-1);
    const ev = decodeLine(raw.length > this.config.maxLineBytes ? raw.slice(0, this.config.maxLineBytes) : raw, meta);
    const explanations = this.matched.slice(0, this.match(ev)).map((rule) => {
      const from: string[] = [];
      const srcIp = this.address(state, rule, ev, from);
      const selections = rule.searches.filter(([, p]) => p(ev)).map(([n]) => n);
      return { rule, selections, srcIp, addressFrom: from[0] ?? null };
    });
    return { event: ev, explanations };
  }

  private markFailed(state: InspectState, conn: string): void {
    state.connections.delete(conn);
    state.connections.set(conn, true);
    if (state.connections.size > this.config.maxSessions)
      state.connections.delete(state.connections.keys().next().value!);
  }

  private recordUser(state: InspectState, conn: string, user: string): void {
    const seen = state.connUsers.get(conn);
    if (seen) {
      if (!seen.includes(user) && seen.length < 16) seen.push(user);
      return;
    }
    state.connUsers.set(conn, [user]);
    if (state.connUsers.size > this.config.maxSessions) state.connUsers.delete(state.connUsers.keys().next().value!);
  }

  private await(state: InspectState, conn: string, rule: CompiledRule): void {
    const cur = state.connections.get(conn);
    if (cur === true) return;
    if (cur) {
      if (!cur.includes(rule)) cur.push(rule);
      return;
    }
    state.connections.set(conn, [rule]);
    if (state.connections.size > this.config.maxSessions)
      state.connections.delete(state.connections.keys().next().value!);
  }

  private ignored(ip: string): boolean {
    for (const c of this.ignore) if (cidrContains(c, ip)) return true;
    return false;
  }

  private block(state: InspectState, rule: CompiledRule, ip: string, now: number, crossing: Crossing): BlockRequest {
    const p = this.policy;
    const prev = state.offenders.get(ip);
    const count = prev && now - prev.lastMs <= p.offenderMemoryS * 1000 ? prev.count + 1 : 1;
    state.offenders.delete(ip); // re-insert: Map order is recency order for eviction
    state.offenders.set(ip, { count, lastMs: now });
    if (state.offenders.size > this.config.maxThresholdKeys)
      state.offenders.delete(state.offenders.keys().next().value!);
    const base = rule.blockTtlMs ? rule.blockTtlMs / 1000 : p.baseTtlS;
    const ttlS = Math.min(p.maxTtlS, base * Math.pow(p.repeatFactor, count - 1));
    return { ip, rule, tsMs: now, ttlMs: Math.round(ttlS * 1000), offense: count, crossing };
  }

  /** Remembers the peer the line names for its connection; true when the line named one. */
  private rememberPeer(state: InspectState, ev: LogEvent): boolean {
    const m = SSH_PEER.exec(ev.message);
    if (!m) return false;
    const key = `${ev.host ?? ''}|${ev.program ?? ''}|${ev.pid}`;
    state.sessions.delete(key);
    state.sessions.set(key, normalizeAddress(m[1]!));
    if (state.sessions.size > this.config.maxSessions) state.sessions.delete(state.sessions.keys().next().value!);
    return true;
  }

  /** The attacker: the rule's `<HOST>` capture, else the address the format names, else the sshd session's peer. */
  private address(state: InspectState, rule: CompiledRule, ev: LogEvent, from?: string[]): string | null {
    if (rule.addressOf) {
      const a = rule.addressOf(ev);
      if (a) {
        from?.push(`the ${rule.title}'s <HOST>`);
        return a;
      }
    }
    for (const x of rule.extractors) {
      const v = ev.fields[x.field];
      if (v === undefined) continue;
      const groups = x.re.exec(v)?.groups;
      if (!groups) continue;
      for (const k in groups) {
        const ip = groups[k];
        if (ip && k.startsWith('ip')) {
          from?.push(`the rule's <HOST> in field ${x.field}`);
          const a = normalizeAddress(ip);
          // Apache 2.4 writes an IPv6 client with its port (`2001:db8::1:40222`): the decoder knows where it ends
          return ev.addr && a !== ev.addr && a.startsWith(`${ev.addr}:`) ? ev.addr : a;
        }
      }
    }
    if (ev.addr) {
      from?.push(`the ${ev.decoder ?? 'decoder'} decoder's client address`);
      return ev.addr;
    }
    if (ev.pid && ev.kinds & KIND.sshd) {
      const peer = state.sessions.get(`${ev.host ?? ''}|${ev.program ?? ''}|${ev.pid}`) ?? null;
      if (peer) from?.push(`the peer named by an earlier line of connection ${ev.program ?? ''}[${ev.pid}]`);
      return peer;
    }
    return null;
  }
}

const SSH_USER = /^(?:Accepted|Failed) \S+ for (?:invalid user )?(\S+) from /;

/** The user name an sshd line names: PAM's user= or ruser=, or sshd's `for USER from`. */
function connectionUser(ev: LogEvent): string | null {
  const pam = ev.fields['pam_user'] || ev.fields['pam_ruser'];
  if (pam) return pam;
  const m = SSH_USER.exec(ev.message);
  return m ? m[1]! : null;
}

const EMPTY_D: Detection[] = [];
const EMPTY_B: BlockRequest[] = [];
