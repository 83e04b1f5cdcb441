import { defineError } from '@cordon/runtime';

export const ERR_AGENT_CONFIG = defineError(
  'CORDON_ERR_AGENT_CONFIG',
  (detail: string) => `invalid agent configuration: ${detail}`,
);
export const ERR_AGENT_STATE = defineError(
  'CORDON_ERR_AGENT_STATE',
  (file: string, detail: string) =>
    `agent state file ${file} is unreadable (${detail}); it was set aside and the agent starts that part afresh`,
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
export const ERR_LOG_NOT_REGULAR = defineError(
  'CORDON_ERR_AGENT_LOG_NOT_REGULAR',
  (path: string, kind: string) =>
    `log ${path} is a ${kind}, not a regular file; it is not read (a link is never followed, a FIFO or device never opened for reading)`,
);
export const ERR_LOG_NOT_ALLOWED = defineError(
  'CORDON_ERR_AGENT_LOG_NOT_ALLOWED',
  (path: string, real: string, roots: string) =>
    `log ${path} (really ${real}) is not below the agent's log roots (${roots}); add its directory to logRoots in the agent's file if it is meant to be read`,
);
export const ERR_AGENT_POLICY_REFUSED = defineError(
  'CORDON_ERR_AGENT_POLICY_REFUSED',
  (policy: string, detail: string) =>
    `policy ${policy} asks for more than this agent allows (${detail}); the rest of it applies. Widen logRoots, fimRoots or fimMaxHashThreads in the agent's own file if this is meant`,
);
export const ERR_AGENT_SIGNING_KEY = defineError(
  'CORDON_ERR_AGENT_SIGNING_KEY',
  (file: string, detail: string) =>
    `the agent's signing key ${file} is unusable (${detail}); it was set aside and a new key made — the coordinator refuses a new key for an enrolled agent, so enroll it with a new token ("cordon agents token --vm <vm>")`,
);
export const ERR_AGENT_PROCESS_EVENTS_LOST = defineError(
  'CORDON_ERR_AGENT_PROCESS_EVENTS_LOST',
  (lost: number, mode: string) =>
    `${lost} process events were lost (mode ${mode}: more than the agent's queue or rate limit took, or the kernel's socket overflowed); raise processes.maxQueue or maxEventsPerSecond in the policy if the load is legitimate, else look for a fork or exec storm`,
);
