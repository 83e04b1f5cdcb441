import { loadHostAddon } from './capture.js';
import { ERR_NATIVE_FIM } from './errors.js';

/**
 * File integrity probing in the host addon (native/capture/src/fim.rs): lstat, open, fstat,
 * read, SHA-256 and lstat again for a batch of paths, on a pool of native threads, one call
 * per batch. The results come back as arrays, not objects; @cordon/fim-scan decodes them into
 * its entries and error messages (the rules themselves are described in its probe.ts).
 */

/** Numbers per path in `FimProbeBatch.num`, and what each one is. */
export const FIM_STRIDE = 12;
export const FimField = {
  status: 0,
  error: 1,
  errno: 2,
  mode: 3,
  uid: 4,
  gid: 5,
  size: 6,
  dev: 7,
  ino: 8,
  mtimeUs: 9,
  ctimeUs: 10,
  flags: 11,
} as const;
export const FimStatus = {
  ok: 0,
  /** Nothing at the path (ENOENT, ENOTDIR). */
  gone: 1,
  /** lstat failed otherwise (errno). */
  unknown: 2,
} as const;
export const FimError = {
  none: 0,
  readlink: 2,
  notRegular: 3,
  tooLarge: 4,
  /** open, fstat or read failed (errno). */
  unreadable: 5,
  unstable: 6,
} as const;
export const FimFlag = {
  /** `sha` holds the digest. */
  sha: 1,
  /** `text` holds the link target. */
  link: 2,
  /** trustStat: the stat matched `prev`, the file was not read (reuse the previous digest). */
  trusted: 4,
} as const;
/** Numbers per path in `prev`: size, mtime_us, ctime_us, ino, dev (NaN size: none). */
export const FIM_PREV_STRIDE = 5;

export interface FimProbeBatch {
  num: Float64Array;
  /** 32 bytes per path. */
  sha: Buffer;
  /** Link targets, raw bytes; path i's is text[textOffsets[i], textOffsets[i + 1]). */
  text: Buffer;
  textOffsets: Uint32Array;
}

export interface FimProberOptions {
  /** Probing threads, 0–64 (0: only `probeSync`). */
  threads: number;
  hash: boolean;
  maxHashBytes: number;
  trustStat: boolean;
  /** Reads of a file that keeps changing before it is reported unstable (default 3). */
  attempts?: number;
}

interface NativeFimProber {
  probe(paths: string, prev?: Float64Array | null): Promise<FimProbeBatch>;
  probeSync(paths: string, prev?: Float64Array | null, onChunk?: ((path: string, attempt: number) => void) | null): FimProbeBatch;
  close(): void;
}
interface FimAddon {
  FimProber: { open(opts: FimProberOptions): NativeFimProber };
}

function joinPaths(paths: readonly string[]): string {
  for (const p of paths) if (p.includes('\0')) throw ERR_NATIVE_FIM(`the path ${JSON.stringify(p)} contains a NUL byte`);
  return paths.join('\0');
}

export class FimProber {
  private constructor(private readonly native: NativeFimProber) {}

  static open(opts: FimProberOptions): FimProber {
    if (!(Number.isInteger(opts.threads) && opts.threads >= 0 && opts.threads <= 64))
      throw ERR_NATIVE_FIM(`threads must be a whole number from 0 to 64, not ${String(opts.threads)}`);
    const a = loadHostAddon() as unknown as FimAddon;
    try {
      return new FimProber(a.FimProber.open(opts));
    } catch (err) {
      throw ERR_NATIVE_FIM.withCause(err, (err as Error).message);
    }
  }

  /** Probes `paths` on a pool thread (batches queue in order); `prev` as FIM_PREV_STRIDE says. */
  async probe(paths: readonly string[], prev?: Float64Array): Promise<FimProbeBatch> {
    try {
      return await this.native.probe(joinPaths(paths), prev ?? null);
    } catch (err) {
      throw ERR_NATIVE_FIM.withCause(err, (err as Error).message);
    }
  }

  /** The same on this thread; `onChunk` runs after each chunk a file's hashing reads (tests). */
  probeSync(
    paths: readonly string[],
    prev?: Float64Array,
    onChunk?: (path: string, attempt: number) => void,
  ): FimProbeBatch {
    return this.native.probeSync(joinPaths(paths), prev ?? null, onChunk ?? null);
  }

  /** Queued batches finish; then the threads end. */
  close(): void {
    this.native.close();
  }
}
