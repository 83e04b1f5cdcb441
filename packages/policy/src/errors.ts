import { defineError } from '@cordon/runtime';

/** A policy or inventory file that does not parse or validate; `where` is `file:line`. */
export const ERR_POLICY_FILE = defineError(
  'CORDON_ERR_POLICY_FILE',
  (where: string, detail: string) => `${where}: ${detail}; fix the file and apply it again (nothing was written)`,
);
export const ERR_POLICY_READ = defineError(
  'CORDON_ERR_POLICY_READ',
  (file: string, detail: string) => `cannot read ${file}: ${detail}`,
);
/** A record on the policy or inventory topic that this version cannot use (skipped, counted). */
export const ERR_POLICY_RECORD = defineError(
  'CORDON_ERR_POLICY_RECORD',
  (key: string, detail: string) => `record ${key} is not usable: ${detail}; it was skipped`,
);
export const ERR_POLICY_USAGE = defineError(
  'CORDON_ERR_POLICY_USAGE',
  (usage: string) => `${usage}; run "cordon help" for usage`,
);
