/**
 * The text of Suricata rule files, read the way Suricata reads it, for the parts of Cordon that
 * look at rules without compiling them (counting a set's rules, the recommend stage's fitting,
 * the dpi's per-VM selections). Rule text is input from a download: nothing here throws on it.
 */

/** The actions a rule line can start with. */
export const RULE_ACTIONS: readonly string[] = [
  'alert',
  'drop',
  'reject',
  'rejectsrc',
  'rejectdst',
  'rejectboth',
  'pass',
];

const ACTIONS_RE = RULE_ACTIONS.join('|');
/** A line (trimmed at its start) that is a rule. */
export const RULE_LINE = new RegExp(`^(?:${ACTIONS_RE})\\s`);
/** A commented-out rule (`# alert … sid:…`): in the set, not enabled. */
export const DISABLED_RULE_LINE = new RegExp(`^#+\\s*(?:${ACTIONS_RE})\\s.*\\bsid\\s*:`);

/**
 * The logical lines of a rule file: a line ending in `\` continues on the next one, as in
 * Suricata; `\r` line ends are dropped. `line` is where the logical line starts (1-based),
 * `text` is trimmed. Empty lines are left out; comment lines are not (see DISABLED_RULE_LINE).
 */
export function* ruleFileLines(text: string): Generator<{ line: number; text: string }> {
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i;
    let l = lines[i]!.replace(/\r$/, '');
    while (l.endsWith('\\') && i + 1 < lines.length) l = l.slice(0, -1) + lines[++i]!.replace(/\r$/, '');
    const t = l.trim();
    if (t) yield { line: start + 1, text: t };
  }
}

export interface RuleOption {
  /** Lower-cased. */
  key: string;
  /** Trimmed, quotes and escapes kept; null for a keyword without a value (`nocase`). */
  value: string | null;
}

/**
 * Split `key:value; key; …` at semicolons that are not escaped (`\;`), as Suricata does:
 * quotes do not protect a `;` (and a pcre may hold an unescaped `"`). Null when the last option
 * is not closed by `;`.
 */
export function splitOptions(body: string): RuleOption[] | null {
  const out: RuleOption[] = [];
  let cur = '';
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (c === '\\' && i + 1 < body.length) {
      cur += c + body[i + 1]!;
      i++;
      continue;
    }
    if (c === ';') {
      const opt = cur.trim();
      cur = '';
      if (!opt) continue;
      const colon = opt.indexOf(':');
      out.push(
        colon < 0
          ? { key: opt.toLowerCase(), value: null }
          : { key: opt.slice(0, colon).trim().toLowerCase(), value: opt.slice(colon + 1).trim() },
      );
      continue;
    }
    cur += c;
  }
  // every option ends with ";"
  if (cur.trim() !== '') return null;
  return out;
}

/**
 * The options of a rule line (trimmed): the text between its first `(` and the `)` that ends
 * it, split. Null when the line has no such parentheses or its options do not split.
 */
export function ruleOptions(line: string): RuleOption[] | null {
  const open = line.indexOf('(');
  if (open < 0 || !line.endsWith(')')) return null;
  return splitOptions(line.slice(open + 1, -1));
}

/**
 * The sid of a rule line: its `sid` option, when that is a number of at most 10 digits
 * (Suricata's sid is a 32-bit integer); null for a line that is not a rule or has no such sid.
 * A `msg` or `content` that spells `sid:` is an option of its own and is not taken for it.
 */
export function ruleSid(line: string): number | null {
  if (!RULE_LINE.test(line)) return null;
  const v = ruleOptions(line)?.find((o) => o.key === 'sid')?.value;
  return v && /^\d{1,10}$/.test(v) ? Number(v) : null;
}
