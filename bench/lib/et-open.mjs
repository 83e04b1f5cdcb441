// ET Open from the shared corpus beside the checkout, for the DPI benches: its rule files as
// rule sources, or null (after saying so) when the corpus is not there.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ET_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../shared/corpus/et-open');

/** The `.rules` files of ET Open as `{ name, text }`; null when absent (`bench` names the skip). */
export function etOpenSources(bench) {
  if (!existsSync(ET_DIR)) {
    console.log(`${bench}: ET Open rules not found at ${ET_DIR}; skipping`);
    return null;
  }
  return readdirSync(ET_DIR)
    .filter((f) => f.endsWith('.rules'))
    .map((f) => ({ name: f, text: readFileSync(join(ET_DIR, f), 'utf8') }));
}
