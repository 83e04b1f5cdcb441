import { parseArgs } from 'node:util';
import { describeError } from '@cordon/runtime';
import { checkName, checkSha256, DEFAULT_LIMITS, ETOPEN_NAME, ETOPEN_URL, listInstalled, rulesDir, updateRuleSet, ERR_RULES_USAGE, type SourceSpec, type UpdateLimits } from '@cordon/rulesets';
import { loadConfig } from './config.js';
import { formatTable } from './format.js';

/**
 * `cordon rules update` and `cordon rules list` (rule sources, as suricata-update has them);
 * `cordon rules check` stays with the dpi package.
 */

const MB = 1048576;

export const RULES_UPDATE_HELP = `cordon rules update — download, verify and install rule sets

Usage:
  cordon rules update [--source URL|FILE [--name NAME] [--sha256 HEX]]… [options]

Each source is fetched (http, https or a local file: a .tar.gz, a .tar or a single .rules
file), verified, and its .rules files (with classification.config, reference.config,
threshold.config, sid-msg.map, gen-msg.map, unicode.map) installed as a new version under
<data dir>/rules/<name>/<version>/, with <name>/current pointing at it. The version it
replaces is kept; older ones are removed. A failed update leaves the installed set as it
was. Policies use a set by name: "ruleSets: [${ETOPEN_NAME}]" (cordon policy apply FILE).

Options (environment variable, default):
  --source URL|FILE      where to get a set; repeatable, each source is its own set
                         (CORDON_ETOPEN_URL changes the default; default ${ETOPEN_URL},
                         named ${ETOPEN_NAME})
  --name NAME            the set's name; one per --source, in the same order (no variable;
                         default: ${ETOPEN_NAME} for ET Open, else the file name without
                         .tar.gz/.tgz/.tar/.rules)
  --sha256 HEX           the archive's expected SHA-256; one per --source, in order; a
                         mismatch fails the update (no variable; default: none given — then
                         <source>.sha256 or else <source>.md5, as ET publishes, is fetched
                         and must match when the server has one)
  --no-checksum-file     do not look for <source>.sha256 / <source>.md5 (no variable; default: look)
  --max-download-mb N    largest archive accepted (no variable; default ${DEFAULT_LIMITS.maxDownloadBytes / MB})
  --max-unpacked-mb N    largest archive after decompression: a gzip bomb stops here
                         (no variable; default ${DEFAULT_LIMITS.maxUnpackedBytes / MB})
  --max-entries N        most entries in the archive (no variable; default ${DEFAULT_LIMITS.maxEntries})
  --timeout-s N          a download that takes longer fails (no variable; default ${DEFAULT_LIMITS.timeoutMs / 1000})
  --data-dir DIR         where sets are installed, under rules/ (CORDON_DATA_DIR; default ./data)
  --config FILE          YAML configuration; its dataDir is used (no variable; default none)
  -h, --help             this text
`;

export const RULES_LIST_HELP = `cordon rules list — the installed rule sets

Usage:
  cordon rules list [--format table|json] [--data-dir DIR] [--config FILE]

One line per set: name, current version, source, when it was fetched, how it was verified,
files, enabled and disabled rules, the archive's sha256, and the previous version kept.

Options (environment variable, default):
  --format table|json    output format (no variable; default table)
  --data-dir DIR         where sets are installed, under rules/ (CORDON_DATA_DIR; default ./data)
  --config FILE          YAML configuration; its dataDir is used (no variable; default none)
  -h, --help             this text
`;

const COMMON = {
  config: { type: 'string' },
  'data-dir': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

const UPDATE_OPTIONS = {
  ...COMMON,
  source: { type: 'string', multiple: true },
  name: { type: 'string', multiple: true },
  sha256: { type: 'string', multiple: true },
  'no-checksum-file': { type: 'boolean' },
  'max-download-mb': { type: 'string' },
  'max-unpacked-mb': { type: 'string' },
  'max-entries': { type: 'string' },
  'timeout-s': { type: 'string' },
} as const;

const LIST_OPTIONS = { ...COMMON, format: { type: 'string' } } as const;

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  env?: NodeJS.ProcessEnv;
  now?: () => Date;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
};

function parse<T extends typeof UPDATE_OPTIONS | typeof LIST_OPTIONS>(argv: string[], options: T) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: false, strict: true });
  } catch (err) {
    throw ERR_RULES_USAGE.withCause(err, (err as Error).message);
  }
}

function dataDirFrom(values: { config?: string; 'data-dir'?: string }, env: NodeJS.ProcessEnv): string {
  return loadConfig({ env, ...(values.config ? { file: values.config } : {}), flags: { ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}) } }).dataDir;
}

function positive(flag: string, v: string | undefined, fallback: number, unit: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!(Number.isFinite(n) && n > 0)) throw ERR_RULES_USAGE(`${flag} must be a positive number, not "${v}"`);
  return Math.round(n * unit);
}

