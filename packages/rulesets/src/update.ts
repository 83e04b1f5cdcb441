import { createHash } from 'node:crypto';
import { unpackRuleArchive } from './archive.js';
import { ERR_RULES_CHECKSUM, ERR_RULES_USAGE } from './errors.js';
import { describeLocation, fetchBytes, locationFileName, parseLocation, sidecar, type Location } from './fetch.js';
import { installSet, SET_NAME, type InstallResult } from './store.js';

/**
 * `cordon rules update`, one source at a time: fetch (bounded) → verify (pinned SHA-256, else
 * the checksum file published beside the archive) → unpack in memory (bounded, unsafe entries
 * refused) → install as the set's new version. Any failure before the install's final rename
 * leaves the installed set as it was.
 */

/** Where suricata-update gets Emerging Threats Open for Suricata 7 (its default source). */
export const ETOPEN_URL = 'https://rules.emergingthreats.net/open/suricata-7.0/emerging.rules.tar.gz';
export const ETOPEN_NAME = 'et-open';

export interface SourceSpec {
  /** URL (http/https) or local file. */
  location: string;
  name?: string;
  /** Pinned SHA-256 of the archive (hex). */
  sha256?: string;
}

export interface UpdateLimits {
  maxDownloadBytes: number;
  maxUnpackedBytes: number;
  maxEntries: number;
  timeoutMs: number;
}

export const DEFAULT_LIMITS: UpdateLimits = {
  maxDownloadBytes: 64 * 1048576,
  maxUnpackedBytes: 256 * 1048576,
  maxEntries: 10_000,
  timeoutMs: 120_000,
};

export interface UpdateOptions {
  dataDir: string;
  limits: UpdateLimits;
  /** Look for `<source>.sha256` / `<source>.md5` when no --sha256 is given. */
  sidecars: boolean;
  now: () => Date;
  /** The archive's download progress (http sources): bytes so far and the announced length. */
  onProgress?: (bytes: number, total: number | undefined) => void;
}

export interface UpdateReport {
  name: string;
  source: string;
  verified: string;
  result: InstallResult;
}

/** The name a source gets without --name: et-open for ET Open, else its file name without the archive suffix. */
export function deriveName(location: string): string {
  const l = parseLocation(location);
  if (l.kind === 'url' && l.url.hostname === 'rules.emergingthreats.net' && l.url.pathname.startsWith('/open/'))
    return ETOPEN_NAME;
  const base = locationFileName(l)
    .replace(/\.(tar\.gz|tgz|tar|rules\.gz|rules|yara?|gz)$/i, '')
    .toLowerCase()
    .replace(/[^a-z0-9._-]+/g, '-')
    .replace(/^[^a-z0-9]+/, '')
    .slice(0, 64);
  if (!SET_NAME.test(base)) throw ERR_RULES_USAGE(`cannot derive a set name from "${location}"; give one with --name`);
  return base;
}

export function checkName(name: string): string {
  if (!SET_NAME.test(name))
    throw ERR_RULES_USAGE(
      `--name "${name}": a set name is 1-64 of a-z, 0-9, ".", "_" and "-", starting with a letter or digit`,
    );
  return name;
}

export function checkSha256(hex: string): string {
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw ERR_RULES_USAGE(`--sha256 "${hex}" is not 64 hex digits`);
  return hex.toLowerCase();
}

export async function updateRuleSet(spec: SourceSpec, opts: UpdateOptions): Promise<UpdateReport> {
  const location = parseLocation(spec.location);
  const source = describeLocation(location);
  const name = checkName(spec.name ?? deriveName(spec.location));
  const archive = (await fetchBytes(location, {
    maxBytes: opts.limits.maxDownloadBytes,
    timeoutMs: opts.limits.timeoutMs,
    limitFlag: '--max-download-mb',
    ...(opts.onProgress ? { onProgress: opts.onProgress } : {}),
  }))!;
  const verified = await verify(
    archive,
    location,
    spec.sha256 === undefined ? undefined : checkSha256(spec.sha256),
    opts,
  );
  const unpacked = await unpackRuleArchive(archive, source, locationFileName(location), {
    maxUnpackedBytes: opts.limits.maxUnpackedBytes,
    maxEntries: opts.limits.maxEntries,
  });
  const result = installSet(opts.dataDir, {
    name,
    source,
    archive,
    kind: unpacked.kind,
    verified,
    files: unpacked.files,
    skipped: unpacked.skipped.length,
    now: opts.now(),
  });
  return { name, source, verified, result };
}

const digest = (algo: 'sha256' | 'md5', b: Buffer): string => createHash(algo).update(b).digest('hex');

/** How the archive was verified, or CORDON_ERR_RULES_CHECKSUM. */
async function verify(
  archive: Buffer,
  location: Location,
  pinned: string | undefined,
  opts: UpdateOptions,
): Promise<string> {
  const source = describeLocation(location);
  if (pinned !== undefined) {
    const got = digest('sha256', archive);
    if (got !== pinned) throw ERR_RULES_CHECKSUM(source, `its sha256 is ${got}, not the ${pinned} given with --sha256`);
    return 'sha256 (pinned)';
  }
  if (!opts.sidecars) return 'none';
  // ET publishes <archive>.md5 beside each archive; a .sha256 is preferred where a source has one
  for (const [algo, hexLen] of [
    ['sha256', 64],
    ['md5', 32],
  ] as const) {
    const at = sidecar(location, `.${algo}`);
    const body = await fetchBytes(at, { maxBytes: 4096, timeoutMs: opts.limits.timeoutMs, missingOk: true });
    if (body === null) continue;
    const token = body.toString('utf8').trim().split(/\s+/)[0] ?? '';
    if (!new RegExp(`^[0-9a-fA-F]{${hexLen}}$`).test(token)) {
      throw ERR_RULES_CHECKSUM(source, `the checksum file ${describeLocation(at)} does not hold a ${algo} digest`);
    }
    const got = digest(algo, archive);
    if (got !== token.toLowerCase())
      throw ERR_RULES_CHECKSUM(
        source,
        `its ${algo} is ${got}, but ${describeLocation(at)} says ${token.toLowerCase()}`,
      );
    return `${algo} (${describeLocation(at)})`;
  }
  return 'none';
}
