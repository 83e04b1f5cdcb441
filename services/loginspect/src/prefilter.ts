import type { LogEvent } from './decode.js';
import type { CompiledRule } from './detect-rules.js';
import { LiteralScanner } from './detect-literals.js';

/**
 * Multi-literal prefilter. Most rules can only match when some literal occurs in some field
 * (their `requirement`); a web line meets ~100 Sigma rules, each a list of `contains`. Rather
 * than asking each rule, the rule set's LiteralScanner scans each field once per line for
 * every literal, and a rule runs only when one of its literals was found. The same scan then
 * answers the rules' own `contains` tests.
 */
export class LiteralPrefilter {
  /** Per rule (by position in the list given): literal ids, or null = always run. */
  readonly ruleLits: (Int32Array | null)[];
  /** Per rule: field slots its literals live in. */
  private readonly ruleFields: (Int32Array | null)[];

  constructor(
    rules: CompiledRule[],
    private readonly scanner: LiteralScanner = new LiteralScanner(),
  ) {
    this.ruleLits = [];
    this.ruleFields = [];
    for (const r of rules) {
      // a literal the scanner cannot index (short, non-ASCII) makes the requirement unusable
      if (!r.requirement || !r.requirement.every((q) => LiteralScanner.accepts(q.lit))) {
        this.ruleLits.push(null);
        this.ruleFields.push(null);
        continue;
      }
      this.ruleLits.push(Int32Array.from(new Set(r.requirement.map((q) => scanner.register(q.field, q.lit)))));
      this.ruleFields.push(Int32Array.from(new Set(r.requirement.map((q) => scanner.fieldId(q.field)))));
    }
  }

  /** May rule `i` match this event? */
  possible(i: number, ev: LogEvent): boolean {
    const ids = this.ruleLits[i];
    return !ids || this.scanner.any(ev, this.ruleFields[i]!, ids);
  }
}
