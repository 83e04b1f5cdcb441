import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { responseOf, type XmlElement } from '../src/index.js';

/** A response recorded from infra/vcsim by scripts/record-fixtures.mjs. */
export function fixture(name: string): string {
  return readFileSync(fileURLToPath(new URL(`../../test/fixtures/${name}`, import.meta.url)), 'utf8');
}

/** The `<MethodResponse>` element of a recorded response (throws its fault as a coded error). */
export function recorded(name: string, method: string): XmlElement {
  return responseOf(fixture(name), { source: 'https://vcsim.test/sdk', method, username: 'cordon' });
}
