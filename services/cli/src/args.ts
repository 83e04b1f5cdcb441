import { ERR_USAGE } from './errors.js';

/**
 * The command line, declared once: every command is a `CommandSpec` with its flags
 * ({name, type, env, default, help}), and the parser, the validation, `--help` and the
 * "did you mean" suggestions all read the same declaration (see commands.ts for the table).
 */

export type FlagType = 'string' | 'boolean' | 'int' | 'number' | 'duration';

export interface FlagSpec {
  /** Without the leading dashes: `data-dir`. */
  readonly name: string;
  readonly type: FlagType;
  readonly short?: string;
  /** The value's placeholder in help: FILE, DIR, N. */
  readonly value?: string;
  readonly multiple?: boolean;
  /** The environment variable that gives the value when the flag is absent. */
  readonly env?: string;
  /** For a `multiple` flag: the separator of the list in the environment variable (default ","). */
  readonly envSeparator?: string;
  /** For a `multiple` flag: the environment's entries come first and the flags' are added (instead of replacing them). */
  readonly envAppends?: boolean;
  readonly default?: string | number | boolean;
  /** How the default reads in help, when it is not a plain value (computed, or "none: …"). */
  readonly defaultText?: string;
  readonly choices?: readonly string[];
  readonly min?: number;
  readonly max?: number;
  readonly required?: boolean;
  readonly help: string;
}

export interface ArgSpec {
  readonly name: string;
  readonly help: string;
  readonly required?: boolean;
  readonly variadic?: boolean;
}

export interface CommandSpec {
  readonly name: string;
  readonly summary: string;
  /** Paragraphs printed under the usage line. */
  readonly description?: string;
  readonly args?: readonly ArgSpec[];
  readonly flags?: readonly FlagSpec[];
  readonly subcommands?: readonly CommandSpec[];
  readonly run?: (inv: Invocation) => Promise<number>;
}

export type FlagSource = 'flag' | 'env' | 'default';
type Value = string | number | boolean | string[];

/** A parsed, validated command line: typed getters over the flags, with where each value came from. */
export class Invocation {
  constructor(
    /** The command words, e.g. ["blocks", "list"]. */
    readonly path: readonly string[],
    readonly spec: CommandSpec,
    private readonly values: ReadonlyMap<string, { value: Value; source: FlagSource }>,
    readonly args: readonly string[],
  ) {}

  has(name: string): boolean {
    return this.values.has(this.known(name));
  }
  /** The value only when the user gave it (flag or environment), not the default. */
  explicit(name: string): Value | undefined {
    const v = this.values.get(this.known(name));
    return v && v.source !== 'default' ? v.value : undefined;
  }
  source(name: string): FlagSource | undefined {
    return this.values.get(this.known(name))?.source;
  }
  str(name: string): string | undefined {
    const v = this.values.get(this.known(name))?.value;
    return v === undefined ? undefined : String(v);
  }
  bool(name: string): boolean {
    return this.values.get(this.known(name))?.value === true;
  }
  num(name: string): number | undefined {
    const v = this.values.get(this.known(name))?.value;
    return typeof v === 'number' ? v : undefined;
  }
  list(name: string): string[] {
    const v = this.values.get(this.known(name))?.value;
    return Array.isArray(v) ? v : v === undefined ? [] : [String(v)];
  }
  private known(name: string): string {
    if (!(this.spec.flags ?? []).some((f) => f.name === name))
      throw new Error(`BUG: "${this.path.join(' ')}" declares no flag --${name}`);
    return name;
  }
}

export const HELP_FLAG: FlagSpec = { name: 'help', short: 'h', type: 'boolean', help: 'this text' };

/** Damerau-Levenshtein distance (optimal string alignment): typos, swapped letters. */
function distance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i]![j] = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1])
        d[i]![j] = Math.min(d[i]![j]!, d[i - 2]![j - 2]! + 1);
    }
  }
  return d[a.length]![b.length]!;
}

/** The nearest of `known` to `word`, when it is near enough to be what was meant. */
export function nearest(word: string, known: readonly string[]): string | undefined {
  let best: { w: string; d: number } | undefined;
  for (const k of known) {
    const d = k.startsWith(word) && word.length >= 3 ? 0.5 : distance(word, k);
    if (!best || d < best.d) best = { w: k, d };
  }
  return best && best.d <= Math.max(2, Math.floor(word.length / 3)) ? best.w : undefined;
}

export const didYouMean = (
  word: string,
  known: readonly string[],
  render: (s: string) => string = (s) => `"${s}"`,
): string => {
  const n = nearest(word, known);
  return n ? `; did you mean ${render(n)}?` : '';
};

/** Milliseconds in "90s", "15m", "2h", "1d", "500ms" (a bare number is seconds). */
export function parseDuration(text: string): number | null {
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)?$/.exec(text.trim());
  if (!m) return null;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 }[(m[2] ?? 's') as 'ms'];
  return Math.round(Number(m[1]) * unit);
}

const cmdName = (path: readonly string[]) => `cordon ${path.join(' ')}`;