/** `cordon rules update|list …` (argv starts with the verb). */
export async function rulesCommand(argv: string[], io: Io = defaultIo): Promise<number> {
  const [verb, ...rest] = argv;
  return verb === 'list' ? rulesList(rest, io) : rulesUpdate(rest, io);
}

async function rulesUpdate(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, UPDATE_OPTIONS);
  if (values.help) return io.out(RULES_UPDATE_HELP), 0;
  const env = io.env ?? process.env;
  const locations = values.source ?? [env.CORDON_ETOPEN_URL || ETOPEN_URL];
  const names = values.name ?? [];
  const digests = values.sha256 ?? [];
  if (names.length > locations.length || digests.length > locations.length) {
    throw ERR_RULES_USAGE(`--name and --sha256 go with a --source each, in order (${locations.length} source(s), ${names.length} name(s), ${digests.length} sha256)`);
  }
  if (names.length && names.length !== locations.length) throw ERR_RULES_USAGE('give a --name for every --source, or none');
  if (digests.length && digests.length !== locations.length) throw ERR_RULES_USAGE('give a --sha256 for every --source, or none');
  const limits: UpdateLimits = {
    maxDownloadBytes: positive('--max-download-mb', values['max-download-mb'], DEFAULT_LIMITS.maxDownloadBytes, MB),
    maxUnpackedBytes: positive('--max-unpacked-mb', values['max-unpacked-mb'], DEFAULT_LIMITS.maxUnpackedBytes, MB),
    maxEntries: positive('--max-entries', values['max-entries'], DEFAULT_LIMITS.maxEntries, 1),
    timeoutMs: positive('--timeout-s', values['timeout-s'], DEFAULT_LIMITS.timeoutMs, 1000),
  };
  const specs: SourceSpec[] = locations.map((location, i) => ({
    location,
    ...(names[i] !== undefined ? { name: checkName(names[i]) } : {}),
    ...(digests[i] !== undefined ? { sha256: checkSha256(digests[i]) } : {}),
  }));
  const dataDir = dataDirFrom(values, env);
  let failed = 0;
  for (const spec of specs) {
    try {
      const r = await updateRuleSet(spec, { dataDir, limits, sidecars: !values['no-checksum-file'], now: io.now ?? (() => new Date()) });
      const s = r.result.set;
      const what = `${s.rules} rules (${s.disabled} disabled) in ${s.files.filter((f) => f.name.endsWith('.rules')).length} rule files; verified: ${s.verified}`;
      if (!r.result.changed) io.out(`${r.name}: unchanged at ${s.version} (same sha256 as installed); ${what}`);
      else {
        const prev = r.result.replaced ? `; previous ${r.result.replaced} kept` : '';
        const gone = r.result.removed.length ? `; removed ${r.result.removed.join(', ')}` : '';
        io.out(`${r.name}: installed ${s.version} from ${r.source}: ${what}${prev}${gone}`);
      }
    } catch (err) {
      failed++;
      const { code, message } = describeError(err);
      io.err(`cordon rules update: ${spec.name ?? spec.location}: ${code}: ${message}`);
    }
  }
  if (failed < specs.length) io.out(`Installed sets are under ${rulesDir(dataDir)}; use one in a policy with "ruleSets: [name]" and "cordon policy apply FILE".`);
  return failed ? 1 : 0;
}

async function rulesList(argv: string[], io: Io): Promise<number> {
  const { values } = parse(argv, LIST_OPTIONS);
  if (values.help) return io.out(RULES_LIST_HELP), 0;
  const fmt = values.format ?? 'table';
  if (fmt !== 'table' && fmt !== 'json') throw ERR_RULES_USAGE(`--format must be table or json, not "${fmt}"`);
  const dataDir = dataDirFrom(values, io.env ?? process.env);
  const sets = listInstalled(dataDir);
  if (fmt === 'json') {
    for (const s of sets) {
      const { files, dir, ...rest } = s;
      io.out(JSON.stringify({ ...rest, dir, files: files.length, ruleFiles: files.filter((f) => f.name.endsWith('.rules')).map((f) => f.name) }));
    }
    return 0;
  }
  if (sets.length === 0) {
    io.out(`No rule sets are installed in ${rulesDir(dataDir)}. "cordon rules update" installs Emerging Threats Open; "--source URL|FILE --name NAME" any other.`);
    return 0;
  }
  io.out(
    formatTable(
      sets.map((s) => ({
        name: s.name,
        version: s.version,
        source: s.source,
        fetched: s.fetchedAt.replace(/\.\d+Z$/, 'Z'),
        files: s.files.length,
        rules: s.rules,
        disabled: s.disabled,
        verified: s.verified.replace(/ \(.*\)$/, s.verified.includes('pinned') ? ' (pinned)' : ' (checksum file)'),
        sha256: s.sha256,
        previous: s.previous ?? '',
      })),
    ),
  );
  return 0;
}
