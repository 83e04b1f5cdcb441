import { defineError } from '@cordon/runtime';

export const ERR_RESPONDER_CONFIG = defineError(
  'CORDON_ERR_RESPONDER_CONFIG',
  (detail: string) => `responder configuration is invalid: ${detail}; fix the "responder" section of the config`,
);
/** An alert the responder cannot act on because of what it carries (to the DLQ). */
export const ERR_RESPONDER_ALERT = defineError(
  'CORDON_ERR_RESPONDER_ALERT',
  (alertId: string, detail: string) => `alert ${alertId} cannot become a block: ${detail}`,
);
