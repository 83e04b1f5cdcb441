import { defineError } from '@cordon/runtime';

export const ERR_AGENT_CONFIG = defineError('CORDON_ERR_AGENT_CONFIG', (detail: string) => `invalid agent configuration: ${detail}`);
export const ERR_AGENT_STATE = defineError(
  'CORDON_ERR_AGENT_STATE',
  (file: string, detail: string) => `agent state file ${file} is unreadable (${detail}); it was set aside and the agent starts that part afresh`,
);
export const ERR_LOG_SOURCE = defineError(
  'CORDON_ERR_AGENT_LOG_SOURCE',
  (path: string, detail: string) => `cannot read log ${path}: ${detail}; the agent keeps trying`,
);
export const ERR_NFT = defineError(
  'CORDON_ERR_AGENT_NFT',
  (detail: string) => `nftables refused a change: ${detail}; is the agent root in its namespace, and is nft installed?`,
);
export const ERR_BLOCK_TARGET = defineError(
  'CORDON_ERR_AGENT_BLOCK_TARGET',
  (detail: string) => `block decision cannot be enforced: ${detail}`,
);
