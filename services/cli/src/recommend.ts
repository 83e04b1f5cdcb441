import { formatRecommendation, type RecommendationView } from '@cordon/recommend';
import type { Invocation } from './args.js';
import { configFrom, contextFrom, out } from './cli-context.js';
import { runOp } from './remote.js';

/**
 * `cordon recommend --vm ID`: the newest recommendation the recommend stage published for the
 * VM (by id or name) — its evidence, the rules to run (to add, or already enabled) and the
 * rules to drop, each with its reason. Through the running instance, or the data dir.
 */
export async function recommendCommand(inv: Invocation): Promise<number> {
  const ruleSet = inv.str('rule-set');
  const view = (await runOp({
    config: configFrom(inv),
    ctx: contextFrom(inv),
    name: 'recommend-show',
    input: { vm: inv.str('vm')!, ...(ruleSet ? { ruleSet } : {}) },
    waitMs: inv.num('wait')!,
    onEvent: () => {},
  })) as RecommendationView;
  if (inv.str('format') === 'json') out(JSON.stringify(view));
  else for (const line of formatRecommendation(view)) out(line);
  return 0;
}
