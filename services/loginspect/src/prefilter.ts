import type { LogEvent } from './decode.js';
import { MAX_REQUIREMENTS } from './detect-condition.js';
import type { CompiledRule } from './detect-rules.js';
import { LiteralScanner } from './detect-literals.js';

/**
 * Multi-literal prefilter. Most rules can only match when certain literals occur in certain
 * fields (their `requirement`: lists of which one literal each must occur); a web line meets
 * ~100 Sigma rules, each a list of `contains`. Rather than asking each rule, the rule set's
 * LiteralScanner scans each field once per line for every literal, and the literals it found
 * name the rules worth running: a rule one of whose lists found nothing is never looked at.
 * The same scan then answers the rules' own `contains` tests.
 */
/** A rule's lists of literals are numbered in this many bits (MAX_REQUIREMENTS is 1 << LIST_BITS). */
const LIST_BITS = Math.log2(MAX_REQUIREMENTS);

export class LiteralPrefilter {
  /** The positions (in the list given) of the rules with no usable requirement: they always run. */
  private readonly always: Int32Array;
  /** Literal id → the (rule position << LIST_BITS | list index) it satisfies. */
  private readonly satisfies: (Int32Array | null)[] = [];
  /** Per rule: the bit mask of its lists, all of which must be satisfied. */
  private readonly full: Int32Array;
  /** Per rule: the lists satisfied so far in `round` (when `maskRound` is it). */
  private readonly mask: Int32Array;
  private readonly maskRound: Int32Array;
  private round = 0;
  /** Every field some requirement names: scanned before the rules are picked. */
  private readonly fields: Int32Array;
  /** The rules picked by the literals found, in the order found. */
  private readonly found: Int32Array;
  /** After `select`: the positions of the rules to run, ascending, `order[0 .. count)`. */
  readonly order: Int32Array;
  count = 0;

  constructor(
    rules: CompiledRule[],
    private readonly scanner: LiteralScanner = new LiteralScanner(),
  ) {
    this.full = new Int32Array(rules.length);
    this.mask = new Int32Array(rules.length);
    this.maskRound = new Int32Array(rules.length);
    this.found = new Int32Array(rules.length);
    this.order = new Int32Array(rules.length);
    const always: number[] = [];
    const byLit = new Map<number, number[]>();
    const fields = new Set<number>();
    rules.forEach((r, i) => {
      // a list holding a literal the scanner cannot index (short, non-ASCII) is not checked
      const lists = (r.requirement ?? []).filter((list) => list.every((q) => LiteralScanner.accepts(q.lit)));
      if (lists.length === 0) {
        always.push(i);
        return;
      }
      this.full[i] = (1 << lists.length) - 1;
      lists.forEach((list, k) => {
        for (const q of list) {
          const id = scanner.register(q.field, q.lit);
          fields.add(scanner.fieldId(q.field));
          const entries = byLit.get(id) ?? [];
          entries.push((i << LIST_BITS) | k);
          byLit.set(id, entries);
        }
      });
    });
    for (const [id, entries] of byLit) {
      while (this.satisfies.length <= id) this.satisfies.push(null);
      this.satisfies[id] = Int32Array.from(entries);
    }
    this.fields = Int32Array.from(fields);
    this.always = Int32Array.from(always);
  }

  /** Scan `ev` and pick the rules its literals allow, with the rules that always run: `order[0 .. count)`. */
  select(ev: LogEvent): void {
    const sc = this.scanner;
    sc.scanFields(ev, this.fields);
    const round = ++this.round;
    const { satisfies, full, mask, maskRound, found } = this;
    let n = 0;
    for (let k = 0; k < sc.hitCount; k++) {
      const entries = satisfies[sc.hits[k]!];
      if (entries === undefined || entries === null) continue;
      for (let j = 0; j < entries.length; j++) {
        const r = entries[j]! >> LIST_BITS;
        if (maskRound[r] !== round) {
          maskRound[r] = round;
          mask[r] = 0;
        }
        if (mask[r] === full[r]) continue;
        mask[r]! |= 1 << (entries[j]! & (MAX_REQUIREMENTS - 1));
        if (mask[r] === full[r]) found[n++] = r;
      }
    }
    // rules run in their list order, as without the prefilter: detections and threshold counts
    // come out in the same order
    if (n > 1) found.subarray(0, n).sort();
    const always = this.always;
    const order = this.order;
    let a = 0;
    let f = 0;
    let out = 0;
    while (a < always.length && f < n) order[out++] = always[a]! < found[f]! ? always[a++]! : found[f++]!;
    while (a < always.length) order[out++] = always[a++]!;
    while (f < n) order[out++] = found[f++]!;
    this.count = out;
  }
}
