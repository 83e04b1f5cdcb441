import type { TableFollower } from '@cordon/bus';
import type { Stage } from '@cordon/stage';
import { TOPICS } from '@cordon/schemas';
import { assembleRuleset, PolicyView, type RuleSelectionView } from '@cordon/policy';
import type { RuleSource } from '@cordon/native';

/**
 * The rule files the policies on `cordon.policy.v1` name, followed live: `onChange` gets the
 * full set of rule texts whenever it changes (a new policy version, a ruleset replaced). A set
 * that cannot be assembled yet (a part still missing) is skipped until it can. The VMs' rule
 * selections on the same topic go to `selections` (a bad one is skipped: the VM keeps the
 * selection it had).
 */
export async function followPolicyRules(
  stage: Stage<unknown>,
  onChange: (sources: RuleSource[]) => void,
  selections?: RuleSelectionView,
): Promise<TableFollower> {
  const log = stage.ctx.log;
  const view = new PolicyView();
  let current = '';
  const publish = () => {
    const names = [
      ...new Set([...view.policies.values()].flatMap((p) => p.doc.rulesets.map((r) => `${r.name}\u0000${r.sha256}`))),
    ].sort();
    const key = names.join('\n');
    if (key === current) return;
    const sources: RuleSource[] = [];
    for (const n of names) {
      const [name] = n.split('\u0000') as [string];
      try {
        sources.push({ name, text: assembleRuleset(view.rulesetParts(name)) });
      } catch (err) {
        log.debug({ err, name }, 'A ruleset is not complete on the topic yet.');
        return;
      }
    }
    current = key;
    onChange(sources);
  };
  return stage.follow(
    TOPICS.policy,
    (r) => {
      try {
        if (selections?.apply(r.key, r.value)) return;
        view.apply(r.key, r.value);
      } catch (err) {
        log.warn({ err }, 'A policy record could not be used; it was skipped.');
        return;
      }
      publish();
    },
    { afterRestore: async () => publish() },
  );
}
