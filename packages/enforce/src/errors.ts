import { defineError } from '@cordon/runtime';

export const ERR_BLOCK_KEY_MISMATCH = defineError(
  'CORDON_ERR_BLOCK_KEY_MISMATCH',
  (key: string, target: string) => `a block decision keyed for ${key} targets ${target}; it was not applied (a decision's key and target must agree)`,
);
