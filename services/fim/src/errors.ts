import { defineError } from '@cordon/runtime';

export const ERR_FIMPROC_CONFIG = defineError(
  'CORDON_ERR_FIMPROC_CONFIG',
  (detail: string) => `fim processor configuration is invalid: ${detail}; fix the "fim" section of the config`,
);
/** A FileEvent that decodes but cannot be true (e.g. `changed` without a before state): sent to the DLQ. */
export const ERR_FIMPROC_BAD_EVENT = defineError(
  'CORDON_ERR_FIMPROC_BAD_EVENT',
  (eventId: string, detail: string) =>
    `file event ${eventId || '(no id)'} is inconsistent: ${detail}; the agent that sent it needs fixing`,
);
