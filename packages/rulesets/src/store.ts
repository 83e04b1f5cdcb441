import { createHash, randomBytes } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { ERR_RULES_BUSY, ERR_RULES_CORRUPT, ERR_RULES_INSTALL, ERR_RULES_NOT_INSTALLED } from './errors.js';
import { isRuleFile, isYaraRuleFile } from './archive.js';
import { DISABLED_RULE_LINE, RULE_LINE, ruleFileLines } from './rule-text.js';

/**
 * Installed rule sets under the data dir, one folder per set and one per version:
 *
 *   <dataDir>/rules/<name>/<version>/          the kept files + manifest.json
 *   <dataDir>/rules/<name>/current -> <version>  (relative symlink, swapped atomically)
 *
 * A version is `<UTC time>-<first 12 hex of the archive's sha256>`: sortable, and it says
 * both when and what. Installing writes a staging folder, renames it into place and then
 * renames a new `current` link over the old one — each step atomic — so a reader sees the
 * old set or the new one, never half of one, and an update that fails before the last rename
 * leaves the old set in force. The version that was current before stays on disk (one step
 * back); older ones are removed.
 */

export interface ManifestFile {
  name: string;
  bytes: number;
  sha256: string;
  /** Enabled rules (lines that start with an action); 0 for configuration files. */
  rules: number;
  /** Commented-out rules ("# alert …"), as ET ships many. */
  disabled: number;
}

export interface Manifest {
  name: string;
  version: string;
  source: string;
  /** The archive as downloaded. */
  sha256: string;
  bytes: number;
  kind: 'tar.gz' | 'tar' | 'rules';
  /** How the archive was checked: "sha256 (pinned)", "sha256 (<url>.sha256)", "md5 (<url>.md5)" or "none". */
  verified: string;
  fetchedAt: string;
  files: ManifestFile[];
  rules: number;
  disabled: number;
  skipped: number;
}

export interface InstalledSet extends Manifest {
  dir: string;
  /** The version kept from before the current one, if any. */
  previous: string | null;
}

/** Set names are folder names: a strict alphabet, so a name can never be a path. */
export const SET_NAME = /^[a-z0-9][a-z0-9._-]{0,63}$/;

export const rulesDir = (dataDir: string): string => join(dataDir, 'rules');
const setDir = (dataDir: string, name: string): string => join(rulesDir(dataDir), name);

const YARA_RULE = /^\s*(?:(?:private|global)\s+)*rule\s+[A-Za-z_][A-Za-z0-9_]*/gm;

/** Rules in a file: Suricata rules (and commented-out ones) in a `.rules` file, YARA rules in a `.yar`/`.yara`. */
export function countRulesIn(name: string, text: string): { rules: number; disabled: number } {
  if (/\.(yar|yara)$/.test(name)) return { rules: text.match(YARA_RULE)?.length ?? 0, disabled: 0 };
  return countRules(text);
}

export function countRules(text: string): { rules: number; disabled: number } {
  let rules = 0;
  let disabled = 0;
  for (const { text: l } of ruleFileLines(text)) {
    if (RULE_LINE.test(l)) rules++;
    else if (DISABLED_RULE_LINE.test(l)) disabled++;
  }
  return { rules, disabled };
}

const sha256 = (b: Buffer | string): string => createHash('sha256').update(b).digest('hex');

function currentVersion(dir: string): string | null {
  try {
    const v = readlinkSync(join(dir, 'current'));
    return v.includes('/') ? null : v;
  } catch {
    return null;
  }
}

function readManifest(dir: string, version: string): Manifest {
  const file = join(dir, version, 'manifest.json');
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Manifest;
  } catch (err) {
    throw ERR_RULES_CORRUPT.withCause(
      err,
      join(dir, version),
      `its manifest.json cannot be read (${(err as Error).message})`,
    );
  }
}

