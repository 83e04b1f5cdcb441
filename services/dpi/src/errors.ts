import { defineError } from '@cordon/runtime';

export const ERR_DPI_USAGE = defineError('CORDON_ERR_DPI_USAGE', (detail: string) => `${detail}; run "cordon help" for usage`);
export const ERR_DPI_RULES_READ = defineError(
  'CORDON_ERR_DPI_RULES_READ',
  (file: string, detail: string) => `cannot read rule file ${file} (${detail}); check the path`,
);
