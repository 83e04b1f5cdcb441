import { z } from 'zod';
import { codecFor, TOPICS, type PolicyRecord } from '@cordon/schemas';
import { ERR_POLICY_RECORD } from './errors.js';
import { policyRecordKey } from './policy.js';

/**
 * A VM's rule selection: which rules of the judged rule files apply to it, as the recommend
 * stage applied its recommendation (`recommend.autoApply`). One `setting` record per VM on
 * the policy topic, `setting:rule-selection:<vm>` — beside the administrator's policy
 * document, never inside it, so `cordon policy apply` and the stage never overwrite each
 * other's writes, and one VM's selection is one record of bounded size.
 *
 * Meaning: for the VM, a rule of one of `ruleSets` applies only if its sid is in `enabled`;
 * rules of other files apply as the policy says. Pinned rules (policy `pinned`, the sids its
 * `rules` name, `vms.<vm>.pinned`/`rules`) are always in `enabled`.
 *
 * The dpi stage applies it to its alerts (services/dpi/src/rule-selection.ts): a left-out
 * rule's alerts for the VM are dropped and counted; the engine still runs every policy rule (a
 * flowbit a left-out rule sets still holds), so a selection saves no CPU. It is also what the
 * next recommendation is compared with.
 */

export const RULE_SELECTION_PREFIX = 'rule-selection:';
export const ruleSelectionId = (vm: string): string => `${RULE_SELECTION_PREFIX}${vm}`;

export const ruleSelectionSchema = z
  .object({
    vm: z.string().min(1),
    /** The policy whose rule files were judged. */
    policy: z.string().min(1),
    /** The rule files judged, as the policy topic names them. */
    ruleSets: z.array(z.string().min(1)),
    /** Sids that apply to the VM among those files, ascending. */
    enabled: z.array(z.number().int().nonnegative()),
    /** The recommendation applied. */
    recommendation: z.object({ version: z.number().int().positive(), digest: z.string() }).strict(),
    appliedBy: z.string().min(1),
  })
  .strict();
export type RuleSelection = z.infer<typeof ruleSelectionSchema>;

/** The rule selections on the policy topic, by VM (fed its records in order, like PolicyView). */
export class RuleSelectionView {
  readonly byVm = new Map<string, { version: number; selection: RuleSelection }>();
  private readonly codec = codecFor(TOPICS.policy);

  /** True when the record was a rule selection. Throws CORDON_ERR_POLICY_RECORD for one it cannot use. */
  apply(key: Buffer | null, value: Buffer | null): boolean {
    const k = key?.toString() ?? '';
    const prefix = policyRecordKey('setting', RULE_SELECTION_PREFIX);
    if (!k.startsWith(prefix)) return false;
    const vm = k.slice(prefix.length);
    if (value === null) {
      this.byVm.delete(vm);
      return true;
    }
    let rec: PolicyRecord;
    let doc: unknown;
    try {
      rec = this.codec.decode(value);
      doc = JSON.parse(rec.document);
    } catch (err) {
      throw ERR_POLICY_RECORD.withCause(err, k, (err as Error).message);
    }
    const r = ruleSelectionSchema.safeParse(doc);
    if (!r.success)
      throw ERR_POLICY_RECORD.withCause(r.error, k, r.error.issues[0]?.message ?? 'invalid rule selection');
    this.byVm.set(vm, { version: rec.version, selection: r.data });
    return true;
  }
}

/** The policy-topic record that sets a VM's selection (version: the previous one's + 1). */
export function ruleSelectionRecord(
  selection: RuleSelection,
  version: number,
  nowUs: number,
): { key: Buffer; value: Buffer } {
  const id = ruleSelectionId(selection.vm);
  return {
    key: Buffer.from(policyRecordKey('setting', id)),
    value: codecFor(TOPICS.policy).encode({
      kind: 'setting',
      id,
      version,
      document: JSON.stringify(selection),
      updated_us: nowUs,
      updated_by: selection.appliedBy,
    }),
  };
}

/** Sids the administrator pinned for a VM: `pinned` and `rules` at the top and in `vms.<vm>`. */
export function pinnedSids(
  doc: {
    pinned?: string[];
    rules?: Record<string, unknown>;
    vms?: Record<string, { pinned?: string[]; rules?: Record<string, unknown> }>;
  },
  vm: string,
): number[] {
  const v = doc.vms?.[vm];
  const all = [
    ...(doc.pinned ?? []),
    ...Object.keys(doc.rules ?? {}),
    ...(v?.pinned ?? []),
    ...Object.keys(v?.rules ?? {}),
  ];
  return [...new Set(all.map(Number))].sort((a, b) => a - b);
}
