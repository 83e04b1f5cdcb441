import { createHash } from 'node:crypto';
import { codecFor, TOPICS, type DropGroup, type Recommendation, type RuleGroup } from '@cordon/schemas';
import type { CandidateSet } from './candidates.js';
import { decisionKey, type VmFacts } from './evidence.js';
import { fit, type Fit, type FitOptions } from './fit.js';
import { ERR_RECOMMEND_TOO_LARGE } from './errors.js';

/**
 * The pure recommendation: a VM's facts, the candidate rules, what is enabled for the VM now
 * and what the administrator pinned → the rules to run (each `add` or `keep`) and the rules
 * to drop, each group with its reason. Deterministic: everything is sorted, reasons hold no
 * counters or times, and the digest covers exactly what the recommendation says, so the same
 * evidence gives the same digest and a new version only when something changed.
 */

export interface RecommendInput {
  facts: VmFacts;
  candidates: CandidateSet;
  /**
   * What is enabled for the VM now: null when no selection was applied (every rule of the
   * policy runs); else the rules of `ruleSets` whose sid is in `sids`, and every rule of
   * other files.
   */
  enabled: { ruleSets: ReadonlySet<string>; sids: ReadonlySet<number> } | null;
  pinned: ReadonlySet<number>;
  policy: { id: string; version: number | null };
  options: FitOptions;
  nowUs: number;
  maxRecordBytes: number;
  /** `fit` of each candidate, in order, when the caller computed them already (in slices, between other work). */
  fits?: readonly Fit[];
}

export interface RecommendOutput {
  /** Version 0: the caller numbers it. */
  record: Recommendation;
  digest: string;
  /** Sids to run for the VM among the candidate files (fitting and pinned), ascending. */
  selected: number[];
  counts: { add: number; keep: number; drop: number };
}

const codec = codecFor(TOPICS.recommendations);

export function recommend(input: RecommendInput): RecommendOutput {
  const { facts, candidates, enabled, pinned } = input;
  const groups = new Map<string, RuleGroup>();
  const drops = new Map<string, DropGroup>();
  const selected: number[] = [];
  const counts = { add: 0, keep: 0, drop: 0 };
  if (input.fits && input.fits.length !== candidates.candidates.length)
    throw new RangeError('fits must be one per candidate');
  for (const [i, c] of candidates.candidates.entries()) {
    const r = c.rule;
    const f = input.fits?.[i] ?? fit(c, facts, input.options);
    const isPinned = pinned.has(r.sid);
    const isEnabled = enabled === null || !enabled.ruleSets.has(r.ruleSet) || enabled.sids.has(r.sid);
    if (f.fits || isPinned) {
      const reason = f.fits
        ? isPinned
          ? `${f.reason}; pinned in the policy`
          : f.reason
        : `pinned in the policy (kept whatever the fit); on its own: ${f.reason}`;
      const k = `${r.ruleSet}\u0000${c.target}\u0000${reason}`;
      let g = groups.get(k);
      if (!g) groups.set(k, (g = { reason, rule_set: r.ruleSet, target: c.target, rules: [] }));
      g.rules.push({ sid: r.sid, rev: r.rev, msg: r.msg, change: isEnabled ? 'keep' : 'add' });
      selected.push(r.sid);
      counts[isEnabled ? 'keep' : 'add']++;
    } else if (isEnabled) {
      const k = `${r.ruleSet}\u0000${c.target}\u0000${f.reason}`;
      let g = drops.get(k);
      if (!g) drops.set(k, (g = { reason: f.reason, rule_set: r.ruleSet, target: c.target, sids: [] }));
      g.sids.push(r.sid);
      counts.drop++;
    }
  }
  const order = (a: { rule_set: string; target: string; reason: string }, b: typeof a) =>
    a.rule_set.localeCompare(b.rule_set) || a.target.localeCompare(b.target) || a.reason.localeCompare(b.reason);
  const rules = [...groups.values()].sort(order);
  const drop = [...drops.values()].sort(order);
  const pinnedList = [...pinned].sort((a, b) => a - b);
  const digest = createHash('sha256')
    .update(
      JSON.stringify({
        vm: facts.vm,
        policy: input.policy.id,
        ruleSets: candidates.ruleSets,
        facts: decisionKey(facts),
        rules: rules.map((g) => [g.reason, g.rule_set, g.target, g.rules.map((x) => [x.sid, x.rev, x.change])]),
        drop: drop.map((g) => [g.reason, g.rule_set, g.target, g.sids]),
        pinned: pinnedList,
      }),
    )
    .digest('hex');
  const record: Recommendation = {
    vm: facts.vm,
    vm_name: facts.name,
    version: 0,
    digest,
    ts_us: input.nowUs,
    policy_id: input.policy.id,
    policy_version: input.policy.version,
    rule_sets: candidates.ruleSets,
    candidates: candidates.candidates.length,
    unparsed: candidates.unparsed,
    evidence: {
      guest_os: facts.guestOs,
      os_family: facts.os.family,
      os_role: facts.os.role,
      addresses: facts.addresses,
      agent: facts.agent,
      netconf_ts_us: facts.netconfTs,
      services: facts.services.map((s) => ({
        proto: s.proto,
        port: s.port,
        app: s.app,
        software: s.software,
        products: s.products,
        process: s.process,
        listen: s.listen,
        from_netconf: s.fromNetconf,
        flows: s.flows,
        first_seen_us: s.first,
        last_seen_us: s.last,
        summary: s.summary,
      })),
      outbound: facts.outbound.map((o) => ({
        proto: o.proto,
        port: o.port,
        app: o.app,
        flows: o.flows,
        first_seen_us: o.first,
        last_seen_us: o.last,
      })),
      ignored: facts.ignored,
    },
    rules,
    drop,
    pinned: pinnedList,
    msgs_omitted: false,
  };
  fitRecord(record, input.maxRecordBytes);
  return { record, digest, selected: selected.sort((a, b) => a - b), counts };
}

/**
 * Keep the record under the bus's limit: leave out the msg of kept rules first (they run
 * already, and the rule files have them), then of all. Throws when even that is too large.
 */
export function fitRecord(record: Recommendation, limit: number): void {
  let size = codec.encode(record).length;
  if (size <= limit) return;
  record.msgs_omitted = true;
  for (const g of record.rules) for (const r of g.rules) if (r.change === 'keep') r.msg = null;
  size = codec.encode(record).length;
  if (size <= limit) return;
  for (const g of record.rules) for (const r of g.rules) r.msg = null;
  size = codec.encode(record).length;
  if (size > limit) throw ERR_RECOMMEND_TOO_LARGE(record.vm, size, limit);
}