function convert(flag: FlagSpec, raw: string, from: string, path: readonly string[]): string | number {
  const bad = (what: string) =>
    ERR_USAGE(
      `${from === 'flag' ? `--${flag.name}` : `${flag.env} (for --${flag.name})`} ${what}, not "${raw}" (${cmdName(path)} --help)`,
    );
  if (flag.choices && !flag.choices.includes(raw))
    throw bad(`must be one of ${flag.choices.join(', ')}${didYouMean(raw, flag.choices)}`);
  let n: number;
  switch (flag.type) {
    case 'int':
      n = Number(raw);
      if (!/^-?\d+$/.test(raw.trim()) || !Number.isSafeInteger(n)) throw bad('must be a whole number');
      break;
    case 'number':
      n = Number(raw);
      if (raw.trim() === '' || !Number.isFinite(n)) throw bad('must be a number');
      break;
    case 'duration': {
      const ms = parseDuration(raw);
      if (ms === null) throw bad('must be a duration such as 30s, 15m, 2h or 1d');
      n = ms;
      break;
    }
    default:
      return raw;
  }
  if (flag.min !== undefined && n < flag.min) throw bad(`must be at least ${flag.min}`);
  if (flag.max !== undefined && n > flag.max) throw bad(`must be at most ${flag.max}`);
  return n;
}

/**
 * Parse `argv` (after the command words) against `spec`: `--flag value`, `--flag=value`,
 * `-x value`, booleans without a value, `--` ends the flags. Unknown flags are usage errors
 * that suggest the nearest known one. Returns null for `--help`/`-h` (the caller prints help).
 */
export function parseInvocation(
  path: readonly string[],
  spec: CommandSpec,
  argv: readonly string[],
  env: NodeJS.ProcessEnv,
): Invocation | null {
  const flags = [...(spec.flags ?? []), HELP_FLAG];
  const byName = new Map(flags.map((f) => [f.name, f]));
  const byShort = new Map(flags.filter((f) => f.short).map((f) => [f.short!, f]));
  const given = new Map<string, string[] | true>();
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const tok = argv[i]!;
    if (tok === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (!tok.startsWith('-') || tok === '-' || /^-\d/.test(tok)) {
      args.push(tok);
      continue;
    }
    const long = tok.startsWith('--');
    const eq = tok.indexOf('=');
    const name = long ? tok.slice(2, eq > 0 ? eq : undefined) : tok.slice(1, 2);
    const flag = long ? byName.get(name) : byShort.get(name);
    if (!flag) {
      const hint = didYouMean(
        long ? name : tok.slice(1),
        flags.map((f) => f.name),
        (s) => `--${s}`,
      );
      throw ERR_USAGE(`unknown flag "${long ? `--${name}` : tok}" for "${cmdName(path)}"${hint}`);
    }
    if (flag.type === 'boolean') {
      if (long && eq > 0) throw ERR_USAGE(`--${flag.name} takes no value`);
      if (!long && tok.length > 2) throw ERR_USAGE(`unknown flag "${tok}" for "${cmdName(path)}"`);
      given.set(flag.name, true);
      continue;
    }
    let value: string | undefined;
    if (long && eq > 0) value = tok.slice(eq + 1);
    else if (!long && tok.length > 2) value = tok.slice(2);
    else {
      value = argv[++i];
      if (value === undefined) throw ERR_USAGE(`--${flag.name} needs a value (${flag.value ?? flag.type})`);
    }
    const prev = given.get(flag.name);
    if (prev && !flag.multiple) throw ERR_USAGE(`--${flag.name} is given twice; it takes one value`);
    given.set(flag.name, [...(Array.isArray(prev) ? prev : []), value]);
  }
  if (given.has('help')) return null;

  const values = new Map<string, { value: Value; source: FlagSource }>();
  for (const f of spec.flags ?? []) {
    const fromFlag = given.get(f.name);
    const envText = f.env ? env[f.env] : undefined;
    const fromEnv = envText !== undefined && envText !== '' ? envText : undefined;
    if (f.type === 'boolean') {
      if (fromFlag) values.set(f.name, { value: true, source: 'flag' });
      else if (fromEnv !== undefined) values.set(f.name, { value: /^(1|true|yes|on)$/i.test(fromEnv), source: 'env' });
      else if (f.default !== undefined) values.set(f.name, { value: f.default, source: 'default' });
      continue;
    }
    const fromEnvList =
      fromEnv === undefined ? [] : f.multiple ? fromEnv.split(f.envSeparator ?? ',').filter(Boolean) : [fromEnv];
    let raw: string[];
    let source: FlagSource;
    if (Array.isArray(fromFlag)) {
      raw = f.envAppends ? [...fromEnvList, ...fromFlag] : fromFlag;
      source = 'flag';
    } else if (fromEnvList.length) {
      raw = fromEnvList;
      source = 'env';
    } else if (f.default !== undefined) {
      raw = [String(f.default)];
      source = 'default';
    } else {
      if (f.required)
        throw ERR_USAGE(
          `"${cmdName(path)}" needs --${f.name}${f.value ? ` ${f.value}` : ''}${f.env ? ` (or ${f.env})` : ''}`,
        );
      continue;
    }
    const conv = raw.map((r) => convert(f, r, source === 'env' ? 'env' : 'flag', path));
    values.set(f.name, { value: f.multiple ? conv.map(String) : conv[0]!, source });
  }

  const specArgs = spec.args ?? [];
  const required = specArgs.filter((a) => a.required).length;
  const variadic = specArgs.some((a) => a.variadic);
  const shape = specArgs.map((a) => (a.variadic ? `${a.name}…` : a.name)).join(' ');
  if (args.length < required) throw ERR_USAGE(`"${cmdName(path)}" needs ${shape || 'no arguments'}`);
  if (!variadic && args.length > specArgs.length) {
    throw ERR_USAGE(
      `"${cmdName(path)}" takes ${specArgs.length ? shape : 'no arguments'}, not "${args.slice(specArgs.length).join(' ')}"`,
    );
  }
  return new Invocation(path, spec, values, args);
}

