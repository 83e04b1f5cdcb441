import { getSystemErrorName } from 'node:util';
import {
  FIM_PREV_STRIDE,
  FIM_STRIDE,
  FimError,
  FimField,
  FimFlag,
  FimProber,
  FimStatus,
  type FimProbeBatch,
} from '@cordon/native';
import { entryTypeOf, kindName, type Entry } from './attrs.js';
import { ERR_FIM_NOT_REGULAR, ERR_FIM_TOO_LARGE, ERR_FIM_UNREADABLE, ERR_FIM_UNSTABLE, eventError } from './errors.js';

/**
 * Reading one path's attributes and content. The syscalls and the hashing run in the host
 * addon (native/capture/src/fim.rs, through @cordon/native's FimProber), a batch of paths per
 * call; this module turns its arrays into entries and per-file errors.
 *
 * Hostile files are normal:
 * - links are never followed (lstat; open with O_NOFOLLOW), so a symlink swapped in between
 *   the lstat and the open cannot make us hash /dev/zero;
 * - FIFOs, sockets and devices are never opened; if one is swapped in after the lstat,
 *   O_NONBLOCK keeps the open from hanging and the fstat check closes it unread;
 * - a file modified, truncated or replaced while it is hashed is caught by comparing the
 *   lstat before with fstat after open (same inode) and lstat after reading (same inode,
 *   size, mtime, ctime); it is re-read, and after `attempts` tries reported as unstable;
 * - EACCES, ENOENT (vanished) and every other error become a per-file result, never a throw.
 */

export interface ProbeRequest {
  path: string;
  /** The baseline's view, for `trustStat`. */
  prev?:
    { size: number; mtimeUs: number; ctimeUs: number; ino: number; dev: number; sha256: string | null } | undefined;
}

export type ProbeResult =
  | { kind: 'ok'; entry: Entry }
  /** Nothing at that path any more. */
  | { kind: 'gone' }
  /** The path exists (or may) but cannot even be stat'ed, e.g. a parent lost its x bit. */
  | { kind: 'unknown'; error: string };

export interface ProbeOptions {
  /** Hash regular files (off when the policy does not check sha256). */
  hash: boolean;
  maxHashBytes: number;
  trustStat: boolean;
  /** Tries before a file that keeps changing is reported as unstable. */
  attempts?: number;
  /** Test hook: called between the two reads of a file's hashing loop (after the first chunk). */
  onChunk?: (path: string, attempt: number) => void;
}

export interface Prober {
  probe(req: ProbeRequest): ProbeResult;
}

/** What the old JavaScript prober reported for a path Node refuses (a NUL byte in it). */
const badPath = (path: string): ProbeResult => ({
  kind: 'unknown',
  error: eventError(ERR_FIM_UNREADABLE(path, 'lstat: ERR_INVALID_ARG_VALUE')),
});

/** The baseline views for trustStat, FIM_PREV_STRIDE numbers per request (NaN: no digest to reuse). */
export function prevArray(reqs: readonly ProbeRequest[]): Float64Array | undefined {
  let out: Float64Array | undefined;
  for (let i = 0; i < reqs.length; i++) {
    const p = reqs[i]!.prev;
    if (!p?.sha256) continue;
    out ??= new Float64Array(reqs.length * FIM_PREV_STRIDE).fill(NaN);
    out.set([p.size, p.mtimeUs, p.ctimeUs, p.ino, p.dev], i * FIM_PREV_STRIDE);
  }
  return out;
}

const code = (errno: number) => getSystemErrorName(-errno);

