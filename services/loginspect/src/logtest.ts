import { statSync } from 'node:fs';
import { parseInspectorConfig } from './config.js';
import { kindNames, SPAN_SLOTS, type LogEvent } from './decode.js';
import { ERR_LOGINSPECT_USAGE } from './errors.js';
import { LogInspector, type InspectState, type LineMeta } from './inspector.js';
import { forEachLines } from './lines.js';
import { Coverage } from './coverage.js';
import type { Fail2banLoad } from './fail2ban.js';

/**
 * `cordon logtest --log FILE [--rules DIR]… [--sigma DIR]… [--fail2ban DIR] [--year YYYY]
 * [--explain [--line N]] [--no-coverage]`: run a log file through the inspector and print one
 * JSON line per detection (`line`, `rule`, `src_ip`), like fail2ban-regex does for a filter.
 * `--rules` replaces the built-in rules with the given folders (Cordon or Sigma YAML; a
 * document with `cordon: { never_flag: true }` is a never-flag entry); `--sigma` adds Sigma
 * folders on top. Refused rules are listed on stderr. Year-less syslog stamps take their year
 * from the file's mtime (or --year).
 *
 * `--explain` adds, for every line some rule matched (or only line N), a JSON record saying
 * which decoder read it, the fields it found, and for each matching rule the searches that
 * matched, the address and where it came from, and whether a never-flag entry silenced it.
 * After the detections, a coverage summary goes to stderr: lines read, lines per decoder, the
 * programs seen, and the most frequent shapes of the lines no decoder understood.
 */
export interface LogtestOptions {
  log: string;
  /** Folders of Cordon or Sigma YAML rules that replace the built-in ones (none: the built-in rules). */
  rules: string[];
  /** Sigma folders added on top. */
  sigma: string[];
  /** The year of year-less syslog stamps (default: the file's mtime). */
  year?: number;
  /** What the file is, for format detection (default: its path). */
  hint?: string;
  quiet: boolean;
  stats: boolean;
  /** Explain every matched line (or only `line`). */
  explain: boolean;
  /** Explain this line number only. */
  line?: number;
  /** A fail2ban configuration folder (its filter.d is loaded). */
  fail2ban?: string;
  /** Only these fail2ban filters (default: every filter that loads). */
  fail2banFilters: string[];
  /** Without the built-in rules even when no --rules are given. */
  noBuiltin: boolean;
  /** No coverage summary on stderr. */
  noCoverage: boolean;
}

/** `cordon logtest` (the CLI parses and validates its flags from its command table). */
export async function logtestCommand(values: LogtestOptions): Promise<number> {
  if (!values.log) throw ERR_LOGINSPECT_USAGE('--log FILE is required');
  const onlyLine = values.line ?? null;
  if (onlyLine !== null && !(Number.isInteger(onlyLine) && onlyLine > 0))
    throw ERR_LOGINSPECT_USAGE(`--line ${onlyLine} is not a line number`);
  const config = parseInspectorConfig({
    builtinRules: !values.rules.length && !values.noBuiltin,
    ruleDirs: values.rules,
    sigmaDirs: values.sigma,
    fail2ban: values.fail2ban ? { dir: values.fail2ban, filters: values.fail2banFilters } : null,
  });
  const started = process.hrtime.bigint();
  const inspector = LogInspector.fromConfig(config);
  const setupMs = Number(process.hrtime.bigint() - started) / 1e6;
  for (const r of inspector.rules.refused)
    if (!r.id.startsWith('fail2ban-'))
      process.stderr.write(`logtest: refused ${r.id || '(no id)'} ${r.file}: ${r.reason}\n`);
  if (inspector.fail2ban) process.stderr.write(fail2banReport(inspector.fail2ban));
  let refMs = statSync(values.log).mtimeMs;
  if (values.year !== undefined) refMs = Date.UTC(values.year, 11, 31, 23, 59, 59);
  const state = inspector.newState();
  const meta = { refMs, hint: values.hint ?? values.log };
  let out: string[] = [];
  const flush = (): void => {
    if (out.length) process.stdout.write(out.join(''));
    out = [];
  };
  const coverage = values.noCoverage ? null : new Coverage();
  const explain = values.explain === true || onlyLine !== null;
  const t0 = process.hrtime.bigint();
  const lines = forEachLines(values.log, (batch, first, bytes) => {
    inspector.prepare(batch, bytes);
    for (let k = 0; k < batch.length; k++) {
      const line = batch[k]!;
      const no = first + k;
      const x =
        explain && (onlyLine === null || onlyLine === no)
          ? explainRecord(inspector, state, line, meta, no, onlyLine === no)
          : null;
      const r = inspector.inspect(state, line, meta, k);
      coverage?.add(r.event);
      if (x) {
        x['reported'] = r.detections.map((d) => d.rule.id);
        out.push(`${JSON.stringify(x)}\n`);
      }
      if (values.quiet) continue;
      for (const d of r.detections) {
        const rec: Record<string, unknown> = {
          line: no,
          rule: { id: d.rule.id, title: d.rule.title, level: d.rule.level },
          src_ip: d.srcIp,
        };
        if (d.crossing) rec['threshold'] = { count: d.crossing.count, window_s: d.crossing.windowMs / 1000 };
        const b = r.blocks.find((x) => x.rule === d.rule);
        if (b) rec['block'] = { ip: b.ip, ttl_s: b.ttlMs / 1000, offense: b.offense };
        out.push(`${JSON.stringify(rec)}\n`);
      }
      if (out.length > 512) flush();
    }
  });
  flush();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (coverage) process.stderr.write(coverage.summary());
  if (values.stats) {
    const c = state.counters;
    process.stderr.write(
      `logtest: ${inspector.rules.rules.length} rules loaded, ${inspector.rules.refused.length} refused (setup ${setupMs.toFixed(0)} ms); ` +
        `${lines} lines in ${secs.toFixed(3)} s (${Math.round(lines / secs)} lines/s); ${c.detections} detections, ${c.blocks} blocks\n`,
    );
  }
  return 0;
}

