/**
 * Sigma condition expressions: `and`, `or`, `not`, parentheses, `1 of X*`, `all of X*`,
 * `1 of them`, `all of them`, and one trailing aggregation `| count([field]) [by field] op N`.
 * Parsed once into a tree of the search identifiers' predicates; `not` binds tighter than
 * `and`, which binds tighter than `or`.
 */
export type Pred<E> = (ev: E) => boolean;

/** At least one of these (field, literal) pairs occurs (field text lower-cased contains literal). */
export type Requirement = { field: string; lit: string }[];

/**
 * What a predicate needs to be true: every one of these requirements holds. Kept beside each
 * compiled predicate so a rule gets such a list, checked against a per-event multi-literal
 * scan before the rule runs. Most selective first (see `conjunction`).
 */
export type Requirements = Requirement[];
export const REQUIREMENTS = new WeakMap<object, Requirements>();

/** A rule keeps this many requirements at most: the prefilter tracks them in a bit mask. */
export const MAX_REQUIREMENTS = 8;

/** Longer shortest literal first, then fewer literals: the guess at what is rarest in a line. */
function selectivity(r: Requirement): number {
  return Math.min(...r.map((x) => x.lit.length)) * 100 - r.length;
}

/**
 * AND: every part's requirements are necessary. Keeping them all (`get` alone is in every GET
 * request; with `={{` beside it the rule is rare) beats guessing which one is selective.
 */
export function reqAll(parts: object[]): Requirements | undefined {
  return conjunction(parts.map((p) => REQUIREMENTS.get(p)));
}

/** Several lists that all hold, as one: the most selective requirements first, at most MAX_REQUIREMENTS. */
export function conjunction(lists: (Requirements | undefined)[]): Requirements | undefined {
  const all = lists.flatMap((r) => r ?? []);
  if (all.length === 0) return undefined;
  return all
    .map((r, i) => ({ r, i, score: selectivity(r) }))
    .sort((a, b) => b.score - a.score || a.i - b.i)
    .slice(0, MAX_REQUIREMENTS)
    .map((x) => x.r);
}

/** OR: the union of each alternative's most selective requirement, known only when every alternative has one. */
export function reqAny(parts: object[]): Requirements | undefined {
  const out: Requirement = [];
  for (const p of parts) {
    const r = REQUIREMENTS.get(p);
    if (!r) return undefined;
    out.push(...r[0]!);
  }
  return [out];
}

/**
 * Predicates that run a regular expression (or hold one that does). AND and OR evaluate their
 * cheap parts first: `panels and missing` then asks the status code before the long regex.
 * Sigma predicates have no side effects, so the order changes only the cost.
 */
export const COSTLY = new WeakSet<object>();

/**
 * OR and AND of predicates, in the order given. Loops, not `preds.some((p) => p(ev))`: that
 * makes a closure on every call, a few hundred bytes a line for the collector.
 */
export function anyOf<E>(preds: readonly Pred<E>[]): Pred<E> {
  if (preds.length === 1) return preds[0]!;
  if (preds.length === 2) {
    const [a, b] = preds as [Pred<E>, Pred<E>];
    return (ev) => a(ev) || b(ev);
  }
  return (ev) => {
    for (let i = 0; i < preds.length; i++) if (preds[i]!(ev)) return true;
    return false;
  };
}

export function allOf<E>(preds: readonly Pred<E>[]): Pred<E> {
  if (preds.length === 1) return preds[0]!;
  if (preds.length === 2) {
    const [a, b] = preds as [Pred<E>, Pred<E>];
    return (ev) => a(ev) && b(ev);
  }
  return (ev) => {
    for (let i = 0; i < preds.length; i++) if (!preds[i]!(ev)) return false;
    return true;
  };
}

export function cheapFirst<T extends object>(parts: T[]): T[] {
  return [...parts.filter((p) => !COSTLY.has(p)), ...parts.filter((p) => COSTLY.has(p))];
}

export function withCost<T extends object>(p: T, parts: object[]): T {
  if (parts.some((x) => COSTLY.has(x))) COSTLY.add(p);
  return p;
}

export function withReq<T extends object>(p: T, r: Requirements | undefined): T {
  if (r && r.length) REQUIREMENTS.set(p, r);
  return p;
}

export class SigmaConditionError extends Error {}

export interface Aggregation {
  /** count(field): distinct values of this field; null: count of events. */
  distinct: string | null;
  by: string | null;
  op: '>' | '>=' | '<' | '<=' | '==';
  value: number;
}

export interface ParsedCondition<E> {
  match: Pred<E>;
  aggregation: Aggregation | null;
}

