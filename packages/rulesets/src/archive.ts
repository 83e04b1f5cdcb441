import { promisify } from 'node:util';
import { gunzip } from 'node:zlib';
import { looksLikeTar, readTar } from './archive-tar.js';
import { ERR_RULES_ARCHIVE, ERR_RULES_TOO_LARGE } from './errors.js';

/**
 * What a rule source's bytes hold, as the files a set keeps: a gzip'd tar (what Emerging
 * Threats and most vendors publish), a plain tar, or a single `.rules` file. Only rule files
 * and the configuration files that go with them are kept, flattened to their base names (a
 * set is one folder); everything else in the archive is listed as skipped.
 */

export interface UnpackLimits {
  /** Largest total after decompression: the tar stream, or the single file. */
  maxUnpackedBytes: number;
  maxEntries: number;
}

export interface UnpackedSet {
  kind: 'tar.gz' | 'tar' | 'rules';
  files: Array<{ name: string; data: Buffer }>;
  /** Paths in the archive that were not kept (directories, links, other files). */
  skipped: string[];
}

/** The files of a rule set worth keeping beside the `.rules` files. */
const KEPT_CONFIG = new Set([
  'classification.config',
  'reference.config',
  'threshold.config',
  'sid-msg.map',
  'gen-msg.map',
  'unicode.map',
]);

/** YARA rule files (for the agents' anti-malware scanning): kept beside Suricata's. */
export const isYaraRuleFile = (name: string): boolean => /^[^.].*\.(yar|yara)$/.test(name);

/** A file that holds rules of either kind. */
export const isRuleFile = (name: string): boolean =>
  (name.endsWith('.rules') && name.length > '.rules'.length) || isYaraRuleFile(name);

export const isKeptFile = (name: string): boolean => isRuleFile(name) || KEPT_CONFIG.has(name);

const gunzipAsync = promisify(gunzip);

export async function unpackRuleArchive(
  bytes: Buffer,
  source: string,
  fileName: string,
  limits: UnpackLimits,
): Promise<UnpackedSet> {
  let raw = bytes;
  let gz = false;
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    gz = true;
    try {
      // zlib stops and fails as soon as the output passes the limit: a gzip bomb costs at most that
      raw = await gunzipAsync(bytes, { maxOutputLength: limits.maxUnpackedBytes });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE' || err instanceof RangeError) {
        throw ERR_RULES_TOO_LARGE.withCause(
          err,
          source,
          `it unpacks to more than ${mib(limits.maxUnpackedBytes)} (the --max-unpacked-mb limit)`,
        );
      }
      throw ERR_RULES_ARCHIVE.withCause(err, source, `gzip data is corrupt (${(err as Error).message})`);
    }
  } else if (bytes.length > limits.maxUnpackedBytes) {
    throw ERR_RULES_TOO_LARGE(
      source,
      `it is larger than ${mib(limits.maxUnpackedBytes)} (the --max-unpacked-mb limit)`,
    );
  }

  if (looksLikeTar(raw)) {
    const listing = readTar(raw, source, { maxEntries: limits.maxEntries });
    const files: UnpackedSet['files'] = [];
    const skipped = [...listing.skipped];
    const seen = new Map<string, string>();
    for (const f of listing.files) {
      const name = f.path.split('/').pop()!;
      if (!isKeptFile(name)) {
        skipped.push(f.path);
        continue;
      }
      const other = seen.get(name);
      if (other !== undefined)
        throw ERR_RULES_ARCHIVE(
          source,
          `two kept files have the name ${name} (${other} and ${f.path}); a set is one folder`,
        );
      seen.set(name, f.path);
      files.push({ name, data: f.data });
    }
    if (!files.some((f) => isRuleFile(f.name)))
      throw ERR_RULES_ARCHIVE(source, `it holds no .rules, .yar or .yara file (${listing.entries} entries)`);
    files.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    return { kind: gz ? 'tar.gz' : 'tar', files, skipped };
  }

  // a single rule file (Suricata or YARA), served as is (or gzip'd)
  const base = fileName.replace(/\.gz$/, '');
  if (isRuleFile(base.split('/').pop()!) && !raw.includes(0)) {
    const name = base.split('/').pop()!;
    if (!isKeptFile(name) || !/^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(name))
      throw ERR_RULES_ARCHIVE(source, `"${name}" is not a usable rule file name`);
    return { kind: 'rules', files: [{ name, data: raw }], skipped: [] };
  }
  throw ERR_RULES_ARCHIVE(source, `it is neither a tar archive (gzip'd or not) nor a text .rules, .yar or .yara file`);
}

export const mib = (bytes: number): string => `${Math.round((bytes / 1048576) * 10) / 10} MiB`;
