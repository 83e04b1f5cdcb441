import type { LogEvent } from './decode.js';

/** Pseudo-field: the whole raw line (Sigma keywords). */
export const RAW = '\u0000raw';

/**
 * Case-insensitive `contains` for every literal of every rule, answered by one scan per field
 * per event. Sigma's commonest test is "field contains literal, ignoring case"; a web line
 * meets ~100 rules holding ~300 such literals over 4–5 fields. Rather than lower-casing each
 * field and running `includes` once per literal, each field is scanned once (on demand, the
 * first time a rule asks about it) for all its registered literals, folding ASCII case on the
 * fly; afterwards every `contains` on that field is one array read.
 *
 * Literals are indexed by their first three (folded) characters, behind a bitmap of their
 * first two, so most positions cost two char reads and one byte read.
 *
 * One scanner serves a whole rule set. Its per-event state (which fields were scanned, which
 * literals were found) is keyed by event identity, so a predicate called with a new event
 * never sees the previous one's hits. Not shared between threads.
 */
export class LiteralScanner {
  private readonly fieldNames: string[] = [];
  private readonly fieldIds = new Map<string, number>();
  /** Per literal: its text (lower-cased) and its field. */
  private readonly lits: string[] = [];
  private readonly litField: number[] = [];
  private readonly litIds = new Map<string, number>();
  /** Per field: trigram → literal ids; bigram bitmap. Rebuilt after registrations. */
  private index: Map<number, Int32Array>[] = [];
  private bigrams: Uint8Array[] = [];
  /** Per field: bitmap of the literals' second and third chars (a second, cheap gate). */
  private bigrams2: Uint8Array[] = [];
  /** Every field's literals by their text, for the one pass over `raw` of events with spans. */
  private merged = new Map<number, Int32Array>();
  private mergedBigrams = new Uint8Array(0);
  private mergedBigrams2 = new Uint8Array(0);
  private texts: string[] = [];
  /** Per text: (field, literal id) pairs, flattened. */
  private textEntries: Int32Array[] = [];
  private start = new Int32Array(0);
  private end = new Int32Array(0);
  private hit = new Int32Array(0);
  private scanned = new Int32Array(0);
  private epoch = 0;
  /** Epoch of an event whose line holds U+0130: its fields are scanned one by one. */
  private noSpans = -1;
  private current: LogEvent | null = null;
  private dirty = false;

  /** Can `contains lit` be answered by the scan? (ASCII, ≥ 3 chars: the index key is a trigram.) */
  static accepts(lit: string): boolean {
    if (lit.length < 3) return false;
    for (let i = 0; i < lit.length; i++) if (lit.charCodeAt(i) > 0x7e) return false;
    return lit === lit.toLowerCase();
  }

  fieldId(field: string): number {
    let f = this.fieldIds.get(field);
    if (f === undefined) {
      f = this.fieldNames.push(field) - 1;
      this.fieldIds.set(field, f);
      this.dirty = true;
    }
    return f;
  }

  /** Literal id for (field, lower-cased literal); call `accepts(lit)` first. */
  register(field: string, lit: string): number {
    const f = this.fieldId(field);
    const key = `${f}\u0000${lit}`;
    let id = this.litIds.get(key);
    if (id === undefined) {
      id = this.lits.push(lit) - 1;
      this.litField.push(f);
      this.litIds.set(key, id);
      this.dirty = true;
    }
    return id;
  }

  /** Does field `f` of `ev` contain literal `id` (ignoring case)? */
  has(ev: LogEvent, f: number, id: number): boolean {
    if (ev !== this.current || this.dirty) this.begin(ev);
    if (this.scanned[f] !== this.epoch) this.scan(f, ev);
    return this.hit[id] === this.epoch;
  }

  /** Has any of these literals (all in fields `fs`) been found in `ev`? */
  any(ev: LogEvent, fs: Int32Array, ids: Int32Array): boolean {
    if (ev !== this.current || this.dirty) this.begin(ev);
    const epoch = this.epoch;
    for (let k = 0; k < fs.length; k++) {
      const f = fs[k]!;
      if (this.scanned[f] !== epoch) this.scan(f, ev);
    }
    for (let k = 0; k < ids.length; k++) if (this.hit[ids[k]!] === epoch) return true;
    return false;
  }

