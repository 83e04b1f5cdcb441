import { defineError } from '@cordon/runtime';

export const ERR_STAGE_NO_VALUE = defineError(
  'CORDON_ERR_STAGE_NO_VALUE',
  (topic: string) =>
    `a record on ${topic} has no value (null); this topic carries no tombstones, so it was dead-lettered`,
);
export const ERR_STAGE_CONFIG = defineError(
  'CORDON_ERR_STAGE_CONFIG',
  (stage: string, detail: string) => `invalid configuration of stage "${stage}": ${detail}`,
);
export const ERR_STAGE_FAILED = defineError(
  'CORDON_ERR_STAGE_FAILED',
  (stage: string, what: string) => `stage "${stage}" stopped on an error in ${what}; see the cause, then restart it`,
);
export const ERR_STAGE_MODULE = defineError(
  'CORDON_ERR_STAGE_MODULE',
  (file: string, detail: string) => `${file} is not a stage module: ${detail}`,
);
export const ERR_STAGE_DUPLICATE = defineError(
  'CORDON_ERR_STAGE_DUPLICATE',
  (name: string) => `two stage modules are named "${name}"; stage names must be unique`,
);
export const ERR_METRICS_ADDR = defineError(
  'CORDON_ERR_METRICS_ADDR',
  (addr: string) => `metrics address "${addr}" is not HOST:PORT (e.g. 127.0.0.1:9464) or "off"`,
);
export const ERR_STAGE_UNDECLARED_READ = defineError(
  'CORDON_ERR_STAGE_UNDECLARED_READ',
  (stage: string, topic: string) =>
    `stage "${stage}" follows ${topic}, which its module declares in neither inputs() nor reads(); declare it there (its Kafka principal is granted only what the module declares)`,
);
export const ERR_RECORD_UNSIGNED = defineError('CORDON_ERR_RECORD_UNSIGNED', (topic: string, claimed?: string) =>
  claimed
    ? `a record on ${topic} names ${claimed}, which signs everything it writes (its key is registered), but carries no signature; it was dead-lettered`
    : `a record on ${topic} carries no producer signature (headers cordon-agent, cordon-sig), and records on this topic must be signed by the agent or watchdog that produced them; it was dead-lettered. If it came from an agent, that agent predates signing or lost its key: enroll it again`,
);
export const ERR_RECORD_FORGED = defineError(
  'CORDON_ERR_RECORD_FORGED',
  (topic: string, producer: string, detail: string) =>
    `a record on ${topic} signed as ${producer} does not hold (${detail}); it was dead-lettered and never acted on. If ${producer} is real, check that the coordinator registered its key (topic cordon.producers.v1)`,
);
export const ERR_RECORD_MISBOUND = defineError(
  'CORDON_ERR_RECORD_MISBOUND',
  (topic: string, producer: string, detail: string) =>
    `a record on ${topic} signed by ${producer} speaks for something it is not enrolled for (${detail}); it was dead-lettered and never acted on`,
);
