/**
 * The corpora some tests are judged on — real captures with known alerts, real rule sets,
 * real logs — live in a folder beside the checkout (`../shared/corpus/<name>`), not in the
 * repository: a clone has none of them. Tests that need one ask here and skip with the
 * same printed reason when it is absent; nothing outside tests and benchmarks reads them.
 * `CORDON_SHARED` names another place for the shared folder.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export type CorpusName = 'suricata-verify' | 'suricata-verify-tier2' | 'et-open' | 'sigma' | 'logs';

/** packages/testkit/dist/src → the repository root. */
const REPO_ROOT = join(import.meta.dirname, '..', '..', '..', '..');

/** The shared folder, how a skip reason names it, and what it says when a corpus is not there. */
function sharedDir(): { dir: string; shown: string; absent: string } {
  const env = process.env['CORDON_SHARED'];
  if (env) return { dir: env, shown: env, absent: `missing (CORDON_SHARED=${env})` };
  return { dir: join(REPO_ROOT, '..', 'shared'), shown: '../shared', absent: 'not beside this checkout' };
}

/** Where the corpus is expected, whether or not it is there. */
export function corpusPath(name: CorpusName): string {
  return join(sharedDir().dir, 'corpus', name);
}

/** The corpus folder, or null when it is not beside this checkout. */
export function corpus(name: CorpusName): string | null {
  const p = corpusPath(name);
  return existsSync(p) ? p : null;
}

/**
 * For a test's options: `test(name, { skip: skipWithoutCorpus('sigma') }, fn)`. False when
 * every named corpus is present; otherwise the reason the runner prints beside the skip.
 */
export function skipWithoutCorpus(...names: CorpusName[]): string | false {
  const missing = names.filter((n) => corpus(n) === null);
  if (!missing.length) return false;
  const { shown, absent } = sharedDir();
  const paths = missing.map((n) => `${shown}/corpus/${n}`).join(' and ');
  return `skipped: ${paths} ${missing.length > 1 ? 'are' : 'is'} ${absent}`;
}