type Tok =
  | { t: 'lp' | 'rp' | 'and' | 'or' | 'not' }
  | { t: 'of'; quant: 'one' | 'all'; target: string }
  | { t: 'id'; name: string };

function tokenize(src: string): Tok[] {
  const words = src.replace(/\(/g, ' ( ').replace(/\)/g, ' ) ').trim().split(/\s+/).filter(Boolean);
  const out: Tok[] = [];
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    const lw = w.toLowerCase();
    if (w === '(') out.push({ t: 'lp' });
    else if (w === ')') out.push({ t: 'rp' });
    else if (lw === 'and' || lw === 'or' || lw === 'not') out.push({ t: lw });
    else if ((lw === '1' || lw === 'all' || lw === 'any') && words[i + 1]?.toLowerCase() === 'of' && words[i + 2]) {
      out.push({ t: 'of', quant: lw === 'all' ? 'all' : 'one', target: words[i + 2]! });
      i += 2;
    } else out.push({ t: 'id', name: w });
  }
  return out;
}

function globToRe(g: string): RegExp {
  return new RegExp(
    `^${g
      .replace(/[.+^${}()|[\]\\]/g, '\\$&')
      .replace(/\*/g, '.*')
      .replace(/\?/g, '.')}$`,
  );
}

export function parseCondition<E>(src: string, searches: Map<string, Pred<E>>): ParsedCondition<E> {
  const bar = src.indexOf('|');
  const expr = bar < 0 ? src : src.slice(0, bar);
  const aggregation = bar < 0 ? null : parseAggregation(src.slice(bar + 1));
  const toks = tokenize(expr);
  let pos = 0;
  const peek = (): Tok | undefined => toks[pos];

  const resolve = (tok: Tok & { t: 'of' }): Pred<E>[] => {
    const names = [...searches.keys()];
    const chosen =
      tok.target === 'them'
        ? names.filter((n) => !n.startsWith('_'))
        : names.filter((n) => globToRe(tok.target).test(n));
    if (chosen.length === 0)
      throw new SigmaConditionError(
        `"${tok.quant === 'all' ? 'all' : '1'} of ${tok.target}" names no search identifier`,
      );
    return chosen.map((n) => searches.get(n)!);
  };

  const primary = (): Pred<E> => {
    const tok = toks[pos++];
    if (!tok) throw new SigmaConditionError('condition ends too early');
    switch (tok.t) {
      case 'lp': {
        const inner = orExpr();
        if (toks[pos++]?.t !== 'rp') throw new SigmaConditionError('missing ")"');
        return inner;
      }
      case 'not': {
        const inner = primary();
        return withCost((ev: E) => !inner(ev), [inner]);
      }
      case 'of': {
        const preds = resolve(tok);
        if (preds.length === 1) return preds[0]!;
        const ordered = cheapFirst(preds);
        if (tok.quant === 'all') return withCost(withReq(allOf(ordered), reqAll(preds)), preds);
        return withCost(withReq(anyOf(ordered), reqAny(preds)), preds);
      }
      case 'id': {
        const p = searches.get(tok.name);
        if (!p) throw new SigmaConditionError(`search identifier "${tok.name}" is not defined`);
        return p;
      }
      default:
        throw new SigmaConditionError(`unexpected "${tok.t}"`);
    }
  };
  const andExpr = (): Pred<E> => {
    const parts = [primary()];
    while (peek()?.t === 'and') {
      pos++;
      parts.push(primary());
    }
    if (parts.length === 1) return parts[0]!;
    return withCost(withReq(allOf(cheapFirst(parts)), reqAll(parts)), parts);
  };
  const orExpr = (): Pred<E> => {
    const parts = [andExpr()];
    while (peek()?.t === 'or') {
      pos++;
      parts.push(andExpr());
    }
    if (parts.length === 1) return parts[0]!;
    return withCost(withReq(anyOf(cheapFirst(parts)), reqAny(parts)), parts);
  };
  const match = orExpr();
  if (pos !== toks.length)
    throw new SigmaConditionError(`unexpected "${JSON.stringify(toks[pos])}" after a complete condition`);
  return { match, aggregation };
}

function parseAggregation(src: string): Aggregation {
  const s = src.trim();
  if (/^near\b/i.test(s)) throw new SigmaConditionError('the "near" correlation is not supported');
  const m = /^count\(\s*([\w.\-]*)\s*\)(?:\s+by\s+([\w.\-]+))?\s*(>=|<=|==|>|<)\s*(\d+)$/i.exec(s);
  if (!m) throw new SigmaConditionError(`aggregation "${s}" is not supported (count() [by field] op N is)`);
  return { distinct: m[1] || null, by: m[2] ?? null, op: m[3] as Aggregation['op'], value: Number(m[4]) };
}