/** The set's installed version, or null when it has none. */
export function installedSet(dataDir: string, name: string): InstalledSet | null {
  const dir = setDir(dataDir, name);
  const version = currentVersion(dir);
  if (version === null || !existsSync(join(dir, version))) return null;
  const m = readManifest(dir, version);
  const others = versionsIn(dir).filter((v) => v !== version);
  return { ...m, dir: join(dir, version), previous: others.sort().pop() ?? null };
}

/** Every installed set, by name. */
export function listInstalled(dataDir: string): InstalledSet[] {
  let names: string[];
  try {
    names = readdirSync(rulesDir(dataDir))
      .filter((n) => SET_NAME.test(n))
      .sort();
  } catch {
    return [];
  }
  return names.map((n) => installedSet(dataDir, n)).filter((s): s is InstalledSet => s !== null);
}

function versionsIn(dir: string): string[] {
  try {
    return readdirSync(dir, { withFileTypes: true })
      .filter((d) => d.isDirectory() && /^\d{8}T\d{6}Z-[0-9a-f]{12}$/.test(d.name))
      .map((d) => d.name);
  } catch {
    return [];
  }
}

export interface RuleText {
  /** `<set>/<file>`: unique across sets, the name a policy publishes the file under. */
  name: string;
  text: string;
}

/**
 * The rule files of an installed set (all of its `.rules`, or those named), checked against
 * the manifest's digests: what `cordon policy apply` publishes for `ruleSets: [name]`.
 */
export function readRuleSet(dataDir: string, name: string, only?: string[]): RuleText[] {
  const set = installedSet(dataDir, name);
  if (!set) throw ERR_RULES_NOT_INSTALLED(name, rulesDir(dataDir));
  const byName = new Map(set.files.map((f) => [f.name, f]));
  const wanted = only ?? set.files.filter((f) => f.name.endsWith('.rules')).map((f) => f.name);
  const out: RuleText[] = [];
  for (const file of wanted) {
    const entry = byName.get(file);
    if (!entry || !file.endsWith('.rules')) {
      const known = set.files.filter((f) => f.name.endsWith('.rules')).map((f) => f.name);
      throw ERR_RULES_CORRUPT(
        set.dir,
        `it has no rule file "${file}" (it has ${known.slice(0, 8).join(', ')}${known.length > 8 ? ', …' : ''})`,
      );
    }
    const data = readFileSync(join(set.dir, file));
    if (sha256(data) !== entry.sha256)
      throw ERR_RULES_CORRUPT(set.dir, `${file} does not match its sha256 in manifest.json`);
    out.push({ name: `${name}/${file}`, text: data.toString('utf8') });
  }
  return out;
}

/**
 * The YARA rule files (`.yar`, `.yara`) of an installed set, checked against the manifest's
 * digests: what the agents' anti-malware scanning loads for `malware.ruleSets: [name]`.
 */
export function readYaraRuleSet(dataDir: string, name: string): RuleText[] {
  const set = installedSet(dataDir, name);
  if (!set) throw ERR_RULES_NOT_INSTALLED(name, rulesDir(dataDir));
  const files = set.files.filter((f) => isYaraRuleFile(f.name));
  if (!files.length) throw ERR_RULES_CORRUPT(set.dir, 'it has no YARA rule file (.yar, .yara)');
  return files.map((entry) => {
    const data = readFileSync(join(set.dir, entry.name));
    if (sha256(data) !== entry.sha256)
      throw ERR_RULES_CORRUPT(set.dir, `${entry.name} does not match its sha256 in manifest.json`);
    return { name: `${name}/${entry.name}`, text: data.toString('utf8') };
  });
}

export interface InstallInput {
  name: string;
  source: string;
  archive: Buffer;
  kind: Manifest['kind'];
  verified: string;
  files: Array<{ name: string; data: Buffer }>;
  skipped: number;
  now: Date;
}

export type InstallResult =
  | { changed: false; set: InstalledSet }
  | { changed: true; set: InstalledSet; replaced: string | null; removed: string[] };