/** The `--explain` record of one line; null when no rule matched it (and it was not asked for by number). */
function explainRecord(
  inspector: LogInspector,
  state: InspectState,
  line: string,
  meta: LineMeta,
  no: number,
  always: boolean,
): Record<string, unknown> | null {
  const { event, explanations } = inspector.explain(state, line, meta);
  if (explanations.length === 0 && !always) return null;
  const never = explanations.find((e) => e.rule.neverFlag);
  return {
    line: no,
    explain: {
      decoder: event.decoder ?? 'text',
      kinds: kindNames(event.kinds),
      program: event.program,
      ts: event.ts === null ? null : new Date(event.ts).toISOString(),
      fields: fieldsOf(event),
      matched: explanations.map((e) => ({
        rule: e.rule.id,
        title: e.rule.title,
        file: e.rule.file,
        selections: e.selections,
        src_ip: e.srcIp,
        address_from: e.addressFrom,
        never_flag: e.rule.neverFlag || undefined,
        threshold: e.rule.threshold
          ? { count: e.rule.threshold.count, window_s: e.rule.threshold.windowMs / 1000, group: e.rule.threshold.group }
          : undefined,
      })),
      suppressed_by: never ? never.rule.id : null,
    },
  };
}

/** The fields a rule can read: an access line's are computed on demand (read each once here). */
function fieldsOf(ev: LogEvent): Record<string, string> {
  const out: Record<string, string> = {};
  const names = ev.spans ? [...SPAN_SLOTS.keys(), 'cs-host', 'c-ip'] : Object.keys(ev.fields);
  for (const k of names) {
    if (k === 'keywords' || k === 'Message' || (k === 'cordon-uri' && !ev.spans)) continue;
    const v = ev.fields[k];
    if (typeof v === 'string' && v !== '') out[k] = v.length > 300 ? `${v.slice(0, 300)}…` : v;
  }
  return out;
}

/** The fail2ban load report: every filter loaded (with its threshold) or not, and why. */
export function fail2banReport(load: Fail2banLoad): string {
  const out: string[] = [];
  const loaded = load.reports.filter((r) => r.loaded);
  const includes = load.reports.filter((r) => r.include);
  out.push(
    `logtest: fail2ban: ${loaded.length} of ${load.reports.length - includes.length} filters loaded${includes.length ? ` (${includes.length} include files skipped: ${includes.map((r) => r.filter).join(', ')})` : ''}`,
  );
  for (const r of load.reports) {
    if (r.include) continue;
    if (r.loaded) {
      const t = r.threshold
        ? `; ${r.threshold.maxretry} in ${r.threshold.findtimeS} s, ban ${r.threshold.bantimeS} s${r.threshold.jail ? ` (jail ${r.threshold.jail})` : ''}`
        : '';
      out.push(
        `logtest: fail2ban filter ${r.filter}: loaded, ${r.failregex} failregex, ${r.ignoreregex} ignoreregex${t}`,
      );
    } else out.push(`logtest: fail2ban filter ${r.filter}: NOT LOADED: ${r.reason}`);
    for (const n of r.notes) out.push(`logtest: fail2ban filter ${r.filter}:   ${n}`);
  }
  return `${out.join('\n')}\n`;
}
