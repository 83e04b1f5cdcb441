import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { describeError } from '@cordon/runtime';
import { complete, TOPICS, type ProcessEvent } from '@cordon/schemas';
import { toAlert } from './alerts.js';
import { parseProcRulesConfig } from './config.js';
import { ERR_PROCTEST_EVENT, ERR_PROCTEST_USAGE } from './errors.js';
import { ProcessInspector } from './inspector.js';

/**
 * `cordon proctest --events FILE.jsonl [--rules DIR]… [--sigma DIR]… [--no-builtin] [--stats]`:
 * recorded process events (one ProcessEvent JSON object a line, as the agent's
 * `processRecord` file holds them, or written by hand: missing fields take defaults) through
 * the process rules; one JSON line per alert, as the stage would publish it (its evidence
 * parsed). Refused rules and bad lines go to stderr with their codes; the exit status is 1
 * when a line was bad.
 */
export interface ProctestOptions {
  events: string;
  /** Rule folders that replace the built-in rules (none: the built-in rules). */
  rules: string[];
  /** Sigma folders added on top. */
  sigma: string[];
  noBuiltin: boolean;
  quiet: boolean;
  stats: boolean;
  /** Where alerts and reports go (stdout and stderr unless given). */
  out?: (text: string) => void;
  err?: (text: string) => void;
}

const DEFAULTS = {
  agent: 'proctest',
  vm: 'proctest',
  ts_us: 0,
  kind: 'exec',
  source: 'connector',
  pid: 0,
  ppid: 0,
  sid: 0,
  uid: 0,
  euid: 0,
  image: '',
} as const;

const OTHER_SOURCE = /is not a Linux process_creation source/;

/** Refusal reasons grouped (a rule's own details cut: log source names, field lists kept), most frequent first. */
export function refusalGroups(refused: ReadonlyArray<{ reason: string }>): Array<[string, number]> {
  const m = new Map<string, number>();
  for (const r of refused) {
    const reason = OTHER_SOURCE.test(r.reason)
      ? 'another log source than linux/process_creation'
      : r.reason.replace(/^[\w-]+: /, '').replace(/^rule file \S+ cannot be read: /, 'file cannot be read: ');
    m.set(reason, (m.get(reason) ?? 0) + 1);
  }
  return [...m].sort((a, b) => b[1] - a[1]);
}

/** One line of an events file → a ProcessEvent (throws CORDON_ERR_PROCTEST_EVENT). */
export function parseEventLine(file: string, no: number, line: string): ProcessEvent {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch (err) {
    throw ERR_PROCTEST_EVENT.withCause(err, file, no, `not JSON: ${(err as Error).message}`);
  }
  if (!obj || typeof obj !== 'object' || Array.isArray(obj)) throw ERR_PROCTEST_EVENT(file, no, 'not a JSON object');
  const o = obj as Record<string, unknown>;
  const argv = Array.isArray(o['argv']) ? o['argv'] : [];
  try {
    return complete(TOPICS.processes, {
      ...DEFAULTS,
      event_id: `proctest|${no}`,
      command_line: argv.join(' '),
      ...o,
    } as ProcessEvent);
  } catch (err) {
    throw ERR_PROCTEST_EVENT.withCause(err, file, no, describeError(err).message);
  }
}

export async function proctestCommand(values: ProctestOptions): Promise<number> {
  if (!values.events) throw ERR_PROCTEST_USAGE('--events FILE is required');
  const stdout = values.out ?? ((t: string) => void process.stdout.write(t));
  const stderr = values.err ?? ((t: string) => void process.stderr.write(t));
  const inspector = ProcessInspector.fromConfig(
    parseProcRulesConfig({
      builtinRules: !values.rules.length && !values.noBuiltin,
      ruleDirs: values.rules,
      sigmaDirs: values.sigma,
    }),
  );
  // rules of other log sources are many in a Sigma checkout and refused by design: counted, not listed
  const other = inspector.rules.refused.filter((r) => OTHER_SOURCE.test(r.reason));
  for (const r of inspector.rules.refused)
    if (!other.includes(r)) stderr(`proctest: refused ${r.id || '(no id)'} ${r.file}: ${r.reason}\n`);
  if (values.stats) {
    for (const [reason, n] of refusalGroups(inspector.rules.refused)) stderr(`proctest: refused ${n} × ${reason}\n`);
  }
  let no = 0;
  let bad = 0;
  let alerts = 0;
  const t0 = process.hrtime.bigint();
  const rl = createInterface({ input: createReadStream(values.events, 'utf8'), crlfDelay: Infinity });
  for await (const line of rl) {
    no++;
    if (!line.trim()) continue;
    let e: ProcessEvent;
    try {
      e = parseEventLine(values.events, no, line);
    } catch (err) {
      bad++;
      const d = describeError(err);
      stderr(`proctest: ${d.code}: ${d.message}\n`);
      continue;
    }
    for (const d of inspector.inspect(e)) {
      alerts++;
      if (values.quiet) continue;
      const a = toAlert(d);
      stdout(`${JSON.stringify({ line: no, ...a, evidence: JSON.parse(a.evidence) as unknown })}\n`);
    }
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  if (values.stats)
    stderr(
      `proctest: ${inspector.rules.rules.length} rules loaded, ${inspector.rules.refused.length} refused; ` +
        `${inspector.counters.events} process starts of ${no} lines in ${secs.toFixed(3)} s; ${alerts} alerts, ${bad} bad lines\n`,
    );
  return bad ? 1 : 0;
}
