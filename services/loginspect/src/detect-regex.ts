/**
 * Required literals of a regular expression: a list of strings of which every match holds at
 * least one (ignoring ASCII case). The prefilter then runs the expression only on lines where
 * the literal scanner found one of them: `(?:/etc/passwd|\.\./)` cannot match a line holding
 * neither `/etc/passwd` nor `../`.
 *
 * Computed from the pattern's syntax tree, conservatively: whatever this parser does not fully
 * understand counts as "any text", which weakens the answer (to null: no requirement) but never
 * makes it wrong. Each node yields the exact set of (lower-cased, ASCII) strings it can match
 * when that set is small, and a requirement; a sequence multiplies out the exact sets of
 * adjacent parts, an alternation unions its branches' requirements, a part that may match the
 * empty string requires nothing.
 */

interface Info {
  /** Every string the node can match, lower-cased; null when unknown or too many. */
  exact: string[] | null;
  /** One of these (each ≥ 2 chars) occurs in every match; null when none is known. */
  req: string[] | null;
}

/** A cross product beyond this many strings is cut: the sequence is split there. */
const MAX_EXACT = 128;
/** The literal scanner indexes bigrams too: `${`, `--`, `or` gate a pattern as well as `union` does. */
const MIN_LITERAL = 2;

const ANY: Info = { exact: null, req: null };
const EMPTY: Info = { exact: [''], req: null };

class Unsupported extends Error {}

/**
 * The literals one of which every match of `source` (a JavaScript pattern, with `flags`)
 * contains, lower-cased ASCII of at least 2 characters; null when no such list is known.
 */
export function requiredLiterals(source: string, flags: string): string[] | null {
  // unicode mode changes escapes and case folding (`ſ` matches `s` under `iu`): not analysed
  if (flags.includes('u') || flags.includes('v')) return null;
  try {
    const p = new Parser(source);
    const info = p.disjunction();
    if (p.pos !== source.length) return null;
    return reqOf(info);
  } catch (err) {
    if (err instanceof Unsupported) return null;
    throw err;
  }
}

function usable(set: string[]): boolean {
  return set.length > 0 && set.every((s) => s.length >= MIN_LITERAL);
}

function reqOf(info: Info): string[] | null {
  if (info.req) return info.req;
  return info.exact && usable(info.exact) ? info.exact : null;
}

/** The more selective requirement: longer shortest literal, then fewer literals. */
function better(a: string[] | null, b: string[] | null): string[] | null {
  if (!a) return b;
  if (!b) return a;
  const la = Math.min(...a.map((s) => s.length));
  const lb = Math.min(...b.map((s) => s.length));
  if (la !== lb) return la > lb ? a : b;
  return b.length < a.length ? b : a;
}

function cross(a: string[], b: string[]): string[] | null {
  if (a.length * b.length > MAX_EXACT) return null;
  const out = new Set<string>();
  for (const x of a) for (const y of b) out.add(x + y);
  return [...out];
}

function sequence(parts: Info[]): Info {
  let run: string[] = [''];
  let whole = true;
  let req: string[] | null = null;
  const close = (): void => {
    if (usable(run)) req = better(req, run);
  };
  for (const p of parts) {
    if (p.exact) {
      const next = cross(run, p.exact);
      if (next) run = next;
      else {
        close();
        run = p.exact;
        whole = false;
      }
    } else {
      close();
      req = better(req, p.req);
      run = [''];
      whole = false;
    }
  }
  close();
  return { exact: whole ? run : null, req };
}

function alternation(branches: Info[]): Info {
  if (branches.length === 1) return branches[0]!;
  let exact: string[] | null = [];
  const req: string[] = [];
  let reqKnown = true;
  for (const b of branches) {
    if (exact && b.exact) exact.push(...b.exact);
    else exact = null;
    const r = reqOf(b);
    if (r) req.push(...r);
    else reqKnown = false;
  }
  if (exact) exact = [...new Set(exact)];
  if (exact && exact.length > MAX_EXACT) exact = null;
  return { exact, req: reqKnown ? [...new Set(req)] : null };
}

function repeat(p: Info, min: number, max: number): Info {
  if (max === 0) return EMPTY;
  if (min === 0) return { exact: max === 1 && p.exact ? [...new Set([...p.exact, ''])] : null, req: null };
  let exact: string[] | null = null;
  if (min === max && p.exact) {
    exact = [''];
    for (let i = 0; i < min && exact; i++) exact = cross(exact, p.exact);
  }
  // at least one occurrence: whatever one occurrence requires
  return { exact, req: reqOf(p) };
}

/** One character that may be any of `chars` (already lower-cased); too many or non-ASCII: any. */
function charSet(chars: Set<number>): Info {
  if (chars.size === 0 || chars.size > 8) return ANY;
  const out: string[] = [];
  for (const c of chars) {
    if (c > 0x7e) return ANY;
    out.push(String.fromCharCode(c));
  }
  return { exact: out, req: null };
}

const lower = (c: number): number => (c >= 0x41 && c <= 0x5a ? c | 0x20 : c);

