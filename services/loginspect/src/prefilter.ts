import type { LogEvent } from './decode.js';
import { fieldText, type CompiledRule } from './detect-rules.js';

/**
 * Multi-literal prefilter. Most rules can only match when some literal occurs in some field
 * (their `requirement`); a web line meets ~100 Sigma rules, each a list of `contains`. Rather
 * than asking each rule, one pass over each field finds every required literal present
 * (literals indexed by their first three characters), and a rule runs only when one of its
 * literals was found. Per event: no allocation besides the field's lower-casing, shared with
 * the rules.
 */
export class LiteralPrefilter {
  private readonly fields: string[] = [];
  /** Per field: trigram code → literal ids starting with it. */
  private readonly index: Map<number, number[]>[] = [];
  /** Per field: bigram bitmap of the literals' first two chars, so most positions skip the Map. */
  private readonly bigrams: Uint8Array[] = [];
  private readonly lits: string[] = [];
  /** Per rule (by position in the list given): literal ids, or null = always run. */
  readonly ruleLits: (Int32Array | null)[];
  /** Per rule: field slots its literals live in. */
  private readonly ruleFields: (Int32Array | null)[];
  private readonly hit: Int32Array;
  private readonly scanned: Int32Array;
  private epoch = 0;

  constructor(rules: CompiledRule[]) {
    const litId = new Map<string, number>();
    this.ruleLits = rules.map((r) => {
      if (!r.requirement) return null;
      const ids = new Set<number>();
      for (const { field, lit } of r.requirement) {
        let f = this.fields.indexOf(field);
        if (f < 0) {
          f = this.fields.push(field) - 1;
          this.index.push(new Map());
          this.bigrams.push(new Uint8Array(65536));
        }
        const k = `${f}\u0000${lit}`;
        let id = litId.get(k);
        if (id === undefined) {
          id = this.lits.push(lit) - 1;
          litId.set(k, id);
          this.bigrams[f]![bi(lit, 0)] = 1;
          const code = tri(lit, 0);
          const list = this.index[f]!.get(code);
          if (list) list.push(id);
          else this.index[f]!.set(code, [id]);
        }
        ids.add(id);
      }
      return Int32Array.from(ids);
    });
    this.ruleFields = rules.map((r) => (r.requirement ? Int32Array.from(new Set(r.requirement.map((q) => this.fields.indexOf(q.field)))) : null));
    this.hit = new Int32Array(this.lits.length);
    this.scanned = new Int32Array(this.fields.length);
  }

  /** Start a new event. */
  reset(): void {
    this.epoch++;
  }

  /** May rule `i` match this event? */
  possible(i: number, ev: LogEvent): boolean {
    const ids = this.ruleLits[i];
    if (!ids) return true;
    const fs = this.ruleFields[i]!;
    for (let k = 0; k < fs.length; k++) {
      const f = fs[k]!;
      if (this.scanned[f] !== this.epoch) this.scan(f, ev);
    }
    for (let k = 0; k < ids.length; k++) if (this.hit[ids[k]!] === this.epoch) return true;
    return false;
  }

  private scan(f: number, ev: LogEvent): void {
    this.scanned[f] = this.epoch;
    const v = fieldText(ev, this.fields[f]!, false);
    if (v === undefined) return;
    const idx = this.index[f]!;
    const bg = this.bigrams[f]!;
    const end = v.length - 2;
    for (let i = 0; i < end; i++) {
      if (bg[bi(v, i)] === 0) continue;
      const list = idx.get(tri(v, i));
      if (!list) continue;
      for (let k = 0; k < list.length; k++) {
        const id = list[k]!;
        if (this.hit[id] !== this.epoch && v.startsWith(this.lits[id]!, i)) this.hit[id] = this.epoch;
      }
    }
  }
}

function bi(s: string, i: number): number {
  return ((s.charCodeAt(i) & 0xff) << 8) | (s.charCodeAt(i + 1) & 0xff);
}

function tri(s: string, i: number): number {
  return ((s.charCodeAt(i) * 65599 + s.charCodeAt(i + 1)) * 65599 + s.charCodeAt(i + 2)) | 0;
}