  private begin(ev: LogEvent): void {
    if (this.dirty) this.build();
    this.current = ev;
    this.epoch++;
  }

  private build(): void {
    this.dirty = false;
    const nf = this.fieldNames.length;
    const lists: Map<number, number[]>[] = [];
    this.bigrams = [];
    this.bigrams2 = [];
    for (let f = 0; f < nf; f++) {
      lists.push(new Map());
      this.bigrams.push(new Uint8Array(65536));
      this.bigrams2.push(new Uint8Array(65536));
    }
    for (let id = 0; id < this.lits.length; id++) {
      const lit = this.lits[id]!;
      const f = this.litField[id]!;
      this.bigrams[f]![bi(lit.charCodeAt(0), lit.charCodeAt(1))] = 1;
      this.bigrams2[f]![bi(lit.charCodeAt(1), lit.charCodeAt(2))] = 1;
      const code = tri(lit.charCodeAt(0), lit.charCodeAt(1), lit.charCodeAt(2));
      const list = lists[f]!.get(code);
      if (list) list.push(id);
      else lists[f]!.set(code, [id]);
    }
    this.index = lists.map((m) => new Map([...m].map(([k, v]) => [k, Int32Array.from(v)])));
    const textIds = new Map<string, number>();
    const entries: number[][] = [];
    const mlists = new Map<number, number[]>();
    this.texts = [];
    this.mergedBigrams = new Uint8Array(65536);
    this.mergedBigrams2 = new Uint8Array(65536);
    for (let id = 0; id < this.lits.length; id++) {
      const lit = this.lits[id]!;
      let t = textIds.get(lit);
      if (t === undefined) {
        t = this.texts.push(lit) - 1;
        textIds.set(lit, t);
        entries.push([]);
        this.mergedBigrams[bi(lit.charCodeAt(0), lit.charCodeAt(1))] = 1;
        this.mergedBigrams2[bi(lit.charCodeAt(1), lit.charCodeAt(2))] = 1;
        const code = tri(lit.charCodeAt(0), lit.charCodeAt(1), lit.charCodeAt(2));
        const list = mlists.get(code);
        if (list) list.push(t);
        else mlists.set(code, [t]);
      }
      entries[t]!.push(this.litField[id]!, id);
    }
    this.textEntries = entries.map((e) => Int32Array.from(e));
    this.merged = new Map([...mlists].map(([k, v]) => [k, Int32Array.from(v)]));
    this.start = new Int32Array(nf);
    this.end = new Int32Array(nf);
    // fresh state arrays: old epochs must not read as hits
    this.hit = new Int32Array(this.lits.length);
    this.scanned = new Int32Array(nf);
    this.epoch = 0;
    this.current = null;
  }

  private scan(f: number, ev: LogEvent): void {
    const name = this.fieldNames[f]!;
    const at = ev.at;
    if (at !== undefined && this.noSpans !== this.epoch && (name === RAW || at[name] !== undefined)) {
      if (this.scanSpans(ev, at)) return;
      this.noSpans = this.epoch;
    }
    this.scanned[f] = this.epoch;
    const v = name === RAW ? ev.raw : ev.fields[name];
    if (v === undefined || v.length < 3) return;
    if (!this.scanText(f, v)) this.scanText(f, v.toLowerCase());
  }

  /** False when the text holds U+0130 (its lower case is two characters): scan the lower-cased text then. */
  private scanText(f: number, v: string): boolean {
    const idx = this.index[f]!;
    const bg = this.bigrams[f]!;
    const bg2 = this.bigrams2[f]!;
    const hit = this.hit;
    const epoch = this.epoch;
    const end = v.length - 2;
    let a = v.charCodeAt(0);
    a = a < 0x100 ? FOLD[a]! : foldWide(a);
    if (a < 0 || v.charCodeAt(v.length - 1) === 0x130) return this.bail(false);
    for (let i = 0; i < end; i++) {
      let b = v.charCodeAt(i + 1);
      b = b < 0x100 ? FOLD[b]! : foldWide(b);
      if (b < 0) return this.bail(false);
      if (bg[((a & 0xff) << 8) | (b & 0xff)] !== 0) {
        const c = foldWide(v.charCodeAt(i + 2));
        const list = bg2[((b & 0xff) << 8) | (c & 0xff)] === 0 ? undefined : idx.get(tri(a, b, c));
        if (list !== undefined) {
          for (let k = 0; k < list.length; k++) {
            const id = list[k]!;
            if (hit[id] !== epoch && matchesAt(v, i, this.lits[id]!)) hit[id] = epoch;
          }
        }
      }
      a = b;
    }
    return true;
  }

