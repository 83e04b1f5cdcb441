import { defineError } from '@cordon/runtime';

export const ERR_NOTIFY_CONFIG = defineError(
  'CORDON_ERR_NOTIFY_CONFIG',
  (detail: string) => `notify configuration is invalid: ${detail}; fix the "notify" section of the config`,
);
/** A webhook target kept failing for its whole retry budget: the alert goes to the DLQ with this code. */
export const ERR_NOTIFY_WEBHOOK_FAILED = defineError(
  'CORDON_ERR_NOTIFY_WEBHOOK_FAILED',
  (target: string, attempts: number, detail: string) =>
    `webhook target "${target}" did not accept the alert after ${attempts} attempt(s): ${detail}; the alert is on the DLQ`,
);
/** A syslog target could not be written to for the whole retry budget. */
export const ERR_NOTIFY_SYSLOG_FAILED = defineError(
  'CORDON_ERR_NOTIFY_SYSLOG_FAILED',
  (target: string, attempts: number, detail: string) =>
    `syslog target "${target}" could not be written to after ${attempts} attempt(s): ${detail}; the record is on the DLQ`,
);
/** The stage stopped while a delivery was being retried: the batch is not committed and comes again. */
export const ERR_NOTIFY_STOPPING = defineError(
  'CORDON_ERR_NOTIFY_STOPPING',
  (target: string) =>
    `the notify stage stopped while delivering to "${target}"; delivery resumes from the last committed alert`,
);
/** A signed webhook request that a receiver refuses (verifyWebhook). */
export const ERR_NOTIFY_SIGNATURE = defineError(
  'CORDON_ERR_NOTIFY_SIGNATURE',
  (detail: string) => `the webhook signature is not valid: ${detail}`,
);