class Parser {
  pos = 0;

  constructor(private readonly src: string) {}

  private peek(): string | undefined {
    return this.src[this.pos];
  }

  disjunction(): Info {
    const branches = [this.alternative()];
    while (this.peek() === '|') {
      this.pos++;
      branches.push(this.alternative());
    }
    return alternation(branches);
  }

  private alternative(): Info {
    const parts: Info[] = [];
    for (;;) {
      const c = this.peek();
      if (c === undefined || c === '|' || c === ')') break;
      const atom = this.term();
      parts.push(this.quantified(atom));
    }
    return sequence(parts);
  }

  private quantified(atom: Info): Info {
    const c = this.peek();
    let min: number;
    let max: number;
    if (c === '*') [min, max] = [0, Infinity];
    else if (c === '+') [min, max] = [1, Infinity];
    else if (c === '?') [min, max] = [0, 1];
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(this.src.slice(this.pos));
      if (!m) return atom; // a `{` that is no quantifier is a literal (read by term)
      min = Number(m[1]);
      max = m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]);
      this.pos += m[0].length - 1;
    } else return atom;
    this.pos++;
    if (this.peek() === '?') this.pos++; // lazy: the same strings
    return repeat(atom, min, max);
  }

  private term(): Info {
    const c = this.src[this.pos++]!;
    switch (c) {
      case '^':
      case '$':
        return EMPTY;
      case '.':
        return ANY;
      case '(':
        return this.group();
      case '[':
        return this.charClass();
      case '\\':
        return this.escape();
      case '*':
      case '+':
      case '?':
        throw new Unsupported('a quantifier without an atom');
      case '{': {
        if (/^\d+(,\d*)?\}/.test(this.src.slice(this.pos))) throw new Unsupported('a quantifier without an atom');
        return charSet(new Set([c.charCodeAt(0)]));
      }
      default:
        return charSet(new Set([lower(c.charCodeAt(0))]));
    }
  }

  private group(): Info {
    let lookaround = false;
    if (this.src.startsWith('?:', this.pos)) this.pos += 2;
    else if (this.src.startsWith('?=', this.pos) || this.src.startsWith('?!', this.pos)) {
      this.pos += 2;
      lookaround = true;
    } else if (this.src.startsWith('?<=', this.pos) || this.src.startsWith('?<!', this.pos)) {
      this.pos += 3;
      lookaround = true;
    } else if (this.src.startsWith('?<', this.pos)) {
      const close = this.src.indexOf('>', this.pos);
      if (close < 0) throw new Unsupported('an unterminated group name');
      this.pos = close + 1;
    } else if (this.peek() === '?') throw new Unsupported('an unknown group kind');
    const inner = this.disjunction();
    if (this.src[this.pos++] !== ')') throw new Unsupported('an unterminated group');
    // a lookaround consumes nothing; what it asserts is not used
    return lookaround ? EMPTY : inner;
  }

  private escape(): Info {
    const c = this.src[this.pos++];
    if (c === undefined) throw new Unsupported('a trailing backslash');
    switch (c) {
      case 'b':
      case 'B':
        return EMPTY;
      case 'd':
      case 'D':
      case 'w':
      case 'W':
      case 's':
      case 'S':
        return ANY;
      case 'k':
      case 'c':
        // a backreference by name, or a control escape (or, without a letter, `\c` itself)
        throw new Unsupported(`\\${c}`);
      default: {
        if (c >= '0' && c <= '9') {
          if (c === '0' && !/[0-9]/.test(this.peek() ?? '')) return charSet(new Set([0]));
          throw new Unsupported('a backreference or octal escape');
        }
        const code = this.escapedChar(c);
        return charSet(new Set([lower(code)]));
      }
    }
  }

  /** The character an escape (after the backslash and `c`) stands for. */
  private escapedChar(c: string): number {
    switch (c) {
      case 'n':
        return 0x0a;
      case 'r':
        return 0x0d;
      case 't':
        return 0x09;
      case 'v':
        return 0x0b;
      case 'f':
        return 0x0c;
      case 'x': {
        const h = /^[0-9a-fA-F]{2}/.exec(this.src.slice(this.pos));
        if (!h) throw new Unsupported('\\x without two hex digits');
        this.pos += 2;
        return parseInt(h[0], 16);
      }
      case 'u': {
        const h = /^[0-9a-fA-F]{4}/.exec(this.src.slice(this.pos));
        if (!h) throw new Unsupported('\\u without four hex digits');
        this.pos += 4;
        return parseInt(h[0], 16);
      }
      default:
        // an identity escape (`\.`, `\/`, …) stands for the character itself
        if (/[A-Za-z]/.test(c)) throw new Unsupported(`\\${c}`);
        return c.charCodeAt(0);
    }
  }

  private charClass(): Info {
    const negated = this.peek() === '^';
    if (negated) this.pos++;
    const chars = new Set<number>();
    let known = !negated;
    let prev = -1; // the last single character, for ranges
    for (;;) {
      const c = this.src[this.pos++];
      if (c === undefined) throw new Unsupported('an unterminated class');
      if (c === ']') break;
      let code: number;
      if (c === '\\') {
        const e = this.src[this.pos++];
        if (e === undefined) throw new Unsupported('a trailing backslash');
        if ('dDwWsS'.includes(e)) {
          known = false;
          prev = -1;
          continue;
        }
        if (e === 'b') code = 0x08;
        else if (e === '-') code = 0x2d;
        else if (e >= '0' && e <= '9') throw new Unsupported('a digit escape in a class');
        else if (e === 'c' || e === 'k') throw new Unsupported(`\\${e} in a class`);
        else code = this.escapedChar(e);
      } else if (c === '-' && prev >= 0 && this.peek() !== ']' && this.peek() !== undefined) {
        // a range prev-next
        const n = this.src[this.pos++]!;
        let hi: number;
        if (n === '\\') {
          const e = this.src[this.pos++];
          if (e === undefined || 'dDwWsSbck'.includes(e) || (e >= '0' && e <= '9'))
            throw new Unsupported('an escape ending a range');
          hi = e === '-' ? 0x2d : this.escapedChar(e);
        } else hi = n.charCodeAt(0);
        if (hi < prev) throw new Unsupported('a reversed range');
        if (hi - prev > 64) known = false;
        else for (let x = prev + 1; x <= hi; x++) chars.add(lower(x));
        prev = -1;
        continue;
      } else code = c.charCodeAt(0);
      chars.add(lower(code));
      prev = code;
    }
    return known ? charSet(chars) : ANY;
  }
}

