import { RuleSelectionView, type RuleSelection } from '@cordon/policy';
import type { RuleSource } from '@cordon/native';
import { ruleFileLines, ruleSid } from '@cordon/rulesets';

/**
 * Per-VM rule selections (`setting:rule-selection:<vm>` on the policy topic, written by the
 * recommend stage's autoApply) applied to the dpi's alerts: for a VM with a selection, a rule of
 * one of the selection's rule files alerts only if its sid is enabled; rules of other files, and
 * VMs without a selection, alert as the policy says.
 *
 * The filter is on the alerts, not inside the engine: every rule still runs for every VM, so a
 * flowbit a left-out rule sets still holds for the rules that read it, and a selection saves no
 * CPU. What it changes is what reaches the alerts topic, the responder and the SIEMs.
 */
export class SelectionFilter {
  readonly view = new RuleSelectionView();
  /** sid → the rule files (source names) that define it. */
  private files = new Map<number, string[]>();
  /** Per selection record: its files and sids as sets (rebuilt when the record is replaced). */
  private readonly sets = new WeakMap<RuleSelection, { ruleSets: Set<string>; enabled: Set<number> }>();

  /** The rule files compiled (or about to be): where each sid comes from. */
  setSources(sources: readonly RuleSource[]): void {
    this.files = sidsByFile(sources);
  }

  /** Does rule `sid` alert for `vm`? */
  allows(vm: string | null, sid: number): boolean {
    if (vm === null) return true;
    const sel = this.view.byVm.get(vm)?.selection;
    if (!sel) return true;
    let s = this.sets.get(sel);
    if (!s) this.sets.set(sel, (s = { ruleSets: new Set(sel.ruleSets), enabled: new Set(sel.enabled) }));
    const files = this.files.get(sid);
    if (!files || !files.some((f) => s.ruleSets.has(f))) return true;
    return s.enabled.has(sid);
  }
}

/**
 * Where each sid is defined: the rules of each source, read as Suricata reads a rule file
 * (lines continued at a trailing `\`, comment lines left out as the engine leaves them), each
 * with its `sid` option.
 */
export function sidsByFile(sources: readonly RuleSource[]): Map<number, string[]> {
  const out = new Map<number, string[]>();
  for (const { name, text } of sources) {
    for (const { text: line } of ruleFileLines(text)) {
      const sid = ruleSid(line);
      if (sid === null) continue;
      const files = out.get(sid);
      if (!files) out.set(sid, [name]);
      else if (!files.includes(name)) files.push(name);
    }
  }
  return out;
}
