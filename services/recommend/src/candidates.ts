import { createHash } from 'node:crypto';
import { assembleRuleset, type PolicyDocument, type PolicyView } from '@cordon/policy';
import { prepareRule, type Candidate } from './fit.js';
import { parseRuleFile, type ParsedRuleFile, type RuleSkip, type SkipReason } from './rule-parse.js';
import type { RuleVars } from './rule-vars.js';

/**
 * The rules a recommendation chooses from: the rule files the policy publishes on the policy
 * topic (its `ruleFiles` and installed `ruleSets`, as the DPI engine loads them), narrowed to
 * `recommend.ruleSets`. Each file is parsed once per content (sha256).
 */

export interface CandidateSet {
  /** Changes when the files, their content or the variables change. */
  key: string;
  /** The rule files judged, sorted. */
  ruleSets: string[];
  /** Sorted by rule file, then sid; `pass` rules are exceptions an administrator wrote and are not judged. */
  candidates: Candidate[];
  unparsed: number;
  skipped: Partial<Record<SkipReason, number>>;
  /** The first few skips, for the log (`cordon rules check` lists every one). */
  samples: RuleSkip[];
  disabled: number;
}

/** `et-open` selects `et-open/…`; `demo.rules` selects itself. */
export function selectsFile(filters: readonly string[], file: string): boolean {
  return filters.length === 0 || filters.some((f) => file === f || file.startsWith(`${f}/`));
}

export class CandidateCache {
  private readonly parsed = new Map<string, ParsedRuleFile & { prepared: Candidate[] }>();

  constructor(
    private readonly vars: RuleVars,
    private readonly varsKey: string,
  ) {}

  /**
   * The candidates for a policy document; null while one of its files is not complete on the
   * topic yet (its parts arrive one record at a time).
   */
  async build(
    doc: Pick<PolicyDocument, 'rulesets'>,
    view: Pick<PolicyView, 'rulesetParts'>,
    filters: readonly string[],
  ): Promise<CandidateSet | null> {
    const files = doc.rulesets.filter((r) => selectsFile(filters, r.name)).sort((a, b) => a.name.localeCompare(b.name));
    const key = createHash('sha256')
      .update(JSON.stringify([files.map((f) => [f.name, f.sha256]), this.varsKey]))
      .digest('hex');
    const candidates: Candidate[] = [];
    const skipped: Partial<Record<SkipReason, number>> = {};
    const samples: RuleSkip[] = [];
    let unparsed = 0;
    let disabled = 0;
    const seen = new Set<number>();
    const live = new Set<string>();
    for (const f of files) {
      const cacheKey = `${f.name}\u0000${f.sha256}`;
      live.add(cacheKey);
      let parsed = this.parsed.get(cacheKey);
      if (!parsed) {
        let text: string;
        try {
          text = assembleRuleset(view.rulesetParts(f.name));
        } catch {
          return null;
        }
        const p = parseRuleFile(text, f.name, this.vars);
        parsed = { ...p, prepared: [...p.rules].sort((a, b) => a.sid - b.sid).map(prepareRule) };
        this.parsed.set(cacheKey, parsed);
        // a large file parses in a few hundred ms: let the other stages of the process in between files
        await new Promise((r) => setImmediate(r));
      }
      disabled += parsed.disabled;
      for (const s of parsed.skipped) {
        skipped[s.reason] = (skipped[s.reason] ?? 0) + 1;
        unparsed++;
        if (samples.length < 10) samples.push(s);
      }
      for (const c of parsed.prepared) {
        const r = c.rule;
        if (seen.has(r.sid)) {
          skipped['duplicate-sid'] = (skipped['duplicate-sid'] ?? 0) + 1;
          unparsed++;
          if (samples.length < 10)
            samples.push({
              ruleSet: r.ruleSet,
              line: r.line,
              sid: r.sid,
              reason: 'duplicate-sid',
              detail: `sid ${r.sid} is already a rule of an earlier file; the first is judged`,
            });
          continue;
        }
        seen.add(r.sid);
        if (r.action === 'pass') continue;
        candidates.push(c);
      }
    }
    // files no longer named are forgotten
    for (const k of this.parsed.keys()) if (!live.has(k)) this.parsed.delete(k);
    return { key, ruleSets: files.map((f) => f.name), candidates, unparsed, skipped, samples, disabled };
  }
}
