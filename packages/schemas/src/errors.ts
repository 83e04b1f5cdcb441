import { defineError } from '@cordon/runtime';

export const ERR_WIRE_FORMAT = defineError(
  'CORDON_ERR_SCHEMA_WIRE_FORMAT',
  (detail: string) => `record is not in the Confluent wire format (${detail}); it was sent to the DLQ`,
);
export const ERR_UNKNOWN_SCHEMA_ID = defineError(
  'CORDON_ERR_SCHEMA_UNKNOWN_ID',
  (id: number, expected: number) =>
    `record carries schema id ${id}, this topic expects ${expected}; check the producer's schema manifest`,
);
export const ERR_DECODE = defineError(
  'CORDON_ERR_SCHEMA_DECODE',
  (schema: string, detail: string) => `record does not decode as ${schema}: ${detail}`,
);
export const ERR_ENCODE = defineError(
  'CORDON_ERR_SCHEMA_ENCODE',
  (schema: string, detail: string) => `value does not fit schema ${schema}: ${detail}`,
);
