import { defineError } from '@cordon/runtime';

export const ERR_COORDINATOR_SECRET = defineError(
  'CORDON_ERR_COORDINATOR_SECRET',
  (detail: string) =>
    `the coordinator has no usable enrollment secret (${detail}); set enrollSecretFile, CORDON_ENROLL_SECRET, or run "cordon agents token" once on this data dir`,
);
export const ERR_COORDINATOR_BINDING = defineError(
  'CORDON_ERR_COORDINATOR_BINDING',
  (agent: string, detail: string) =>
    `the enrollment record of agent ${agent} is unreadable (${detail}); the agent must enroll again`,
);