// ------------------------------------------------------------------ help

function flagLabel(f: FlagSpec): string {
  const base = `${f.short ? `-${f.short}, ` : ''}--${f.name}`;
  if (f.type === 'boolean') return base;
  return `${base} ${f.value ?? (f.choices ? f.choices.join('|') : f.type === 'duration' ? 'DURATION' : f.type === 'string' ? 'VALUE' : 'N')}`;
}

function flagNote(f: FlagSpec): string {
  const env = f.env ? f.env : 'no variable';
  const def = f.defaultText ?? (f.default !== undefined ? String(f.default) : f.type === 'boolean' ? 'off' : 'none');
  return `(${env}; ${f.required ? 'required' : `default ${def}`}${f.multiple ? '; repeatable' : ''})`;
}

/** Words wrapped at `width`, each line after the first indented by `indent`. */
function wrap(text: string, width: number, indent: number): string {
  const lines: string[] = [];
  let line = '';
  for (const w of text.split(/\s+/).filter(Boolean)) {
    if (line && line.length + 1 + w.length > width) {
      lines.push(line);
      line = w;
    } else line = line ? `${line} ${w}` : w;
  }
  if (line) lines.push(line);
  return lines.join(`\n${' '.repeat(indent)}`);
}

/** `--help` of one command: usage, description, every flag with its variable and default. */
export function renderHelp(path: readonly string[], spec: CommandSpec): string {
  const out: string[] = [`${cmdName(path)} — ${spec.summary}`, '', 'Usage:'];
  if (spec.subcommands?.length) {
    for (const s of spec.subcommands)
      out.push(`  ${cmdName([...path, s.name])}${s.args?.length ? ` ${argsShape(s)}` : ''} [flags]`);
    out.push('', 'Commands:');
    const w = Math.max(...spec.subcommands.map((s) => s.name.length));
    for (const s of spec.subcommands) out.push(`  ${s.name.padEnd(w)}  ${s.summary}`);
    out.push('', `"${cmdName([...path, 'COMMAND'])} --help" describes each.`);
  } else {
    out.push(
      `  ${cmdName(path)}${spec.args?.length ? ` ${argsShape(spec)}` : ''}${spec.flags?.length ? ' [flags]' : ''}`,
    );
  }
  if (spec.description) out.push('', spec.description.trimEnd());
  if (spec.args?.length) {
    out.push('', 'Arguments:');
    const w = Math.max(...spec.args.map((a) => a.name.length + (a.variadic ? 1 : 0)));
    for (const a of spec.args)
      out.push(`  ${(a.variadic ? `${a.name}…` : a.name).padEnd(w)}  ${wrap(a.help, 96 - w, w + 4)}`);
  }
  const flags = [...(spec.subcommands?.length ? [] : (spec.flags ?? [])), HELP_FLAG];
  out.push('', 'Flags (environment variable; default):');
  const labels = flags.map(flagLabel);
  const w = Math.min(28, Math.max(...labels.map((l) => l.length)));
  flags.forEach((f, i) => {
    const label = labels[i]!;
    const text = f === HELP_FLAG ? f.help : `${f.help} ${flagNote(f)}`;
    const pad = label.length > w ? `\n${' '.repeat(w + 4)}` : ' '.repeat(w - label.length + 2);
    out.push(`  ${label}${pad}${wrap(text, 98 - w, w + 4)}`);
  });
  return `${out.join('\n')}\n`;
}

function argsShape(spec: CommandSpec): string {
  return (spec.args ?? [])
    .map((a) => {
      const n = a.variadic ? `${a.name}…` : a.name;
      return a.required ? n : `[${n}]`;
    })
    .join(' ');
}

/** Every command path of the table, depth first: ["up"], ["blocks"], ["blocks", "list"], … */
export function commandPaths(table: readonly CommandSpec[], prefix: readonly string[] = []): string[][] {
  return table.flatMap((c) => [[...prefix, c.name], ...commandPaths(c.subcommands ?? [], [...prefix, c.name])]);
}
