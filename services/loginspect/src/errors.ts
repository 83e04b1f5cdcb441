import { defineError } from '@cordon/runtime';

export const ERR_LOGINSPECT_CONFIG = defineError(
  'CORDON_ERR_LOGINSPECT_CONFIG',
  (detail: string) => `loginspect configuration is invalid: ${detail}; fix the "loginspect" section of the config`,
);
/** A rule file that does not parse as YAML or is not a rule document: reported, the others still load. */
export const ERR_LOGINSPECT_RULE_FILE = defineError(
  'CORDON_ERR_LOGINSPECT_RULE_FILE',
  (file: string, detail: string) => `rule file ${file} cannot be read: ${detail}; fix or remove the file`,
);
/** A rule whose detection or condition cannot be compiled (the rule is refused, with this reason). */
export const ERR_LOGINSPECT_RULE = defineError(
  'CORDON_ERR_LOGINSPECT_RULE',
  (rule: string, detail: string) => `rule ${rule} is refused: ${detail}`,
);
/** The LogBatch record cannot be decoded: it goes to the DLQ whole. */
export const ERR_LOGINSPECT_BAD_BATCH = defineError(
  'CORDON_ERR_LOGINSPECT_BAD_BATCH',
  (detail: string) => `log batch does not decode: ${detail}`,
);
export const ERR_LOGINSPECT_USAGE = defineError(
  'CORDON_ERR_LOGINSPECT_USAGE',
  (detail: string) =>
    `${detail}; usage: cordon logtest --log FILE [--rules DIR]… [--sigma DIR]… [--fail2ban DIR [--fail2ban-filter NAME[opt=v]]…] [--no-builtin] [--explain] [--line N] [--no-coverage] [--year YYYY] [--stats] [--quiet]`,
);
/** A checkpoint of the stage's state that cannot be read: the partition starts with empty state. */
export const ERR_LOGINSPECT_STATE = defineError(
  'CORDON_ERR_LOGINSPECT_STATE',
  (detail: string) => `loginspect checkpoint is unreadable: ${detail}`,
);
