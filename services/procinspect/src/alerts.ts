import { alertId, NO_FLOW, type AlertInput, type ProcessEvent } from '@cordon/schemas';
import type { ProcDetection } from './inspector.js';

export const STAGE = 'procinspect';

const MAX_EVIDENCE_TEXT = 2048;
const clip = (s: string) => (s.length > MAX_EVIDENCE_TEXT ? `${s.slice(0, MAX_EVIDENCE_TEXT)}…` : s);

export function ruleRef(d: ProcDetection): string {
  return `${d.rule.origin}:${d.rule.id}`;
}

/** The process and its ancestors, itself first, up to the session leader: what the analyst reads first. */
export function processTree(e: ProcessEvent): Array<{ pid: number; image: string; command_line: string; uid: number }> {
  return [
    { pid: e.pid, image: e.image, command_line: clip(e.command_line), uid: e.uid },
    ...e.ancestors.map((a) => ({ pid: a.pid, image: a.image, command_line: clip(a.command_line), uid: a.uid })),
  ];
}

/** Detection → Alert (pure: the same event and rule always give the same record and id). */
export function toAlert(d: ProcDetection): AlertInput {
  const e = d.event;
  const mitre = d.rule.tags.map((t) => /^attack\.(t\d{4}(?:\.\d{3})?)$/i.exec(t)?.[1]?.toUpperCase()).filter(Boolean);
  const tactics = d.rule.tags
    .map((t) => /^attack\.(ta\d{4})$/i.exec(t)?.[1]?.toUpperCase())
    .filter((t): t is string => !!t);
  return {
    alert_id: alertId(STAGE, e.vm, e.event_id, ruleRef(d)),
    ts_us: e.ts_us,
    stage: STAGE,
    vm: e.vm,
    sensor: `agent:${e.agent}`,
    rule_id: ruleRef(d),
    rule_rev: 0,
    signature: d.rule.title,
    severity: d.rule.severity,
    category: d.rule.tags[0] ?? null,
    action: 'alert',
    ...NO_FLOW,
    mitre_technique_ids: mitre as string[],
    mitre_tactic_ids: tactics,
    evidence: JSON.stringify({
      event_id: e.event_id,
      pid: e.pid,
      ppid: e.ppid,
      image: e.image,
      image_sha256: e.image_sha256,
      image_deleted: e.image_deleted,
      suid_new: e.suid_new,
      command_line: clip(e.command_line),
      cwd: e.cwd,
      user: e.user,
      uid: e.uid,
      euid: e.euid,
      parent_image: e.parent_image,
      parent_command_line: clip(e.parent_command_line),
      tree: processTree(e),
      rule_origin: d.rule.origin,
      rule_author: d.rule.author,
      rule_file: d.rule.file,
      level: d.rule.level,
    }),
  };
}
