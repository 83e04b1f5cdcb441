import { defineError } from '@cordon/runtime';

export const ERR_USAGE = defineError('CORDON_ERR_CLI_USAGE', (detail: string) => `${detail}; run "cordon help" for usage`);
export const ERR_CONFIG = defineError('CORDON_ERR_CONFIG', (source: string, detail: string) => `invalid configuration in ${source}: ${detail}`);
export const ERR_UNKNOWN_SERVICE = defineError(
  'CORDON_ERR_CLI_UNKNOWN_SERVICE',
  (name: string, known: string[]) => `no service named "${name}"; known services: ${known.join(', ')}`,
);
export const ERR_REPLAY = defineError('CORDON_ERR_REPLAY', (file: string, detail: string) => `cannot replay ${file}: ${detail}`);
