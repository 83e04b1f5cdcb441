import { defineError } from '@cordon/runtime';

export const ERR_DPI_USAGE = defineError(
  'CORDON_ERR_DPI_USAGE',
  (detail: string) => `${detail}; run "cordon help" for usage`,
);
export const ERR_DPI_RULES_READ = defineError(
  'CORDON_ERR_DPI_RULES_READ',
  (file: string, detail: string) => `cannot read rule file ${file} (${detail}); check the path`,
);
export const ERR_DPI_RULES_TIMEOUT = defineError(
  'CORDON_ERR_DPI_RULES_TIMEOUT',
  (seconds: number, names: string) =>
    `compiling the rule set (${names || 'no files'}) took longer than ${seconds} s (dpi.compileTimeoutS); it was not applied and the rules in force stay. Look for a rule with a huge content or pattern`,
);
export const ERR_DPI_RULES_COMPILE = defineError(
  'CORDON_ERR_DPI_RULES_COMPILE',
  (detail: string) => `the rule set could not be compiled (${detail}); the rules in force stay`,
);

/** A rule that failed to load, with the code its reason carries (e.g. CORDON_ERR_RULE_CONTENT_TOO_LONG) or this one. */
export const ERR_DPI_RULE = defineError(
  'CORDON_ERR_DPI_RULE',
  (sid: number | null, file: string, line: number, reason: string) =>
    `rule sid ${sid ?? '?'} (${file}:${line}) was not loaded: ${reason}`,
);
