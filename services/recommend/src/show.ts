import { readTable, type Bus } from '@cordon/bus';
import { codecFor, TOPICS, type Recommendation, type RecommendationEvidence } from '@cordon/schemas';
import { selectsFile } from './candidates.js';
import { ERR_RECOMMEND_NOT_FOUND } from './errors.js';

/**
 * `cordon recommend --vm ID`: the newest recommendation for a VM on the compacted topic,
 * expanded to one entry per rule, each with its reason.
 */

export interface RuleView {
  sid: number;
  rev: number;
  msg: string | null;
  change: 'add' | 'keep';
  rule_set: string;
  target: string;
  reason: string;
}

export interface DropView {
  sid: number;
  rule_set: string;
  target: string;
  reason: string;
}

export interface RecommendationView {
  vm: string;
  vm_name: string;
  version: number;
  computed: string;
  digest: string;
  policy_id: string;
  policy_version: number | null;
  /** Every rule file judged (the filter below narrows the rules shown, not these). */
  rule_sets: string[];
  /** --rule-set: the rules shown are this file's or set's only. */
  shown: string | null;
  candidates: number;
  unparsed: number;
  evidence: RecommendationEvidence;
  rules: RuleView[];
  drop: DropView[];
  pinned: number[];
  msgs_omitted: boolean;
  /** Rules by change, and recommended rules by target (http, dns, tcp 445…). */
  counts: { add: number; keep: number; drop: number; byTarget: Record<string, number> };
}

/** A VM by id, else by name. Throws CORDON_ERR_RECOMMEND_NOT_FOUND naming the VMs that have one. */
export async function readRecommendation(bus: Bus, vm: string): Promise<Recommendation> {
  const codec = codecFor(TOPICS.recommendations);
  const all: Recommendation[] = [];
  for (const r of (await readTable(bus, TOPICS.recommendations)).values()) if (r.value) all.push(codec.decode(r.value));
  const found = all.find((r) => r.vm === vm) ?? all.find((r) => r.vm_name === vm);
  if (found) return found;
  const known = all.map((r) => (r.vm === r.vm_name ? r.vm : `${r.vm_name} (${r.vm})`)).sort();
  throw ERR_RECOMMEND_NOT_FOUND(vm, known.length ? `VMs with one: ${known.join(', ')}` : 'the topic has none');
}

/** One entry per rule; `ruleSet` keeps the rules of those files only (a file or a set's prefix). */
export function viewOf(rec: Recommendation, ruleSet?: string): RecommendationView {
  const keep = (rs: string) => ruleSet === undefined || selectsFile([ruleSet], rs);
  const rules: RuleView[] = rec.rules
    .filter((g) => keep(g.rule_set))
    .flatMap((g) =>
      g.rules.map((r) => ({
        sid: r.sid,
        rev: r.rev,
        msg: r.msg,
        change: r.change,
        rule_set: g.rule_set,
        target: g.target,
        reason: g.reason,
      })),
    )
    .sort((a, b) => a.sid - b.sid);
  const drop: DropView[] = rec.drop
    .filter((g) => keep(g.rule_set))
    .flatMap((g) => g.sids.map((sid) => ({ sid, rule_set: g.rule_set, target: g.target, reason: g.reason })))
    .sort((a, b) => a.sid - b.sid);
  const byTarget: Record<string, number> = {};
  for (const r of rules) byTarget[r.target] = (byTarget[r.target] ?? 0) + 1;
  return {
    vm: rec.vm,
    vm_name: rec.vm_name,
    version: rec.version,
    computed: new Date(Math.floor(rec.ts_us / 1000)).toISOString(),
    digest: rec.digest,
    policy_id: rec.policy_id,
    policy_version: rec.policy_version,
    rule_sets: rec.rule_sets,
    shown: ruleSet ?? null,
    candidates: rec.candidates,
    unparsed: rec.unparsed,
    evidence: rec.evidence,
    rules,
    drop,
    pinned: rec.pinned,
    msgs_omitted: rec.msgs_omitted,
    counts: {
      add: rules.filter((r) => r.change === 'add').length,
      keep: rules.filter((r) => r.change === 'keep').length,
      drop: drop.length,
      byTarget: Object.fromEntries(Object.entries(byTarget).sort()),
    },
  };
}

