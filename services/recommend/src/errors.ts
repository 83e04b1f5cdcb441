import { defineError } from '@cordon/runtime';

export const ERR_RECOMMEND_CONFIG = defineError(
  'CORDON_ERR_RECOMMEND_CONFIG',
  (detail: string) => `recommend configuration is invalid: ${detail}; fix the "recommend" section of the config`,
);
/**
 * A rule line that does not parse: skipped and counted by `reason` (the rule is not judged,
 * neither recommended nor dropped). The DPI engine reports the same line through
 * `cordon rules check`.
 */
export const ERR_RECOMMEND_RULE = defineError(
  'CORDON_ERR_RECOMMEND_RULE',
  (where: string, reason: string, detail: string) => `${where}: rule skipped (${reason}): ${detail}`,
);
/** A netconf snapshot that decodes but cannot be true (a port out of range, a huge socket list): sent to the DLQ. */
export const ERR_RECOMMEND_SNAPSHOT = defineError(
  'CORDON_ERR_RECOMMEND_SNAPSHOT',
  (vm: string, detail: string) =>
    `netconf snapshot of ${vm || '(no vm)'} is not usable: ${detail}; it was sent to the DLQ and the VM keeps its previous evidence`,
);
/** A checkpoint of the stage's evidence that cannot be read: the partition is re-read from its start. */
export const ERR_RECOMMEND_STATE = defineError(
  'CORDON_ERR_RECOMMEND_STATE',
  (key: string, detail: string) =>
    `recommend checkpoint ${key} is unreadable (${detail}); its partition is re-read from the start of its retained input`,
);
/** A recommendation that does not fit in one bus record even without the kept rules' messages. */
export const ERR_RECOMMEND_TOO_LARGE = defineError(
  'CORDON_ERR_RECOMMEND_TOO_LARGE',
  (vm: string, bytes: number, limit: number) =>
    `the recommendation for ${vm} is ${bytes} bytes, over the ${limit}-byte record limit even without messages; narrow recommend.ruleSets or raise recommend.maxRecordBytes (and the broker's message.max.bytes)`,
);
/** `cordon recommend --vm X` for a VM with no recommendation (yet). */
export const ERR_RECOMMEND_NOT_FOUND = defineError(
  'CORDON_ERR_RECOMMEND_NOT_FOUND',
  (vm: string, known: string) =>
    `no recommendation for VM "${vm}" on cordon.recommendations.v1 (${known}); the recommend stage writes one once the VM is in the inventory and the policy names rules — is it running ("cordon up", or "cordon run recommend")?`,
);
