import { defineError } from '@cordon/runtime';

export const ERR_INVENTORY_SOURCE = defineError(
  'CORDON_ERR_INVENTORY_SOURCE',
  (url: string, detail: string) => `inventory source ${url}: ${detail}`,
);
export const ERR_INVENTORY_FILE = defineError(
  'CORDON_ERR_INVENTORY_FILE',
  (file: string, detail: string) =>
    `inventory file ${file} cannot be used: ${detail}; the last good version stays in force`,
);
export const ERR_INVENTORY_STATE = defineError(
  'CORDON_ERR_INVENTORY_STATE',
  (source: string, detail: string) =>
    `the inventory checkpoint of ${source} is unreadable (${detail}); following from the platform's present instead`,
);
