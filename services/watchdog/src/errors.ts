import { defineError } from '@cordon/runtime';

export const ERR_WATCHDOG_CONFIG = defineError(
  'CORDON_ERR_WATCHDOG_CONFIG',
  (detail: string) => `watchdog configuration is invalid: ${detail}; fix the "watchdog" section of the config`,
);
export const ERR_WATCHDOG_NFT = defineError(
  'CORDON_ERR_WATCHDOG_NFT',
  (detail: string) =>
    `nftables refused a change on the host bridge: ${detail}; is the watchdog root on the host, and is nft installed?`,
);
export const ERR_WATCHDOG_BLOCK_TARGET = defineError(
  'CORDON_ERR_WATCHDOG_BLOCK_TARGET',
  (detail: string) => `block decision cannot be enforced on the bridge: ${detail}`,
);
export const ERR_WATCHDOG_ENROLL = defineError(
  'CORDON_ERR_WATCHDOG_ENROLL',
  (detail: string) =>
    `watchdog enrollment failed: ${detail}; make a host token with "cordon hosts token --host <host>"`,
);
