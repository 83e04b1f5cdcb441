import { attrValue, compileGlob, FILE_ATTRIBUTES, type FileAttribute, type GlobMatcher } from '@cordon/fim-scan';
import { alertId, NO_FLOW, type AlertInput, type FileAttrs, type FileEvent } from '@cordon/schemas';
import type { FimProcessorConfig, FimRule } from './config.js';
import { ERR_FIMPROC_BAD_EVENT } from './errors.js';

/**
 * The pure fim stage: a FileEvent and the policy's rules → an Alert or nothing.
 *
 * An alert names what changed: evidence.changes lists each attribute that differs and
 * matters to the rule, with its value before and after; evidence also carries both full
 * states, the rename source and the agent's error. The alert id is a hash of the event id
 * and the rule, and ts_us is the event's: replaying the fim topic gives the same alerts.
 */

export interface AttributeChange {
  attribute: FileAttribute;
  before: unknown;
  after: unknown;
}

export interface FimEvidence {
  op: FileEvent['op'];
  path: string;
  renamed_from: string | null;
  scan: FileEvent['scan'];
  agent: string;
  event_id: string;
  changes: AttributeChange[];
  before: FileAttrs | null;
  after: FileAttrs | null;
  error: string | null;
}

interface CompiledRule {
  rule: Omit<FimRule, 'id' | 'paths'> & { id: string };
  globs: GlobMatcher[];
  attributes: ReadonlySet<FileAttribute>;
}

/** All attributes whose values differ between two states. */
export function differingAttributes(before: FileAttrs, after: FileAttrs): FileAttribute[] {
  return FILE_ATTRIBUTES.filter((a) => attrValue(before, a) !== attrValue(after, a));
}

export class FimAlerter {
  private readonly rules: CompiledRule[];
  private readonly fallback: CompiledRule;

  constructor(private readonly config: FimProcessorConfig) {
    this.rules = config.rules.map((r) => ({
      rule: r,
      globs: r.paths.map(compileGlob),
      attributes: new Set(r.attributes),
    }));
    this.fallback = {
      rule: { ...config.defaultRule, id: 'default' },
      globs: [],
      attributes: new Set(config.defaultRule.attributes),
    };
  }

  ruleFor(path: string): CompiledRule {
    return this.rules.find((r) => r.globs.some((g) => g.matches(path))) ?? this.fallback;
  }

  /** Throws ERR_FIMPROC_BAD_EVENT for an event that cannot be true. */
  evaluate(ev: FileEvent): AlertInput | null {
    validate(ev);
    if (ev.op === 'baseline') return null;
    const cr = this.ruleFor(ev.path);
    if (cr.rule.ignore) return null;
    if (ev.op === 'scan') {
      if (!this.config.alertOnErrors || !ev.error) return null;
      return this.alert(
        ev,
        { ...cr, rule: { ...cr.rule, id: `${cr.rule.id}.check-error`, severity: 4 } },
        [],
        `File could not be checked: ${ev.path}`,
      );
    }
    if (!cr.rule.ops.includes(ev.op)) return null;
    const changes: AttributeChange[] = [];
    if (ev.before && ev.after) {
      for (const a of differingAttributes(ev.before, ev.after)) {
        if (cr.attributes.has(a))
          changes.push({ attribute: a, before: attrValue(ev.before, a), after: attrValue(ev.after, a) });
      }
    }
    if (ev.op === 'changed' && changes.length === 0) return null; // only attributes this rule does not care about
    const what =
      (ev.after ?? ev.before)!.type === 'dir'
        ? 'Directory'
        : (ev.after ?? ev.before)!.type === 'symlink'
          ? 'Symlink'
          : 'File';
    const subject = cr.rule.title ? `${cr.rule.title}: ${what.toLowerCase()}` : what;
    const attrs = changes.length ? ` (${changes.map((c) => c.attribute).join(', ')})` : '';
    const signature =
      ev.op === 'renamed'
        ? `${subject} renamed: ${ev.renamed_from} -> ${ev.path}${attrs}`
        : `${subject} ${ev.op}: ${ev.path}${attrs}`;
    return this.alert(ev, cr, changes, signature);
  }

  private alert(ev: FileEvent, cr: CompiledRule, changes: AttributeChange[], signature: string): AlertInput {
    const ruleId = `fim:${cr.rule.id}`;
    const evidence: FimEvidence = {
      op: ev.op,
      path: ev.path,
      renamed_from: ev.renamed_from,
      scan: ev.scan,
      agent: ev.agent,
      event_id: ev.event_id,
      changes,
      before: ev.before,
      after: ev.after,
      error: ev.error,
    };
    return {
      alert_id: alertId('fim', ev.agent, ev.vm, ev.event_id, ruleId),
      ts_us: ev.ts_us,
      stage: 'fim',
      vm: ev.vm,
      sensor: ev.agent,
      rule_id: ruleId,
      rule_rev: 0,
      signature,
      severity: cr.rule.severity,
      category: 'file-integrity',
      action: 'alert',
      ...NO_FLOW,
      evidence: JSON.stringify(evidence),
    };
  }
}

function validate(ev: FileEvent): void {
  const bad = (detail: string) => ERR_FIMPROC_BAD_EVENT(ev.event_id, detail);
  if (!ev.event_id) throw bad('event_id is empty');
  if (!ev.path.startsWith('/')) throw bad(`path ${JSON.stringify(ev.path)} is not absolute`);
  switch (ev.op) {
    case 'added':
      if (!ev.after) throw bad('"added" without an after state');
      break;
    case 'removed':
      if (!ev.before) throw bad('"removed" without a before state');
      break;
    case 'changed':
      if (!ev.before || !ev.after) throw bad('"changed" needs both before and after states');
      break;
    case 'renamed':
      if (!ev.before || !ev.after || !ev.renamed_from) throw bad('"renamed" needs before, after and renamed_from');
      break;
    default:
      break;
  }
}