  /**
   * A U+0130 was met. Hits recorded so far stand (their text is unchanged by lower-casing); a
   * span pass unmarks the fields it claimed, to be scanned one by one.
   */
  private bail(spans: boolean): false {
    if (spans) for (let g = 0; g < this.fieldNames.length; g++) if (this.start[g]! >= 0) this.scanned[g] = -1;
    return false;
  }

  /**
   * One pass over `raw` answers the raw pseudo-field and every field that is a slice of it:
   * a literal found at [i, i + len) is in a field when the field's span holds that range.
   */
  private scanSpans(ev: LogEvent, at: Record<string, number>): boolean {
    const epoch = this.epoch;
    const names = this.fieldNames;
    const start = this.start;
    const end = this.end;
    const v = ev.raw;
    for (let g = 0; g < names.length; g++) {
      const name = names[g]!;
      if (name === RAW) {
        start[g] = 0;
        end[g] = v.length;
        this.scanned[g] = epoch;
        continue;
      }
      const s = at[name];
      const w = s === undefined ? undefined : ev.fields[name];
      if (w === undefined) {
        start[g] = -1;
        continue;
      }
      start[g] = s!;
      end[g] = s! + w.length;
      this.scanned[g] = epoch;
    }
    const idx = this.merged;
    const bg = this.mergedBigrams;
    const bg2 = this.mergedBigrams2;
    const hit = this.hit;
    const last = v.length - 2;
    let a = v.charCodeAt(0);
    a = a < 0x100 ? FOLD[a]! : foldWide(a);
    if (a < 0 || v.charCodeAt(v.length - 1) === 0x130) return this.bail(true);
    for (let i = 0; i < last; i++) {
      let b = v.charCodeAt(i + 1);
      b = b < 0x100 ? FOLD[b]! : foldWide(b);
      if (b < 0) return this.bail(true);
      if (bg[((a & 0xff) << 8) | (b & 0xff)] !== 0) {
        const c = foldWide(v.charCodeAt(i + 2));
        const list = bg2[((b & 0xff) << 8) | (c & 0xff)] === 0 ? undefined : idx.get(tri(a, b, c));
        if (list !== undefined) {
          for (let k = 0; k < list.length; k++) {
            const text = this.texts[list[k]!]!;
            if (!matchesAt(v, i, text)) continue;
            const e = this.textEntries[list[k]!]!;
            const stop = i + text.length;
            for (let j = 0; j < e.length; j += 2) {
              const g = e[j]!;
              if (start[g]! >= 0 && start[g]! <= i && stop <= end[g]!) hit[e[j + 1]!] = epoch;
            }
          }
        }
      }
      a = b;
    }
    return true;
  }
}

/**
 * ASCII case folding, plus the Kelvin sign (its lower case is `k`). The only other character
 * whose lower case holds ASCII, U+0130, is left to `toLowerCase` (see foldWide).
 */
function fold(c: number): number {
  if (c <= 0x5a) return c >= 0x41 ? c | 0x20 : c;
  return c === 0x212a ? 0x6b : c;
}

/** `fold`, with -1 for U+0130 (lower case `i` + U+0307): the scan then reads `toLowerCase()` text. */
function foldWide(c: number): number {
  return c === 0x130 ? -1 : fold(c);
}

/** `fold` for Latin-1, as a table: the scan's per-character step. */
const FOLD = Uint8Array.from({ length: 0x100 }, (_, c) => fold(c));

function matchesAt(v: string, at: number, lit: string): boolean {
  if (at + lit.length > v.length) return false;
  for (let j = 0; j < lit.length; j++) if (fold(v.charCodeAt(at + j)) !== lit.charCodeAt(j)) return false;
  return true;
}

function bi(a: number, b: number): number {
  return ((a & 0xff) << 8) | (b & 0xff);
}

function tri(a: number, b: number, c: number): number {
  return ((a * 65599 + b) * 65599 + c) | 0;
}
