import { isAbsolute, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { z } from 'zod';
import { ERR_STAGE_DUPLICATE, ERR_STAGE_MODULE } from './errors.js';
import type { StageModule } from './module.js';

/**
 * The configuration sections of a list of stages, keyed by stage name: a `configured` stage's
 * section is optional (its presence turns it on), every other one defaults to `{}`.
 */
export function stageSections(modules: readonly StageModule[]): Record<string, z.ZodTypeAny> {
  return Object.fromEntries(
    modules.map((m) => [m.name, m.when === 'configured' ? m.config.optional() : m.config.default({})]),
  );
}

/** The stages `cordon up` runs for a configuration: every `always` one, and `configured` ones whose section is present. */
export function stagesEnabled(modules: readonly StageModule[], sections: Record<string, unknown>): StageModule[] {
  return modules.filter((m) => m.when !== 'configured' || sections[m.name] !== undefined);
}

/** Stage names must be unique; the list order is the start order. */
export function checkStageList(modules: readonly StageModule[]): void {
  const seen = new Set<string>();
  for (const m of modules) {
    if (seen.has(m.name)) throw ERR_STAGE_DUPLICATE(m.name);
    seen.add(m.name);
  }
}

const NAME = /^[a-z][a-z0-9-]{0,39}$/;

function isStageModule(v: unknown): string | null {
  if (typeof v !== 'object' || v === null) return 'it exports no object named "stage" or "default"';
  const m = v as Partial<StageModule>;
  if (typeof m.name !== 'string' || !NAME.test(m.name))
    return 'its "name" must be lower-case letters, digits and "-" (up to 40)';
  if (typeof m.summary !== 'string') return 'it has no "summary" string';
  if (!m.config || typeof (m.config as { safeParse?: unknown }).safeParse !== 'function')
    return 'its "config" is not a zod schema';
  for (const f of ['inputs', 'outputs', 'start'] as const)
    if (typeof m[f] !== 'function') return `its "${f}" is not a function`;
  return null;
}

/**
 * Stage modules from files outside the tree (`CORDON_STAGE_MODULES`, `--stage-module`): each
 * file exports its module as `stage` or `default`.
 */
export async function loadStageModules(files: readonly string[], cwd = process.cwd()): Promise<StageModule[]> {
  const out: StageModule[] = [];
  for (const f of files) {
    const path = isAbsolute(f) ? f : resolve(cwd, f);
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
    } catch (err) {
      throw ERR_STAGE_MODULE.withCause(err, path, `it could not be imported (${(err as Error).message})`);
    }
    const candidate = mod.stage ?? mod.default;
    const problem = isStageModule(candidate);
    if (problem) throw ERR_STAGE_MODULE(path, problem);
    out.push(candidate as StageModule);
  }
  return out;
}
