import { checkStageList, ERR_STAGE_MODULE, loadStageModules, type StageModule } from '@cordon/stage';

/**
 * Every stage `cordon up` and `cordon run` know, in start order. A new stage is its folder
 * (a package exporting its module as `stage`) and one line here; the configuration schema,
 * the service list and the help text all come from this list.
 */
const BUILTIN = [
  '@cordon/inventory',
  '@cordon/coordinator',
  '@cordon/flows',
  '@cordon/dpi',
  '@cordon/loginspect',
  '@cordon/procinspect',
  '@cordon/netconf',
  '@cordon/fim',
  '@cordon/agent',
  '@cordon/responder',
  '@cordon/recommend',
  '@cordon/notify',
  '@cordon/watchdog',
  '@cordon/sink',
  '@cordon/manager',
];

async function loadPackages(specs: readonly string[]): Promise<StageModule[]> {
  const out: StageModule[] = [];
  for (const spec of specs) {
    const mod = (await import(spec)) as { stage?: StageModule };
    if (!mod.stage) throw ERR_STAGE_MODULE(spec, 'the package exports no "stage"');
    out.push(mod.stage);
  }
  return out;
}

export const BUILTIN_STAGES: readonly StageModule[] = await loadPackages(BUILTIN);

/** Where out-of-tree stage modules are named (files, separated by ":"). */
export const STAGE_MODULES_ENV = 'CORDON_STAGE_MODULES';

/** The built-in stages plus out-of-tree ones (`CORDON_STAGE_MODULES`, `--stage-module`), checked for unique names. */
export async function stageList(
  extraFiles: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<StageModule[]> {
  const files = [...(env[STAGE_MODULES_ENV] ?? '').split(':').filter(Boolean), ...extraFiles];
  const list = [...BUILTIN_STAGES, ...(files.length ? await loadStageModules(files) : [])];
  checkStageList(list);
  return list;
}
