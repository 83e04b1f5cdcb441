import type { StageModule } from '@cordon/stage';
import { didYouMean, parseInvocation, renderHelp, type CommandSpec } from './args.js';
import { out } from './cli-context.js';
import { COMMANDS } from './commands.js';
import { ERR_USAGE } from './errors.js';
import { BUILTIN_STAGES, stageList } from './stages.js';

const stageHelp = (stages: readonly StageModule[]) =>
  stages
    .map(
      (m) =>
        `  ${m.name.padEnd(12)} ${m.summary}${m.when === 'configured' ? ' (runs when its section is configured)' : ''}`,
    )
    .join('\n');

const SERVICES_TITLE = 'Services (each a stage; `cordon run <name>`, and a section of the configuration):';

function leaves(specs: readonly CommandSpec[], prefix: string[] = []): Array<{ words: string; spec: CommandSpec }> {
  return specs.flatMap((c) => {
    const path = [...prefix, c.name];
    if (c.subcommands?.length) return leaves(c.subcommands, path);
    const args = (c.args ?? [])
      .map((a) => (a.required ? a.name : `[${a.name}${a.variadic ? '…' : ''}]`) + (a.required && a.variadic ? '…' : ''))
      .join(' ');
    return [{ words: [...path, args].filter(Boolean).join(' '), spec: c }];
  });
}

/** The overview: every command from the table, and the services from the stage list. */
export const usage = (stages: readonly StageModule[] = BUILTIN_STAGES): string => {
  const rows = leaves(COMMANDS);
  const w = Math.max(...rows.map((r) => r.words.length));
  return `cordon — server defense for virtualized data centers

Usage:
  cordon COMMAND [flags]          "cordon COMMAND --help" lists its flags, their environment variables and defaults

Commands:
${rows.map((r) => `  ${r.words.padEnd(w)}  ${r.spec.summary}`).join('\n')}

${SERVICES_TITLE}
${stageHelp(stages)}

Logs go to stderr (coloured lines on a terminal, JSON otherwise: --log-format, CORDON_LOG_FORMAT),
results to stdout.
`;
};

/** `--help` of a command; `up` and `run` also list the services. */
function helpOf(path: readonly string[], spec: CommandSpec, stages: readonly StageModule[]): string {
  const text = renderHelp(path, spec);
  return path.length === 1 && (path[0] === 'up' || path[0] === 'run')
    ? `${text}\n${SERVICES_TITLE}\n${stageHelp(stages)}\n`
    : text;
}

/** Walk the command words: the command spec, its path, and where its flags start. */
function resolveCommand(argv: readonly string[]): {
  spec: CommandSpec;
  path: string[];
  at: number;
  wantsHelp: boolean;
} {
  let specs: readonly CommandSpec[] = COMMANDS;
  const path: string[] = [];
  for (let i = 0; ; i++) {
    const word = argv[i];
    const spec = specs.find((c) => c.name === word);
    if (!spec) {
      const parent = path.length ? commandAt(path) : null;
      if (parent && (word === '--help' || word === '-h')) return { spec: parent, path, at: i, wantsHelp: true };
      const names = specs.map((c) => c.name);
      if (!parent) throw ERR_USAGE(`unknown command "${word}"${didYouMean(word ?? '', names)}`);
      if (word === undefined) throw ERR_USAGE(`"cordon ${path.join(' ')}" needs a command: ${names.join(', ')}`);
      throw ERR_USAGE(`unknown command "cordon ${path.join(' ')} ${word}"${didYouMean(word, names)}`);
    }
    path.push(spec.name);
    if (!spec.subcommands?.length) return { spec, path, at: i + 1, wantsHelp: false };
    specs = spec.subcommands;
  }
}

function commandAt(path: readonly string[]): CommandSpec | null {
  let specs: readonly CommandSpec[] = COMMANDS;
  let found: CommandSpec | null = null;
  for (const w of path) {
    found = specs.find((c) => c.name === w) ?? null;
    if (!found) return null;
    specs = found.subcommands ?? [];
  }
  return found;
}

export async function main(argv: string[]): Promise<number> {
  const [first] = argv;
  if (first === undefined || first === '--help' || first === '-h') {
    out(usage(await stageList()));
    return first === undefined ? 2 : 0;
  }
  if (first === 'help') {
    const words = argv.slice(1).filter((a) => a !== '--help' && a !== '-h');
    const stages = await stageList();
    if (words.length === 0) {
      // "cordon help --help" describes the help command itself
      out(words.length === argv.length - 1 ? usage(stages) : helpOf(['help'], commandAt(['help'])!, stages).trimEnd());
      return 0;
    }
    const { spec, path } = resolveCommand([...words, '--help']);
    out(helpOf(path, spec, stages).trimEnd());
    return 0;
  }
  const { spec, path, at, wantsHelp } = resolveCommand(argv);
  const inv = wantsHelp ? null : parseInvocation(path, spec, argv.slice(at), process.env);
  if (!inv || !spec.run) {
    out(helpOf(path, spec, await stageList()).trimEnd());
    return 0;
  }
  return spec.run(inv);
}

export { COMMANDS };