/** The results of one native batch, in the order of `reqs`. */
export function decodeProbeBatch(
  reqs: readonly ProbeRequest[],
  b: FimProbeBatch,
  opts: Pick<ProbeOptions, 'maxHashBytes' | 'attempts'>,
): ProbeResult[] {
  const out: ProbeResult[] = new Array<ProbeResult>(reqs.length);
  const n = b.num;
  for (let i = 0, o = 0; i < reqs.length; i++, o += FIM_STRIDE) {
    const { path } = reqs[i]!;
    const status = n[o + FimField.status]!;
    if (status === FimStatus.gone) {
      out[i] = { kind: 'gone' };
      continue;
    }
    if (status === FimStatus.unknown) {
      const e = ERR_FIM_UNREADABLE(path, `lstat: ${code(n[o + FimField.errno]!)}`);
      out[i] = { kind: 'unknown', error: eventError(e) };
      continue;
    }
    const mode = n[o + FimField.mode]!;
    const flags = n[o + FimField.flags]!;
    const entry: Entry = {
      path,
      type: entryTypeOf(mode),
      mode,
      uid: n[o + FimField.uid]!,
      gid: n[o + FimField.gid]!,
      size: n[o + FimField.size]!,
      dev: n[o + FimField.dev]!,
      ino: n[o + FimField.ino]!,
      mtimeUs: n[o + FimField.mtimeUs]!,
      ctimeUs: n[o + FimField.ctimeUs]!,
      sha256:
        flags & FimFlag.sha
          ? b.sha.toString('hex', i * 32, i * 32 + 32)
          : flags & FimFlag.trusted
            ? (reqs[i]!.prev?.sha256 ?? null)
            : null,
      linkTarget: flags & FimFlag.link ? b.text.toString('utf8', b.textOffsets[i], b.textOffsets[i + 1]) : null,
      error: null,
    };
    switch (n[o + FimField.error]) {
      case FimError.none:
        break;
      case FimError.readlink:
        entry.error = eventError(ERR_FIM_UNREADABLE(path, `readlink: ${code(n[o + FimField.errno]!)}`));
        break;
      case FimError.notRegular:
        entry.error = eventError(ERR_FIM_NOT_REGULAR(path, kindName(mode)));
        break;
      case FimError.tooLarge:
        entry.error = eventError(ERR_FIM_TOO_LARGE(path, entry.size, opts.maxHashBytes));
        break;
      case FimError.unreadable:
        entry.error = eventError(ERR_FIM_UNREADABLE(path, code(n[o + FimField.errno]!)));
        break;
      case FimError.unstable:
        entry.error = eventError(ERR_FIM_UNSTABLE(path, Math.max(1, opts.attempts ?? 3)));
        break;
      default:
        throw new Error(`unknown probe error kind ${n[o + FimField.error]} for ${path}`);
    }
    out[i] = { kind: 'ok', entry };
  }
  return out;
}

/**
 * Probes on the calling thread, one path at a time (tests: `onChunk` lets them change a file
 * in the middle of its hashing). Scans use the pool (pool.ts).
 */
export function createProber(opts: ProbeOptions): Prober {
  const native = FimProber.open({
    threads: 0,
    hash: opts.hash,
    maxHashBytes: opts.maxHashBytes,
    trustStat: opts.trustStat,
    attempts: Math.max(1, opts.attempts ?? 3),
  });
  return {
    probe(req: ProbeRequest): ProbeResult {
      if (req.path.includes('\0')) return badPath(req.path);
      const reqs = [req];
      return decodeProbeBatch(reqs, native.probeSync([req.path], prevArray(reqs), opts.onChunk), opts)[0]!;
    },
  };
}

/** Requests whose path the addon cannot take are answered here; `rest` go to the addon. */
export function splitBadPaths(reqs: ProbeRequest[]): { rest: ProbeRequest[]; bad: Map<number, ProbeResult> | null } {
  let bad: Map<number, ProbeResult> | null = null;
  for (let i = 0; i < reqs.length; i++)
    if (reqs[i]!.path.includes('\0')) (bad ??= new Map()).set(i, badPath(reqs[i]!.path));
  if (!bad) return { rest: reqs, bad };
  return { rest: reqs.filter((_, i) => !bad!.has(i)), bad };
}