const MAX_DROP_SIDS = 12;
const nRules = (n: number) => `${n} rule${n === 1 ? '' : 's'}`;

/**
 * For a terminal: the evidence, then the rules to run grouped by reason ("+" to add, "="
 * already enabled), then the rules to drop grouped by reason with their sids (the first few;
 * `--format json` lists every one).
 */
export function formatRecommendation(v: RecommendationView): string[] {
  const e = v.evidence;
  const out: string[] = [];
  out.push(
    `VM ${v.vm_name}${v.vm_name === v.vm ? '' : ` (${v.vm})`} — recommendation ${v.version}, computed ${v.computed}, policy ${v.policy_id}${v.policy_version === null ? '' : ` v${v.policy_version}`}`,
  );
  out.push(
    `guest OS: ${e.guest_os ?? 'unknown'} (${e.os_family}, ${e.os_role}); addresses: ${e.addresses.join(', ') || 'none known'}${e.agent ? `; agent ${e.agent}` : '; no agent snapshot'}`,
  );
  out.push('services:');
  for (const s of e.services) out.push(`  ${s.summary}${s.flows ? ` — ${s.flows} flows` : ''}`);
  if (!e.services.length) out.push('  none');
  if (e.outbound.length)
    out.push(
      `connects out to: ${e.outbound.map((o) => `${o.proto}/${o.port}${o.app[0] ? ` ${o.app[0]}` : ''} (${o.flows} flows)`).join(', ')}`,
    );
  for (const i of e.ignored) out.push(`not counted: ${i}`);
  out.push(
    `judged ${nRules(v.candidates)} of ${v.rule_sets.length} file${v.rule_sets.length === 1 ? '' : 's'}${v.unparsed ? ` (${v.unparsed} did not parse)` : ''}${v.shown ? `; showing the rules of ${v.shown} only` : ''}`,
  );
  out.push('');
  const targets = Object.entries(v.counts.byTarget)
    .map(([t, n]) => `${t} ${n}`)
    .join(', ');
  out.push(
    `RUN ${nRules(v.rules.length)}: ${v.counts.add} to add (+), ${v.counts.keep} already enabled (=)${targets ? ` — ${targets}` : ''}${v.msgs_omitted ? ' (messages of enabled rules left out of the record)' : ''}`,
  );
  const byReason = new Map<string, RuleView[]>();
  for (const r of v.rules) {
    const k = `${r.rule_set}\u0000${r.reason}`;
    byReason.set(k, [...(byReason.get(k) ?? []), r]);
  }
  for (const [k, rs] of [...byReason].sort(([a], [b]) => a.localeCompare(b))) {
    const [ruleSet, reason] = k.split('\u0000') as [string, string];
    out.push(`  because ${reason}  [${ruleSet}]`);
    for (const r of rs) out.push(`    ${r.change === 'add' ? '+' : '='} ${r.sid}  ${r.msg ?? ''}`);
  }
  out.push('');
  out.push(`DROP ${nRules(v.drop.length)} that fit none of its services`);
  const drops = new Map<string, DropView[]>();
  for (const d of v.drop) {
    const k = `${d.rule_set}\u0000${d.reason}`;
    drops.set(k, [...(drops.get(k) ?? []), d]);
  }
  for (const [k, ds] of [...drops].sort(([ka, a], [kb, b]) => b.length - a.length || ka.localeCompare(kb))) {
    const [ruleSet, reason] = k.split('\u0000') as [string, string];
    const sids = ds
      .slice(0, MAX_DROP_SIDS)
      .map((d) => d.sid)
      .join(' ');
    out.push(`  - ${ds.length} [${ruleSet}] because ${reason}: ${sids}${ds.length > MAX_DROP_SIDS ? ' …' : ''}`);
  }
  return out;
}
