import { defineError } from '@cordon/runtime';

export const ERR_BLOCK_KEY_MISMATCH = defineError(
  'CORDON_ERR_BLOCK_KEY_MISMATCH',
  (key: string, target: string) =>
    `a block decision keyed for ${key} targets ${target}; it was not applied (a decision's key and target must agree)`,
);
export const ERR_BLOCK_NEVER_BLOCK = defineError(
  'CORDON_ERR_BLOCK_NEVER_BLOCK',
  (target: string, why: string) =>
    `a block of ${target} was refused: it is ${why}, which this enforcer never blocks; the decision is wrong or forged`,
);
export const ERR_BLOCK_CAP = defineError(
  'CORDON_ERR_BLOCK_CAP',
  (target: string, max: number) =>
    `a block of ${target} was refused: ${max} blocks are in force, the most this enforcer applies (enforce.maxBlocks); lift blocks or raise the cap if the load is real`,
);
export const ERR_BLOCK_RATE = defineError(
  'CORDON_ERR_BLOCK_RATE',
  (target: string, perMinute: number) =>
    `a block of ${target} was refused: more than ${perMinute} new blocks a minute arrived (enforce.maxNewPerMinute); a flood of decisions is either an attack on the enforcer or a responder gone wrong`,
);
export const ERR_LOCAL_ADDRESSES = defineError(
  'CORDON_ERR_ENFORCE_LOCAL_ADDRESSES',
  (command: string, detail: string) =>
    `cannot read this machine's addresses and gateways (${command}: ${detail}); the built-in and configured never-block ranges still hold, its own addresses are not protected until it can (is iproute2 installed?)`,
);
