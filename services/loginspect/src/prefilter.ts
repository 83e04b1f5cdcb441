import type { LogEvent } from './decode.js';
import type { CompiledRule } from './detect-rules.js';
import { LiteralScanner } from './detect-literals.js';

/**
 * Multi-literal prefilter. Most rules can only match when certain literals occur in certain
 * fields (their `requirement`: lists of which one literal each must occur); a web line meets
 * ~100 Sigma rules, each a list of `contains`. Rather than asking each rule, the rule set's
 * LiteralScanner scans each field once per line for every literal, and the literals it found
 * name the rules worth running: a rule one of whose lists found nothing is never looked at.
 * The same scan then answers the rules' own `contains` tests.
 *
 * A rule is indexed by its first list only (its most selective, `conjunction` orders them): a
 * literal found names the rules whose first list holds it, and only those have their other
 * lists checked. Indexed by every list, a common literal (`get`, `200`) walks every rule that
 * names it beside a rarer one: 21.6 entries a line of the bench's file, against 2.9 so.
 */
export class LiteralPrefilter {
  /** The positions (in the list given) of the rules with no usable requirement: they always run. */
  private readonly always: Int32Array;
  /** Literal id → the positions of the rules whose first list holds it. */
  private readonly satisfies: (Int32Array | null)[] = [];
  /**
   * Per rule: its other lists, `rest[restFrom[r] .. restFrom[r + 1])` as a list's length and
   * then its literal ids, list after list.
   */
  private readonly rest: Int32Array;
  private readonly restFrom: Int32Array;
  /** Per rule: the `round` in which a literal of its first list was found. */
  private readonly seen: Int32Array;
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
    this.seen = new Int32Array(rules.length);
    this.found = new Int32Array(rules.length);
    this.order = new Int32Array(rules.length);
    this.restFrom = new Int32Array(rules.length + 1);
    const always: number[] = [];
    const byLit = new Map<number, number[]>();
    const fields = new Set<number>();
    const rest: number[] = [];
    rules.forEach((r, i) => {
      this.restFrom[i] = rest.length;
      // a list holding a literal the scanner cannot index (short, non-ASCII) is not checked
      const lists = (r.requirement ?? []).filter((list) => list.every((q) => LiteralScanner.accepts(q.lit)));
      if (lists.length === 0) {
        always.push(i);
        return;
      }
      lists.forEach((list, k) => {
        const ids = list.map((q) => {
          fields.add(scanner.fieldId(q.field));
          return scanner.register(q.field, q.lit);
        });
        if (k === 0) {
          for (const id of new Set(ids)) {
            const entries = byLit.get(id) ?? [];
            entries.push(i);
            byLit.set(id, entries);
          }
        } else rest.push(ids.length, ...ids);
      });
    });
    this.restFrom[rules.length] = rest.length;
    this.rest = Int32Array.from(rest);
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
    const { satisfies, seen, found, rest, restFrom } = this;
    let n = 0;
    for (let k = 0; k < sc.hitCount; k++) {
      const entries = satisfies[sc.hits[k]!];
      if (entries === undefined || entries === null) continue;
      for (let j = 0; j < entries.length; j++) {
        const r = entries[j]!;
        if (seen[r] === round) continue;
        seen[r] = round;
        // its other lists: each must have had a literal found
        let ok = true;
        for (let at = restFrom[r]!, end = restFrom[r + 1]!; ok && at < end;) {
          const len = rest[at]!;
          ok = sc.foundAny(rest, at + 1, at + 1 + len);
          at += 1 + len;
        }
        if (ok) found[n++] = r;
      }
    }
    // rules run in their list order, as without the prefilter: detections and threshold counts
    // come out in the same order
    // a few: insertion sort in place (a subarray to sort would be an allocation a line)
    if (n > 16) found.subarray(0, n).sort();
    else
      for (let i = 1; i < n; i++) {
        const r = found[i]!;
        let j = i - 1;
        while (j >= 0 && found[j]! > r) {
          found[j + 1] = found[j]!;
          j--;
        }
        found[j + 1] = r;
      }
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
