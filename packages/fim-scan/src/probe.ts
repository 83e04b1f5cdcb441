import { closeSync, constants, fstatSync, lstatSync, openSync, readlinkSync, readSync, type Stats } from 'node:fs';
import { createHash } from 'node:crypto';
import { entryTypeOf, kindName, sameStat, type Entry } from './attrs.js';
import { ERR_FIM_NOT_REGULAR, ERR_FIM_TOO_LARGE, ERR_FIM_UNREADABLE, ERR_FIM_UNSTABLE, eventError } from './errors.js';

/**
 * Reading one path's attributes and content, synchronously, inside a hashing worker thread
 * (see pool.ts: a sync syscall in a worker costs a fraction of an async one through libuv's
 * thread pool, and a scan is ~6 syscalls per file).
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

const CHUNK = 1 << 20;

export function createProber(opts: ProbeOptions): Prober {
  const buf = Buffer.allocUnsafe(CHUNK);
  const attempts = Math.max(1, opts.attempts ?? 3);
  // O_NOATIME keeps a scan from touching every file's atime (AIDE does the same); the kernel
  // refuses it (EPERM) on files we do not own unless we are root, so it is dropped then.
  let noAtime = constants.O_NOATIME ?? 0;

  function open(path: string): number {
    const base = constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK;
    if (noAtime) {
      try {
        return openSync(path, base | noAtime);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EPERM') throw err;
        noAtime = 0;
      }
    }
    return openSync(path, base);
  }

  /** null: the file changed under us; string: its digest. */
  function hashOnce(path: string, st: Stats, attempt: number): string | null {
    const fd = open(path);
    try {
      const f = fstatSync(fd);
      if (!f.isFile() || f.ino !== st.ino || f.dev !== st.dev) return null; // replaced before the open
      const h = createHash('sha256');
      let total = 0;
      for (;;) {
        const n = readSync(fd, buf, 0, CHUNK, null);
        if (n === 0) break;
        total += n;
        if (total > opts.maxHashBytes) return null; // grew past the cap while we read: re-stat decides
        h.update(n === CHUNK ? buf : buf.subarray(0, n));
        if (opts.onChunk) opts.onChunk(path, attempt);
        // A short read of a regular file is its end at that moment; the lstat after catches growth.
        if (n < CHUNK && total === st.size) break;
      }
      const digest = h.digest('hex');
      return total === st.size ? digest : null;
    } finally {
      closeSync(fd);
    }
  }

  function toEntry(path: string, st: Stats): Entry {
    return {
      path,
      type: entryTypeOf(st.mode),
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      size: st.size,
      dev: st.dev,
      ino: st.ino,
      mtimeUs: Math.round(st.mtimeMs * 1000),
      ctimeUs: Math.round(st.ctimeMs * 1000),
      sha256: null,
      linkTarget: null,
      error: null,
    };
  }

  function stat(path: string): Stats | ProbeResult {
    try {
      return lstatSync(path);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'ENOTDIR') return { kind: 'gone' };
      return {
        kind: 'unknown',
        error: eventError(ERR_FIM_UNREADABLE(path, `lstat: ${code ?? (err as Error).message}`)),
      };
    }
  }

  return {
    probe(req: ProbeRequest): ProbeResult {
      const { path } = req;
      for (let attempt = 1; ; attempt++) {
        const st = stat(path);
        if (!(st instanceof Object && 'mode' in st)) return st;
        const entry = toEntry(path, st);
        if (entry.type === 'symlink') {
          try {
            entry.linkTarget = readlinkSync(path);
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code === 'ENOENT') continue; // removed between lstat and readlink: look again
            if (code === 'EINVAL') continue; // no longer a link
            entry.error = eventError(ERR_FIM_UNREADABLE(path, `readlink: ${code ?? 'error'}`));
          }
          return { kind: 'ok', entry };
        }
        if (entry.type === 'other') {
          entry.error = eventError(ERR_FIM_NOT_REGULAR(path, kindName(st.mode)));
          return { kind: 'ok', entry };
        }
        if (entry.type !== 'file' || !opts.hash) return { kind: 'ok', entry };
        if (st.size > opts.maxHashBytes) {
          entry.error = eventError(ERR_FIM_TOO_LARGE(path, st.size, opts.maxHashBytes));
          return { kind: 'ok', entry };
        }
        if (opts.trustStat && req.prev?.sha256 && sameStat(entry, req.prev)) {
          entry.sha256 = req.prev.sha256;
          return { kind: 'ok', entry };
        }
        let digest: string | null;
        try {
          digest = hashOnce(path, st, attempt);
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          // Gone, or replaced by a link/dir/special file between lstat and open: look again.
          if (code === 'ENOENT' || code === 'ELOOP' || code === 'EISDIR' || code === 'ENXIO' || code === 'EAGAIN') {
            if (attempt < attempts) continue;
          }
          entry.error = eventError(ERR_FIM_UNREADABLE(path, `${code ?? (err as Error).message}`));
          return { kind: 'ok', entry };
        }
        if (digest !== null) {
          const after = stat(path);
          if (after instanceof Object && 'mode' in after && sameStat(toEntry(path, after), entry)) {
            entry.sha256 = digest;
            return { kind: 'ok', entry };
          }
        }
        if (attempt >= attempts) {
          entry.error = eventError(ERR_FIM_UNSTABLE(path, attempts));
          return { kind: 'ok', entry };
        }
      }
    },
  };
}