/**
 * Does the pattern do bounded work whatever the text's length? True when it is anchored at the
 * start (`^`, no `m` flag, no top-level `|`) and repeats nothing without bound (`*`, `+`,
 * `{n,}`): it is then tried at one position only, over a bounded stretch (`^(?:4\d\d|5\d\d)$`
 * on a status code). Anything unclear is unbounded.
 */
export function boundedRegex(source: string, flags: string): boolean {
  if (!source.startsWith('^') || flags.includes('m')) return false;
  let depth = 0;
  for (let i = 1; i < source.length; i++) {
    const c = source[i];
    if (c === '\\') i++;
    else if (c === '[') {
      // skip the class: `]` right after `[` or `[^` closes it in JavaScript
      i++;
      if (source[i] === '^') i++;
      while (i < source.length && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
    } else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) return false;
    else if (c === '*' || c === '+') return false;
    else if (c === '{' && /^\{\d+,\}/.test(source.slice(i))) return false;
  }
  return true;
}

/**
 * The alternatives of a pattern that is one alternation at its top (`a|b|c`, or `(?:a|b|c)`
 * as a whole): a text matches the pattern exactly when it matches one of them, so each can be
 * run on its own, behind its own required literals. Null when the pattern is not such an
 * alternation, or when splitting could change a match: backreferences (their group numbers
 * would move) and anything the required-literal parser does not understand.
 */
export function topLevelBranches(source: string, flags: string): string[] | null {
  if (flags.includes('u') || flags.includes('v') || /\\[1-9k]/.test(source)) return null;
  let body = source;
  const whole = groupEnd(source, 0);
  if (source.startsWith('(?:') && whole === source.length - 1) body = source.slice(3, -1);
  const out: string[] = [];
  let from = 0;
  let depth = 0;
  for (let i = 0; i < body.length; i++) {
    const c = body[i];
    if (c === '\\') i++;
    else if (c === '[') i = classEnd(body, i);
    else if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) {
      out.push(body.slice(from, i));
      from = i + 1;
    }
    if (i < 0 || depth < 0) return null;
  }
  out.push(body.slice(from));
  if (depth !== 0 || out.length < 2) return null;
  // each must parse as the required-literal parser reads patterns (a check that the cut is clean)
  for (const b of out) {
    try {
      const p = new Parser(b);
      p.disjunction();
      if (p.pos !== b.length) return null;
    } catch (err) {
      if (err instanceof Unsupported) return null;
      throw err;
    }
  }
  return out;
}

/** The index of the `]` closing the class opened at `open`; -1 when it is not closed. */
function classEnd(s: string, open: number): number {
  let i = open + 1;
  if (s[i] === '^') i++;
  // `]` right after `[` or `[^` closes the class in JavaScript (an empty class)
  for (; i < s.length; i++) {
    if (s[i] === '\\') i++;
    else if (s[i] === ']') return i;
  }
  return -1;
}

/** The index of the `)` closing the group opened at `open` (-1 when `open` is no `(` or it is not closed). */
function groupEnd(s: string, open: number): number {
  if (s[open] !== '(') return -1;
  let depth = 0;
  for (let i = open; i < s.length; i++) {
    const c = s[i];
    if (c === '\\') i++;
    else if (c === '[') {
      i = classEnd(s, i);
      if (i < 0) return -1;
    } else if (c === '(') depth++;
    else if (c === ')' && --depth === 0) return i;
  }
  return -1;
}