/** Install a verified, unpacked set as its new current version (see the file comment for the steps). */
export function installSet(dataDir: string, input: InstallInput): InstallResult {
  const dir = setDir(dataDir, input.name);
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (err) {
    throw ERR_RULES_INSTALL.withCause(err, dir, (err as Error).message);
  }
  const lock = join(dir, '.lock');
  let fd: number;
  try {
    fd = openSync(lock, 'wx', 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw ERR_RULES_BUSY(input.name, lock);
    throw ERR_RULES_INSTALL.withCause(err, dir, (err as Error).message);
  }
  try {
    writeSync(fd, `${process.pid}\n`);
    closeSync(fd);
    return installLocked(dir, input);
  } finally {
    rmSync(lock, { force: true });
  }
}

function installLocked(dir: string, input: InstallInput): InstallResult {
  const digest = sha256(input.archive);
  const before = currentVersion(dir);
  if (before !== null && existsSync(join(dir, before))) {
    const m = readManifest(dir, before);
    if (m.sha256 === digest) return { changed: false, set: installedSet(dirDataDir(dir), input.name)! };
  }
  // leftovers of an update that died half-way: ours to clean, we hold the lock
  for (const d of readdirSync(dir))
    if (d.startsWith('.staging-') || d.startsWith('.current-')) rmSync(join(dir, d), { recursive: true, force: true });

  const version = `${input.now
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d+Z$/, 'Z')}-${digest.slice(0, 12)}`;
  const staging = join(dir, `.staging-${version}-${randomBytes(4).toString('hex')}`);
  const link = join(dir, `.current-${randomBytes(4).toString('hex')}`);
  let placed = false;
  try {
    mkdirSync(staging, { mode: 0o700 });
    const files: ManifestFile[] = [];
    let rules = 0;
    let disabled = 0;
    for (const f of input.files) {
      writeDurably(join(staging, f.name), f.data);
      const c = isRuleFile(f.name) ? countRulesIn(f.name, f.data.toString('utf8')) : { rules: 0, disabled: 0 };
      rules += c.rules;
      disabled += c.disabled;
      files.push({ name: f.name, bytes: f.data.length, sha256: sha256(f.data), ...c });
    }
    const manifest: Manifest = {
      name: input.name,
      version,
      source: input.source,
      sha256: digest,
      bytes: input.archive.length,
      kind: input.kind,
      verified: input.verified,
      fetchedAt: input.now.toISOString(),
      files,
      rules,
      disabled,
      skipped: input.skipped,
    };
    writeDurably(join(staging, 'manifest.json'), Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`));
    if (existsSync(join(dir, version))) throw new Error(`version ${version} already exists`);
    renameSync(staging, join(dir, version));
    placed = true;
    symlinkSync(version, link);
    renameSync(link, join(dir, 'current'));
    syncDir(dir);
  } catch (err) {
    rmSync(staging, { recursive: true, force: true });
    rmSync(link, { force: true });
    if (placed && currentVersion(dir) !== version) rmSync(join(dir, version), { recursive: true, force: true });
    throw ERR_RULES_INSTALL.withCause(err, dir, (err as Error).message);
  }
  // keep the new version and the one it replaced; older ones go
  const removed: string[] = [];
  for (const v of versionsIn(dir)) {
    if (v === version || v === before) continue;
    rmSync(join(dir, v), { recursive: true, force: true });
    removed.push(v);
  }
  return { changed: true, set: installedSet(dirDataDir(dir), input.name)!, replaced: before, removed };
}

/** <dataDir>/rules/<name> → <dataDir>. */
const dirDataDir = (dir: string): string => join(dir, '..', '..');

function writeDurably(file: string, data: Buffer): void {
  const fd = openSync(file, 'wx', 0o600);
  try {
    let off = 0;
    while (off < data.length) off += writeSync(fd, data, off, data.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function syncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // not every file system lets a directory be fsync'd; the renames are atomic regardless
  }
}

/** For tests and `rules list`: the version folders on disk. */
export function versionsOnDisk(dataDir: string, name: string): string[] {
  return versionsIn(setDir(dataDir, name)).sort();
}
