import { describeError } from '@cordon/runtime';
import {
  checkName,
  checkSha256,
  DEFAULT_LIMITS,
  ETOPEN_NAME,
  ETOPEN_URL,
  listInstalled,
  rulesDir,
  updateRuleSet,
  ERR_RULES_USAGE,
  type SourceSpec,
  type UpdateLimits,
} from '@cordon/rulesets';
import type { FlagSpec, Invocation } from './args.js';
import { configFrom } from './cli-context.js';
import { ProgressBar } from './progress.js';
import { formatTable } from './format.js';

/**
 * `cordon rules update` and `cordon rules list` (rule sources, as suricata-update has them);
 * `cordon rules check` stays with the dpi package.
 */

const MB = 1048576;

export const RULES_UPDATE_DESCRIPTION = `Each source is fetched (http, https or a local file: a .tar.gz, a .tar or a single .rules
file), verified, and its .rules files (with classification.config, reference.config,
threshold.config, sid-msg.map, gen-msg.map, unicode.map) installed as a new version under
<data dir>/rules/<name>/<version>/, with <name>/current pointing at it. The version it
replaces is kept; older ones are removed. A failed update leaves the installed set as it
was. Policies use a set by name: "ruleSets: [${ETOPEN_NAME}]" (cordon policy apply FILE).`;

export const RULES_LIST_DESCRIPTION = `One line per set: name, current version, source, when it was fetched, how it was verified,
files, enabled and disabled rules, the archive's sha256, and the previous version kept.`;

/** The flags of `cordon rules update` (the command table adds --data-dir, --config and the log flags). */
export const RULES_UPDATE_FLAGS: readonly FlagSpec[] = [
  {
    name: 'source',
    type: 'string',
    value: 'URL|FILE',
    multiple: true,
    env: 'CORDON_ETOPEN_URL',
    default: ETOPEN_URL,
    help: `where to get a set; repeatable, each source is its own set (the default is named ${ETOPEN_NAME}; the variable changes it)`,
  },
  {
    name: 'name',
    type: 'string',
    value: 'NAME',
    multiple: true,
    defaultText: `${ETOPEN_NAME} for ET Open, else the file name without .tar.gz/.tgz/.tar/.rules`,
    help: "the set's name; one per --source, in the same order",
  },
  {
    name: 'sha256',
    type: 'string',
    value: 'HEX',
    multiple: true,
    defaultText:
      'none given: then <source>.sha256, or else <source>.md5 as ET publishes, is fetched and must match when the server has one',
    help: "the archive's expected SHA-256; one per --source, in order; a mismatch fails the update",
  },
  {
    name: 'no-checksum-file',
    type: 'boolean',
    defaultText: 'look',
    help: 'do not look for <source>.sha256 / <source>.md5',
  },
  {
    name: 'max-download-mb',
    type: 'number',
    value: 'N',
    min: 0,
    default: DEFAULT_LIMITS.maxDownloadBytes / MB,
    help: 'largest archive accepted',
  },
  {
    name: 'max-unpacked-mb',
    type: 'number',
    value: 'N',
    min: 0,
    default: DEFAULT_LIMITS.maxUnpackedBytes / MB,
    help: 'largest archive after decompression: a gzip bomb stops here',
  },
  {
    name: 'max-entries',
    type: 'int',
    value: 'N',
    min: 1,
    default: DEFAULT_LIMITS.maxEntries,
    help: 'most entries in the archive',
  },
  {
    name: 'timeout-s',
    type: 'number',
    value: 'N',
    min: 0,
    default: DEFAULT_LIMITS.timeoutMs / 1000,
    help: 'a download that takes longer fails',
  },
];

interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  now?: () => Date;
}

const defaultIo: Io = {
  out: (s) => process.stdout.write(`${s}\n`),
  err: (s) => process.stderr.write(`${s}\n`),
};

function positive(flag: string, v: number, unit: number): number {
  if (!(Number.isFinite(v) && v > 0)) throw ERR_RULES_USAGE(`${flag} must be a positive number, not "${v}"`);
  return Math.round(v * unit);
}

export async function rulesUpdateCommand(inv: Invocation, io: Io = defaultIo): Promise<number> {
  const locations = inv.list('source');
  const names = inv.list('name');
  const digests = inv.list('sha256');
  if (names.length > locations.length || digests.length > locations.length) {
    throw ERR_RULES_USAGE(
      `--name and --sha256 go with a --source each, in order (${locations.length} source(s), ${names.length} name(s), ${digests.length} sha256)`,
    );
  }
  if (names.length && names.length !== locations.length)
    throw ERR_RULES_USAGE('give a --name for every --source, or none');
  if (digests.length && digests.length !== locations.length)
    throw ERR_RULES_USAGE('give a --sha256 for every --source, or none');
  const limits: UpdateLimits = {
    maxDownloadBytes: positive('--max-download-mb', inv.num('max-download-mb')!, MB),
    maxUnpackedBytes: positive('--max-unpacked-mb', inv.num('max-unpacked-mb')!, MB),
    maxEntries: positive('--max-entries', inv.num('max-entries')!, 1),
    timeoutMs: positive('--timeout-s', inv.num('timeout-s')!, 1000),
  };
  const specs: SourceSpec[] = locations.map((location, i) => ({
    location,
    ...(names[i] !== undefined ? { name: checkName(names[i]) } : {}),
    ...(digests[i] !== undefined ? { sha256: checkSha256(digests[i]) } : {}),
  }));
  const dataDir = configFrom(inv).dataDir;
  let failed = 0;
  for (const spec of specs) {
    try {
      const bar = new ProgressBar(`download ${spec.name ?? spec.location}`);
      const r = await updateRuleSet(spec, {
        dataDir,
        limits,
        sidecars: !inv.bool('no-checksum-file'),
        now: io.now ?? (() => new Date()),
        onProgress: (n, total) => bar.update(n, total),
      }).finally(() => bar.done());
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
  if (failed < specs.length)
    io.out(
      `Installed sets are under ${rulesDir(dataDir)}; use one in a policy with "ruleSets: [name]" and "cordon policy apply FILE".`,
    );
  return failed ? 1 : 0;
}

export async function rulesListCommand(inv: Invocation, io: Io = defaultIo): Promise<number> {
  const fmt = inv.str('format');
  const dataDir = configFrom(inv).dataDir;
  const sets = listInstalled(dataDir);
  if (fmt === 'json') {
    for (const s of sets) {
      const { files, dir, ...rest } = s;
      io.out(
        JSON.stringify({
          ...rest,
          dir,
          files: files.length,
          ruleFiles: files.filter((f) => f.name.endsWith('.rules')).map((f) => f.name),
        }),
      );
    }
    return 0;
  }
  if (sets.length === 0) {
    io.out(
      `No rule sets are installed in ${rulesDir(dataDir)}. "cordon rules update" installs Emerging Threats Open; "--source URL|FILE --name NAME" any other.`,
    );
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
