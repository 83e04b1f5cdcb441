import { defineError } from '@cordon/runtime';

export const ERR_FLOWS_CONFIG = defineError(
  'CORDON_ERR_FLOWS_CONFIG',
  (detail: string) => `flows configuration is invalid: ${detail}; fix the "flows" section of the config`,
);
export const ERR_FLOWS_SNAPSHOT = defineError(
  'CORDON_ERR_FLOWS_SNAPSHOT',
  (detail: string) =>
    `flow table snapshot cannot be restored (${detail}); the partition is rebuilt from the start of its input topic (flows that began before the retained input are lost); the bad state record was sent to the DLQ`,
);
/** A frame inside a good PacketBatch that does not decode: goes to the DLQ as a one-packet batch. */
export const ERR_FLOWS_BAD_FRAME = defineError(
  'CORDON_ERR_FLOWS_BAD_FRAME',
  (batchId: string, seq: number, detail: string) => `frame seq ${seq} of batch ${batchId} does not decode: ${detail}`,
);
