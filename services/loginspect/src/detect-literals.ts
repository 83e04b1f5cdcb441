import { LiteralMatcher } from '@cordon/native';
import { NOT_A_SLICE, SPAN_SLOTS, type LogEvent } from './decode.js';
import { LineWriter, type LineBytes } from './lines.js';

/** Pseudo-field: the whole raw line (Sigma keywords). */
export const RAW = '\u0000raw';

/**
 * Case-insensitive `contains` for every literal of every rule, answered by one scan per field
 * per event. Sigma's commonest test is "field contains literal, ignoring case"; a web line
 * meets ~100 rules holding ~800 such literals over 4–5 fields. Rather than lower-casing each
 * field and running `includes` once per literal, each field is scanned once (on demand, the
 * first time a rule asks about it) for all its registered literals, folding ASCII case on the
 * fly; afterwards every `contains` on that field is one array read, and the literals found
 * are listed (`hits`) for the prefilter to pick the rules worth running.
 *
 * Literals are ASCII, so the scan folds each character to 7 bits (anything else to 0x7f, which
 * no literal holds) and keeps the last three in a 21-bit key: a 16 KB bigram table, then one
 * bit test, say whether some literal starts with those three characters. Only then is the
 * literal list of that trigram read and compared. A long run of characters no literal holds
 * (an overflow payload of undecodable bytes) is skipped by the regex engine.
 *
 * A batch of lines can be searched ahead (`prescan`), in one native call on Hyperscan when the
 * DPI engine is built with it: a line of the batch (`useLine`) is then not scanned here, its
 * literals' occurrences are replayed from that search. Only ASCII lines are searched there
 * (their byte offsets are their character offsets, and ASCII case folding is all the folding
 * they need), and, given the bytes they were read from, lines whose every byte is one
 * character (bytes that are not UTF-8 are each a U+FFFD, which no literal holds, as no literal
 * holds a byte above ASCII); the others are scanned here as always.
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
  /** Per field: its slot in `LogEvent.spans` (the raw line's is 0), -1 when it is never a slice of the line. */
  private slotOf = new Int32Array(0);
  /**
   * Per folded bigram: bit 1 when some literal of three or more characters starts with it, bit 2
   * when it is a literal itself (`${`, `--`, `or`). A 16 KB table: the scan's first gate.
   */
  private readonly first2 = new Uint8Array(1 << 14);
  /** Per folded bigram that is a literal: its text id + 1. */
  private readonly pairText = new Int32Array(1 << 14);
  /** Bit set over 21-bit folded trigrams: those some literal starts with. Rebuilt after registrations. */
  private readonly first3 = new Int32Array(1 << 16);
  /**
   * Trigram → the literal texts (ids into `texts`) starting with it: an open-addressing table
   * (`slotKey`, -1 empty) whose slot holds the range `[slotFrom, slotTo)` of `candidates`.
   */
  private slotKey = new Int32Array(0);
  private slotFrom = new Int32Array(0);
  private slotTo = new Int32Array(0);
  private slotShift = 0;
  private candidates = new Int32Array(0);
  private texts: string[] = [];
  /** Per text: its length. */
  private textLength = new Int32Array(0);
  /**
   * Per position in `candidates`: how many leading characters its text shares with the text
   * before it in the same trigram's list (lists are sorted), so a walk down a list compares each
   * character of the line once, not once per candidate (`auth…` has ~30 literals).
   */
  private candidateLcp = new Int32Array(0);
  /**
   * Per text: its (field, literal id) pairs, `entries[entryFrom[t] .. entryFrom[t + 1])`, all
   * texts' in one array: one text may be a literal of several fields.
   */
  private entryFrom = new Int32Array(1);
  private entries = new Int32Array(0);
  /** Per field, during a scan: the range of the scanned text it occupies (start -1: not in it). */
  private start = new Int32Array(0);
  private end = new Int32Array(0);
  /** The fields that may be the whole raw line. */
  private wholeLine = new Int32Array(0);
  /** The fields some decoders set to the line's end (a syslog or error-log message). */
  private tailOfLine = new Int32Array(0);
  private hit = new Int32Array(0);
  private scanned = new Int32Array(0);
  private epoch = 0;
  /** Epoch of an event whose line holds U+0130: its fields are scanned one by one. */
  private noSpans = -1;
  private current: LogEvent | null = null;
  private dirty = false;
  /** Search batches natively when possible (false: always scan here). */
  private readonly native: boolean;
  /** The native search of every text (`texts` order), or null; made by `prescan`. */
  private matcher: LiteralMatcher | null = null;
  private matcherTexts: string[] | null = null;
  /** The batch searched by `prescan`: its lines, the line being inspected (-1: none). */
  private batch: readonly string[] = [];
  private batchLine = -1;
  /** Per line of the batch: its occurrences `batchOut[3 * from .. 3 * to)` as (line, text, start); from -1: not searched. */
  private batchFrom = new Int32Array(0);
  private batchTo = new Int32Array(0);
  private readonly writer = new LineWriter();
  private batchOut = new Uint32Array(3 << 12);
  /** How many lines of the last `prescan` were searched natively (0: none, the scan is all here). */
  prescanned = 0;
  /** The literal ids found in the current event so far: `hits[0 .. hitCount)`. */
  hits = new Int32Array(64);
  hitCount = 0;

  constructor(options: { native?: boolean } = {}) {
    this.native = options.native ?? true;
  }

  /** Can `contains lit` be answered by the scan? (ASCII, ≥ 2 chars: the index keys are bigrams and trigrams.) */
  static accepts(lit: string): boolean {
    if (lit.length < 2) return false;
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
    this.scanFields(ev, fs);
    return this.foundAny(ids, 0, ids.length);
  }

  /**
   * Was field `f` of `ev` scanned already, and found to hold none of these literals (all of
   * field `f`)? A predicate that needs one of them then cannot hold. False when the field was
   * not scanned: the caller decides then without the scan, rather than paying for one.
   */
  lacks(ev: LogEvent, f: number, ids: Int32Array): boolean {
    return this.scannedIn(ev, f) && !this.found1(ids);
  }

  /** Was field `f` of `ev` scanned already (its literals' hits are known)? */
  scannedIn(ev: LogEvent, f: number): boolean {
    return ev === this.current && !this.dirty && this.scanned[f] === this.epoch;
  }

  /** Was one of these literals found in the current event (in the fields scanned so far)? */
  found1(ids: Int32Array): boolean {
    return this.foundAny(ids, 0, ids.length);
  }

  /** Was one of the literals `ids[from .. to)` found in the current event (in the fields scanned so far)? */
  foundAny(ids: Int32Array, from: number, to: number): boolean {
    const epoch = this.epoch;
    for (let k = from; k < to; k++) if (this.hit[ids[k]!] === epoch) return true;
    return false;
  }

  /** Scan fields `fs` of `ev` (those not scanned yet): `hits` then lists every literal of theirs that `ev` holds. */
  scanFields(ev: LogEvent, fs: Int32Array): void {
    if (ev !== this.current || this.dirty) this.begin(ev);
    const epoch = this.epoch;
    for (let k = 0; k < fs.length; k++) {
      const f = fs[k]!;
      if (this.scanned[f] !== epoch) this.scan(f, ev);
    }
  }

  /**
   * Search `lines` ahead, in one native call (nothing when Hyperscan is not there); then
   * `useLine(k)` before the events of `lines[k]` are asked about. A batch replaces the last.
   * With the `bytes` the lines were read from (`forEachLines`), those are searched: the lines
   * need not be written out as bytes again.
   */
  prescan(lines: readonly string[], bytes?: LineBytes): void {
    this.batch = EMPTY_BATCH;
    this.batchLine = -1;
    this.prescanned = 0;
    if (this.dirty) this.build();
    if (!this.native || lines.length === 0 || this.texts.length === 0) return;
    // made on the first batch (a scanner never given one never loads the addon); a new field's
    // literal seldom brings a new text: the compiled search is kept then
    if (!sameTexts(this.matcherTexts, this.texts)) {
      this.matcher = LiteralMatcher.create(this.texts);
      this.matcherTexts = this.texts;
    }
    const m = this.matcher;
    if (m === null) return;
    const n = lines.length;
    if (this.batchFrom.length < n) {
      this.batchFrom = new Int32Array(n);
      this.batchTo = new Int32Array(n);
    }
    const from = this.batchFrom;
    // lines that came as strings are written out once (each ASCII line its bytes)
    const b = bytes !== undefined && bytes.starts.length === n + 1 ? bytes : this.writer.write(lines, MAX_NATIVE_LINE);
    // each line's bytes run to the next line's (a file's line break): a literal found in its
    // line break (past the line's length) is dropped when replayed
    const data = b.data;
    const offs = b.starts;
    for (let k = 0; k < n; k++) {
      const len = lines[k]!.length;
      from[k] = b.bytewise[k] === 1 && len >= 2 && len <= MAX_NATIVE_LINE ? 0 : -1;
    }
    let found = m.scan(data, offs, this.batchOut);
    while (found < 0) {
      // a hostile batch (megabytes of `aaaa` against `aa`) would need gigabytes here: past a
      // bound, its lines are scanned in JavaScript, in constant memory
      if (this.batchOut.length >= 3 * MAX_NATIVE_HITS) return;
      this.batchOut = new Uint32Array(Math.min(this.batchOut.length * 4, 3 * MAX_NATIVE_HITS));
      found = m.scan(data, offs, this.batchOut);
    }
    // occurrences come line by line: each line's range of them
    const out = this.batchOut;
    const to = this.batchTo;
    let j = 0;
    for (let k = 0; k < n; k++) {
      // a line searched here is not read from the batch's results, but from its bytes the search
      // may have found some: past them
      while (j < found && out[3 * j]! < k) j++;
      if (from[k] === -1) continue;
      this.prescanned++;
      from[k] = j;
      while (j < found && out[3 * j] === k) j++;
      to[k] = j;
    }
    this.batch = lines;
  }

  /** The events asked about next are of `lines[k]` of the last `prescan` (-1: of no batch). */
  useLine(k: number): void {
    this.batchLine = k < this.batch.length ? k : -1;
  }

  private begin(ev: LogEvent): void {
    if (this.dirty) this.build();
    this.current = ev;
    this.epoch++;
    this.hitCount = 0;
  }

  private build(): void {
    this.dirty = false;
    const nf = this.fieldNames.length;
    this.slotOf = Int32Array.from(this.fieldNames, (name) => (name === RAW ? 0 : (SPAN_SLOTS.get(name) ?? -1)));
    const textIds = new Map<string, number>();
    const entries: number[][] = [];
    const lists = new Map<number, number[]>();
    this.texts = [];
    this.first2.fill(0);
    this.pairText.fill(0);
    this.first3.fill(0);
    for (let id = 0; id < this.lits.length; id++) {
      const lit = this.lits[id]!;
      let t = textIds.get(lit);
      if (t === undefined) {
        t = this.texts.push(lit) - 1;
        textIds.set(lit, t);
        entries.push([]);
        if (lit.length === 2) {
          const pair = (lit.charCodeAt(0) << 7) | lit.charCodeAt(1);
          this.first2[pair]! |= 2;
          this.pairText[pair] = t + 1;
        } else {
          const key = (lit.charCodeAt(0) << 14) | (lit.charCodeAt(1) << 7) | lit.charCodeAt(2);
          this.first2[key >>> 7]! |= 1;
          this.first3[key >>> 5]! |= 1 << (key & 31);
          const list = lists.get(key);
          if (list) list.push(t);
          else lists.set(key, [t]);
        }
      }
      entries[t]!.push(this.litField[id]!, id);
    }
    this.entryFrom = new Int32Array(entries.length + 1);
    entries.forEach((e, t) => (this.entryFrom[t + 1] = this.entryFrom[t]! + e.length));
    this.entries = Int32Array.from(entries.flat());
    this.textLength = Int32Array.from(this.texts, (t) => t.length);
    let bits = 4;
    while (1 << bits < lists.size * 4) bits++;
    this.slotShift = 32 - bits;
    this.slotKey = new Int32Array(1 << bits).fill(-1);
    this.slotFrom = new Int32Array(1 << bits);
    this.slotTo = new Int32Array(1 << bits);
    const flat: number[] = [];
    const lcp: number[] = [];
    for (const [key, list] of lists) {
      let slot = Math.imul(key, HASH) >>> this.slotShift;
      while (this.slotKey[slot] !== -1) slot = (slot + 1) & ((1 << bits) - 1);
      this.slotKey[slot] = key;
      this.slotFrom[slot] = flat.length;
      // sorted by character code, as the walk in `found` assumes
      list.sort((x, y) => (this.texts[x]! < this.texts[y]! ? -1 : 1));
      for (let k = 0; k < list.length; k++)
        lcp.push(k === 0 ? 0 : commonPrefix(this.texts[list[k - 1]!]!, this.texts[list[k]!]!));
      flat.push(...list);
      this.slotTo[slot] = flat.length;
    }
    this.batch = EMPTY_BATCH;
    this.batchLine = -1;
    this.candidates = Int32Array.from(flat);
    this.candidateLcp = Int32Array.from(lcp);
    this.start = new Int32Array(nf);
    this.end = new Int32Array(nf);
    this.wholeLine = Int32Array.from(WHOLE_LINE.filter((n) => this.fieldIds.has(n)).map((n) => this.fieldIds.get(n)!));
    this.tailOfLine = Int32Array.from(
      TAIL_OF_LINE.filter((n) => this.fieldIds.has(n)).map((n) => this.fieldIds.get(n)!),
    );
    // fresh state arrays: old epochs must not read as hits
    this.hit = new Int32Array(this.lits.length);
    this.scanned = new Int32Array(nf);
    this.epoch = 0;
    this.current = null;
  }

  private scan(f: number, ev: LogEvent): void {
    const slot = this.slotOf[f]!;
    const spans = ev.spans;
    if (slot >= 0 && spans !== undefined && spans[2 * slot] !== NOT_A_SLICE && this.noSpans !== this.epoch) {
      if (this.scanSpans(ev, spans)) return;
      this.noSpans = this.epoch;
    }
    this.scanned[f] = this.epoch;
    const name = this.fieldNames[f]!;
    const v = name === RAW ? ev.raw : ev.fields[name];
    if (v === undefined || v.length < 2) return;
    const start = this.start;
    start.fill(-1);
    // the whole text, even when lower-casing lengthens it (the U+0130 retry below)
    start[f] = 0;
    this.end[f] = 0x7fffffff;
    // the raw line and the fields that are all of it (`keywords`, a text line's `message`) are one text: one pass answers them all
    if (v === ev.raw) {
      for (let k = 0; k < this.wholeLine.length; k++) {
        const g = this.wholeLine[k]!;
        const alias = this.fieldNames[g]!;
        if (alias === RAW || ev.fields[alias] === v) {
          start[g] = 0;
          this.end[g] = 0x7fffffff;
          this.scanned[g] = this.epoch;
        }
      }
      // a field that is the line's end (the message after a syslog header) is answered by the
      // same pass, credited with the hits that lie in that end
      for (let k = 0; k < this.tailOfLine.length; k++) {
        const g = this.tailOfLine[k]!;
        if (this.scanned[g] === this.epoch) continue;
        const t = ev.fields[this.fieldNames[g]!];
        if (t !== undefined && t.length < v.length && v.endsWith(t)) {
          start[g] = v.length - t.length;
          this.end[g] = 0x7fffffff;
          this.scanned[g] = this.epoch;
        }
      }
    }
    if (this.scanText(v)) return;
    // U+0130: lower-casing moves the line's end, which is then scanned on its own (the hits
    // recorded before the U+0130 stand)
    for (let k = 0; k < this.tailOfLine.length; k++) {
      const g = this.tailOfLine[k]!;
      if (start[g]! > 0) {
        start[g] = -1;
        this.scanned[g] = -1;
      }
    }
    this.scanText(v.toLowerCase());
  }

  /**
   * One pass over `raw` answers the raw pseudo-field and every field that is a slice of it:
   * a literal found at [i, i + len) is in a field when the field's span holds that range.
   * False when the line holds U+0130: every field is then scanned on its own.
   */
  private scanSpans(ev: LogEvent, spans: number[]): boolean {
    const epoch = this.epoch;
    const slotOf = this.slotOf;
    const start = this.start;
    const end = this.end;
    for (let g = 0; g < slotOf.length; g++) {
      const slot = slotOf[g]!;
      const s = slot < 0 ? NOT_A_SLICE : spans[2 * slot]!;
      if (s === NOT_A_SLICE) {
        start[g] = -1;
        continue;
      }
      // a field the line lacks is answered too: it holds nothing
      this.scanned[g] = epoch;
      start[g] = s;
      end[g] = spans[2 * slot + 1]!;
    }
    if (this.scanText(ev.raw)) return true;
    // hits recorded before the U+0130 stand: lower-casing leaves the text before it as it is
    for (let g = 0; g < slotOf.length; g++) if (start[g]! >= 0) this.scanned[g] = -1;
    return false;
  }

  /**
   * Find the literals in `v`, crediting each to the fields whose range (`start`/`end`) holds
   * it. False when `v` holds U+0130 (its lower case is two characters): scan `toLowerCase(v)`.
   */
  private scanText(v: string): boolean {
    const n = v.length;
    if (n < 2) return true;
    const k = this.batchLine;
    if (k >= 0 && this.batchFrom[k]! >= 0 && v === this.batch[k]) {
      // searched natively with its batch: replay its occurrences (record's loop, inlined by hand:
      // a line replays ten of them)
      const { batchOut: out, textLength, entryFrom, entries, start, end, hit, epoch } = this;
      let hits: Int32Array = this.hits;
      let count = this.hitCount;
      for (let j = this.batchFrom[k]!, last = this.batchTo[k]!; j < last; j++) {
        const t = out[3 * j + 1]!;
        const at = out[3 * j + 2]!;
        const to = at + textLength[t]!;
        if (to > n) continue;
        for (let x = entryFrom[t]!, xe = entryFrom[t + 1]!; x < xe; x += 2) {
          const g = entries[x]!;
          const id = entries[x + 1]!;
          if (hit[id] !== epoch && start[g]! >= 0 && start[g]! <= at && to <= end[g]!) {
            hit[id] = epoch;
            if (count === hits.length) hits = this.moreHits();
            hits[count++] = id;
          }
        }
      }
      this.hitCount = count;
      return true;
    }
    const first2 = this.first2;
    const first3 = this.first3;
    const a = FOLD7[v.charCodeAt(0)]!;
    const b = FOLD7[v.charCodeAt(1)]!;
    if (a < 0 || b < 0) return false;
    let key = (a << 7) | b;
    let run = 0; // characters in a row that no literal holds (0x7f)
    for (let i = 2; i < n; i++) {
      const c = FOLD7[v.charCodeAt(i)]!;
      if (c < 0) return false;
      if (c === 0x7f) {
        // a long run of them (undecodable bytes, an overflow payload): let the regex engine find its end
        if (++run === LONG_RUN) {
          LITERAL_CHAR.lastIndex = i + 1;
          if (!LITERAL_CHAR.test(v)) return true;
          i = LITERAL_CHAR.lastIndex - 2;
          key = 0x3fff;
          run = 0;
          continue;
        }
      } else run = 0;
      // `key` still holds the two characters before c: the bigram gate first, then the trigram
      const g = first2[key & 0x3fff]!;
      if (g !== 0) {
        if ((g & 2) !== 0) this.record(this.pairText[key & 0x3fff]! - 1, i - 2, i);
        const k3 = ((key << 7) | c) & 0x1fffff;
        if ((g & 1) !== 0 && (first3[k3 >>> 5]! & (1 << (k3 & 31))) !== 0) this.found(v, i - 2, k3);
      }
      key = (key << 7) | c;
    }
    // the last two characters, which no third follows
    if ((first2[key & 0x3fff]! & 2) !== 0) this.record(this.pairText[key & 0x3fff]! - 1, n - 2, n);
    return true;
  }

  /**
   * Some literal starts with the three characters at `at`: record those that are there. The
   * trigram's texts are sorted, so one walk settles them all: `m` is how far the text matched
   * the previous candidate; a candidate sharing fewer characters with that one differs from the
   * text where the text agreed, and so does every later one (stop); one sharing more fails
   * where the previous one failed (skip); one sharing exactly `m` is compared from there on.
   */
  private found(v: string, at: number, key: number): void {
    let slot = Math.imul(key, HASH) >>> this.slotShift;
    while (this.slotKey[slot] !== key) slot = (slot + 1) & (this.slotKey.length - 1);
    const candidates = this.candidates;
    const lcp = this.candidateLcp;
    const length = this.textLength;
    const texts = this.texts;
    const n = v.length;
    const from = this.slotFrom[slot]!;
    const to = this.slotTo[slot]!;
    let m = 3; // the trigram matched
    for (let k = from; k < to; k++) {
      if (k > from) {
        const l = lcp[k]!;
        if (l < m) return;
        if (l > m) continue;
      }
      const t = candidates[k]!;
      const len = length[t]!;
      const lit = texts[t]!;
      let j = m;
      while (j < len) {
        // past the end, or U+0130 (-1): below every literal character; other non-ASCII (0x7f) above
        const c = at + j < n ? FOLD7[v.charCodeAt(at + j)]! : -1;
        const l = lit.charCodeAt(j);
        if (c !== l) {
          if (c < l) return;
          break;
        }
        j++;
      }
      m = j;
      if (j === len) this.record(t, at, at + len);
    }
  }

  /** Text `t` occupies [from, to) of the scanned text: credit its literals of the fields whose range holds that. */
  private record(t: number, from: number, to: number): void {
    const { entries, start, end, hit, epoch } = this;
    for (let x = this.entryFrom[t]!, xe = this.entryFrom[t + 1]!; x < xe; x += 2) {
      const g = entries[x]!;
      const id = entries[x + 1]!;
      if (hit[id] !== epoch && start[g]! >= 0 && start[g]! <= from && to <= end[g]!) {
        hit[id] = epoch;
        if (this.hitCount === this.hits.length) this.moreHits();
        this.hits[this.hitCount++] = id;
      }
    }
  }

  /** `hits` twice as long, its entries kept. */
  private moreHits(): Int32Array {
    const more = new Int32Array(this.hits.length * 2);
    more.set(this.hits);
    this.hits = more;
    return more;
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

/** Fields some decoder sets to the whole raw line. */
const WHOLE_LINE = [RAW, 'keywords', 'message', 'Message'];

/** Fields some decoders set to the end of the raw line. */
const TAIL_OF_LINE = ['message', 'Message'];

/**
 * `fold` to 7 bits, as a table over every UTF-16 code unit (the scan's per-character step):
 * the Kelvin sign is `k`, other characters above ASCII are 0x7f, which no literal holds, and
 * U+0130 is -1: the text is then lower-cased and scanned again.
 */
const FOLD7 = Int8Array.from({ length: 0x10000 }, (_, c) =>
  c < 0x80 || c === 0x212a ? fold(c) : c === 0x130 ? -1 : 0x7f,
);

function sameTexts(a: string[] | null, b: string[]): boolean {
  if (a === null || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** How many leading characters `a` and `b` share. */
function commonPrefix(a: string, b: string): number {
  let i = 0;
  while (i < a.length && i < b.length && a.charCodeAt(i) === b.charCodeAt(i)) i++;
  return i;
}

/** The next character that FOLD7 does not map to 0x7f: the end of a run no literal can match. */
const LITERAL_CHAR = /[\0-\x7e\u0130\u212a]/g;
const LONG_RUN = 32;

const EMPTY_BATCH: readonly string[] = [];
/** Longest line searched natively (longer ones are scanned here). */
const MAX_NATIVE_LINE = 1 << 20;
/** Most occurrences a batch's native search may report (12 MB of triples). */
const MAX_NATIVE_HITS = 1 << 20;

/** Multiplier of the trigram table's hash (Knuth's, 2^32 / φ). */
const HASH = 0x9e3779b1 | 0;
