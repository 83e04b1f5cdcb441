import { readFileSync } from 'node:fs';
import type { FileAttrs } from '@cordon/schemas';
import type { FileAttribute } from './policy.js';

export type EntryType = 'file' | 'dir' | 'symlink' | 'other';

/**
 * What a scan knows about one path: lstat (links are never followed), the SHA-256 of a
 * regular file's content and a symlink's target. `dev` is kept for rename detection (an
 * inode number means something only on its device); it is not part of FileAttrs.
 */
export interface Entry {
  path: string;
  type: EntryType;
  /** st_mode, file type bits included (as AIDE's "p" compares them). */
  mode: number;
  uid: number;
  gid: number;
  size: number;
  dev: number;
  ino: number;
  mtimeUs: number;
  ctimeUs: number;
  sha256: string | null;
  linkTarget: string | null;
  /** "<code>: <message>" when something about the path could not be read. */
  error: string | null;
}

export function entryTypeOf(mode: number): EntryType {
  switch (mode & 0o170000) {
    case 0o100000:
      return 'file';
    case 0o040000:
      return 'dir';
    case 0o120000:
      return 'symlink';
    default:
      return 'other';
  }
}

/** A human name for st_mode's file type, for error messages. */
export function kindName(mode: number): string {
  switch (mode & 0o170000) {
    case 0o010000:
      return 'FIFO';
    case 0o020000:
      return 'character device';
    case 0o060000:
      return 'block device';
    case 0o140000:
      return 'socket';
    default:
      return 'special file';
  }
}

/** uid → user name and gid → group name, read from /etc/passwd and /etc/group once per scan. */
export interface NameMaps {
  users: Map<number, string>;
  groups: Map<number, string>;
}

export function loadNameMaps(etc = '/etc'): NameMaps {
  return { users: readIdFile(`${etc}/passwd`), groups: readIdFile(`${etc}/group`) };
}

function readIdFile(file: string): Map<number, string> {
  const out = new Map<number, string>();
  let text = '';
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return out; // no names: owner/group stay null, the numeric ids are still checked
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    const id = Number(f[2]);
    if (f[0] && Number.isInteger(id) && !out.has(id)) out.set(id, f[0]);
  }
  return out;
}

export function toFileAttrs(e: Entry, names: NameMaps): FileAttrs {
  return {
    type: e.type,
    size: e.size,
    mode: e.mode,
    uid: e.uid,
    gid: e.gid,
    owner: names.users.get(e.uid) ?? null,
    group: names.groups.get(e.gid) ?? null,
    inode: e.ino,
    mtime_us: e.mtimeUs,
    ctime_us: e.ctimeUs,
    sha256: e.sha256,
    link_target: e.linkTarget,
  };
}

/**
 * The checked attributes that differ between two states of a path. SHA-256 is compared only
 * when both sides have one (a file that could not be hashed this time is not "changed
 * content"; the event carries the error instead). Size and content of directories are not
 * compared: a directory's size is an allocation detail, its mtime already says it changed.
 */
export function changedAttributes(
  before: Entry,
  after: Entry,
  check: ReadonlySet<FileAttribute>,
  names: NameMaps,
): FileAttribute[] {
  const out: FileAttribute[] = [];
  const dir = before.type === 'dir' && after.type === 'dir';
  if (check.has('type') && before.type !== after.type) out.push('type');
  if (check.has('size') && !dir && before.size !== after.size) out.push('size');
  if (check.has('mode') && before.mode !== after.mode) out.push('mode');
  if (check.has('uid') && before.uid !== after.uid) out.push('uid');
  if (check.has('gid') && before.gid !== after.gid) out.push('gid');
  if (check.has('owner') && (names.users.get(before.uid) ?? null) !== (names.users.get(after.uid) ?? null))
    out.push('owner');
  if (check.has('group') && (names.groups.get(before.gid) ?? null) !== (names.groups.get(after.gid) ?? null))
    out.push('group');
  if (check.has('inode') && (before.ino !== after.ino || before.dev !== after.dev)) out.push('inode');
  if (check.has('mtime') && before.mtimeUs !== after.mtimeUs) out.push('mtime');
  if (check.has('ctime') && before.ctimeUs !== after.ctimeUs) out.push('ctime');
  if (check.has('sha256') && before.sha256 !== null && after.sha256 !== null && before.sha256 !== after.sha256)
    out.push('sha256');
  if (check.has('link_target') && before.linkTarget !== after.linkTarget) out.push('link_target');
  return out;
}

/** The attributes FileAttrs carries under each checkable attribute's name, for evidence. */
export function attrValue(a: FileAttrs, name: FileAttribute): unknown {
  switch (name) {
    case 'inode':
      return a.inode;
    case 'mtime':
      return a.mtime_us;
    case 'ctime':
      return a.ctime_us;
    default:
      return a[name];
  }
}

/** Same content and identity as far as a stat can tell: the condition for `trustStat`. */
export function sameStat(
  a: { size: number; mtimeUs: number; ctimeUs: number; ino: number; dev: number },
  b: typeof a,
): boolean {
  return a.size === b.size && a.mtimeUs === b.mtimeUs && a.ctimeUs === b.ctimeUs && a.ino === b.ino && a.dev === b.dev;
}
