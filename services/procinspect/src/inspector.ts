import { basename, join } from 'node:path';
import { statSync } from 'node:fs';
import {
  KIND,
  LiteralPrefilter,
  LiteralScanner,
  loadRuleDir,
  type CompiledRule,
  type LogEvent,
  type RuleSet,
} from '@cordon/loginspect';
import type { ProcessEvent } from '@cordon/schemas';
import type { ProcRulesConfig } from './config.js';

/**
 * The pure part of procinspect: a process start (`ProcessEvent`, kind exec) → the Sigma fields
 * of a Linux process_creation event (Sysmon for Linux's names, which SigmaHQ's rules use, plus
 * Cordon's own) → the rules that match. The rules are loginspect's Sigma engine, loaded for the
 * `processes` target: the same modifiers, conditions and literal prefilter; rules of any other
 * log source are refused with a reason.
 */

export interface ProcDetection {
  rule: CompiledRule;
  event: ProcessEvent;
}

/** The rules folder shipped with this package (src/ and dist/src/ both find it). */
export function builtinProcRulesDir(): string {
  const here = import.meta.dirname;
  for (const up of [
    ['..', 'rules'],
    ['..', '..', 'rules'],
  ]) {
    const p = join(here, ...up);
    try {
      if (statSync(p).isDirectory()) return p;
    } catch {
      // try the next layout
    }
  }
  return join(here, '..', '..', 'rules');
}

/** The Sigma fields of a process start. */
export function processFields(e: ProcessEvent, maxCommandLine = 32 * 1024): Record<string, string> {
  const cut = (s: string) => (s.length > maxCommandLine ? s.slice(0, maxCommandLine) : s);
  const f: Record<string, string> = {
    ProcessId: String(e.pid),
    ParentProcessId: String(e.ppid),
    CommandLine: cut(e.command_line),
    CurrentDirectory: e.cwd,
    User: e.user ?? String(e.uid),
    Uid: String(e.uid),
    Euid: String(e.euid),
    Comm: e.comm,
    ImageDeleted: e.image_deleted ? 'true' : 'false',
    SuidNew: e.suid_new ? 'true' : 'false',
    ExecSource: e.source,
    AncestorImages: e.ancestors.map((a) => a.image).join('\n'),
  };
  // absent, not empty: a rule testing `Image|endswith` must not match a process whose image is unknown
  if (e.image) f['Image'] = e.image;
  if (e.parent_image) f['ParentImage'] = e.parent_image;
  if (e.parent_command_line) f['ParentCommandLine'] = cut(e.parent_command_line);
  if (e.image_sha256) {
    f['Hashes'] = `SHA256=${e.image_sha256.toUpperCase()}`;
    f['sha256'] = e.image_sha256;
  }
  return f;
}

/** A process start as the Sigma engine's event: keywords match its command line. */
export function processLogEvent(e: ProcessEvent, maxCommandLine?: number): LogEvent {
  const fields = processFields(e, maxCommandLine);
  const cmd = fields['CommandLine']!;
  return {
    raw: cmd,
    kinds: KIND.process,
    ts: Math.floor(e.ts_us / 1000),
    host: null,
    program: e.image ? basename(e.image) : e.comm || null,
    pid: String(e.pid),
    message: cmd,
    fields,
    addr: null,
    decoder: 'process',
  };
}

export class ProcessInspector {
  private readonly pre: LiteralPrefilter;
  readonly counters = { events: 0, detections: 0, suppressed: 0 };

  constructor(
    readonly rules: RuleSet,
    private readonly config: Pick<ProcRulesConfig, 'maxCommandLineBytes'> = { maxCommandLineBytes: 32 * 1024 },
  ) {
    this.pre = new LiteralPrefilter(rules.rules, (rules.literals ??= new LiteralScanner()));
  }

  /** Built-in rules first, then extra folders, then Sigma folders. */
  static fromConfig(config: ProcRulesConfig): ProcessInspector {
    const set: RuleSet = { rules: [], refused: [], literals: new LiteralScanner() };
    if (config.builtinRules) loadRuleDir(builtinProcRulesDir(), 'cordon', set, 'processes');
    for (const d of config.ruleDirs) loadRuleDir(d, 'cordon', set, 'processes');
    for (const d of config.sigmaDirs) loadRuleDir(d, 'sigma', set, 'processes');
    return new ProcessInspector(set, config);
  }

  /** The rules a process start matches (none for exits and uid changes: process_creation is about starts). */
  inspect(e: ProcessEvent): ProcDetection[] {
    if (e.kind !== 'exec') return [];
    this.counters.events++;
    const ev = processLogEvent(e, this.config.maxCommandLineBytes);
    this.pre.select(ev);
    const rules = this.rules.rules;
    let out: ProcDetection[] | null = null;
    for (let k = 0; k < this.pre.count; k++) {
      const rule = rules[this.pre.order[k]!]!;
      if (!rule.match(ev)) continue;
      // a never-flag entry: this start is known benign, no rule reports it
      if (rule.neverFlag) {
        this.counters.suppressed++;
        return [];
      }
      (out ??= []).push({ rule, event: e });
    }
    this.counters.detections += out?.length ?? 0;
    return out ?? [];
  }
}
