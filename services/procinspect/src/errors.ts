import { defineError } from '@cordon/runtime';

export const ERR_PROCINSPECT_CONFIG = defineError(
  'CORDON_ERR_PROCINSPECT_CONFIG',
  (detail: string) => `procinspect configuration is invalid: ${detail}; fix the "procinspect" section of the config`,
);
/** The ProcessEvent record cannot be decoded: it goes to the DLQ. */
export const ERR_PROCINSPECT_BAD_EVENT = defineError(
  'CORDON_ERR_PROCINSPECT_BAD_EVENT',
  (detail: string) => `process event does not decode: ${detail}`,
);
/** A line of a `proctest --events` file that is not a process event. */
export const ERR_PROCTEST_EVENT = defineError(
  'CORDON_ERR_PROCTEST_EVENT',
  (file: string, line: number, detail: string) => `${file}:${line} is not a process event (${detail}); it was skipped`,
);
export const ERR_PROCTEST_USAGE = defineError(
  'CORDON_ERR_PROCTEST_USAGE',
  (detail: string) =>
    `${detail}; usage: cordon proctest --events FILE.jsonl [--rules DIR]… [--sigma DIR]… [--no-builtin] [--stats] [--quiet]`,
);
