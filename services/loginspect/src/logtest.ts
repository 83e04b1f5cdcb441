import { statSync } from 'node:fs';
import { parseInspectorConfig } from './config.js';
import { ERR_LOGINSPECT_USAGE } from './errors.js';
import { LogInspector } from './inspector.js';
import { forEachLine } from './lines.js';

/**
 * `cordon logtest --log FILE [--rules DIR]… [--sigma DIR]… [--year YYYY]`: run a log file
 * through the inspector and print one JSON line per detection (`line`, `rule`, `src_ip`),
 * like fail2ban-regex does for a filter. `--rules` replaces the built-in rules with the given
 * folders (Cordon or Sigma YAML); `--sigma` adds Sigma folders on top. Refused rules are
 * listed on stderr. Year-less syslog stamps take their year from the file's mtime (or --year).
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
}

/** `cordon logtest` (the CLI parses and validates its flags from its command table). */
export async function logtestCommand(values: LogtestOptions): Promise<number> {
  if (!values.log) throw ERR_LOGINSPECT_USAGE('--log FILE is required');
  const config = parseInspectorConfig({
    builtinRules: !values.rules.length,
    ruleDirs: values.rules,
    sigmaDirs: values.sigma,
  });
  const started = process.hrtime.bigint();
  const inspector = LogInspector.fromConfig(config);
  const setupMs = Number(process.hrtime.bigint() - started) / 1e6;
  for (const r of inspector.rules.refused) process.stderr.write(`logtest: refused ${r.id || '(no id)'} ${r.file}: ${r.reason}\n`);
  let refMs = statSync(values.log).mtimeMs;
  if (values.year !== undefined) refMs = Date.UTC(values.year, 11, 31, 23, 59, 59);
  const state = inspector.newState();
  const meta = { refMs, hint: values.hint ?? values.log };
  let out: string[] = [];
  const flush = (): void => {
    if (out.length) process.stdout.write(out.join(''));
    out = [];
  };
  const t0 = process.hrtime.bigint();
  const lines = forEachLine(values.log, (line, no) => {
    const r = inspector.inspect(state, line, meta);
    if (values.quiet) return;
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
  });
  flush();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (values.stats) {
    const c = state.counters;
    process.stderr.write(
      `logtest: ${inspector.rules.rules.length} rules loaded, ${inspector.rules.refused.length} refused (setup ${setupMs.toFixed(0)} ms); ` +
        `${lines} lines in ${secs.toFixed(3)} s (${Math.round(lines / secs)} lines/s); ${c.detections} detections, ${c.blocks} blocks\n`,
    );
  }
  return 0;
}
