import { constants } from 'node:fs';
import { lstat, open, readdir, readlink, realpath, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { childContext, type Context } from '@cordon/runtime';
import { isBelowAny } from './config.js';
import { ERR_LOG_NOT_ALLOWED, ERR_LOG_NOT_REGULAR, ERR_LOG_SOURCE } from './errors.js';
import { readState, writeState } from './state.js';

/**
 * Tails log files the way logrotate leaves them: rename rotation (the old file is read to
 * its end through the descriptor still open on it, then the new file from 0), copytruncate
 * (the file shrinks under us: start again at 0) and rotation while the agent was down (the
 * old inode is looked for among the file's rotated siblings and finished first).
 *
 * Positions (device, inode, byte offset) are saved only after a batch was acknowledged by
 * the bus, so a restart neither loses nor repeats a line. Lines are bytes (logs can be
 * binary); a line longer than `maxLineBytes` is cut and the rest of it skipped.
 *
 * A log directory is often writable by the service that logs there, so what sits at a log
 * path is hostile: files are opened with O_NOFOLLOW (a symlink planted at the path is refused,
 * not followed to a file the agent may read and the service may not) and O_NONBLOCK (a FIFO
 * cannot hang the open), then must be regular files whose real path lies below one of
 * `roots` (a symlinked directory cannot lead out of them either).
 */
export interface TailSource {
  path: string;
  /** Decoder hint for loginspect: syslog, auth, apache-access, nginx-error, … */
  format?: string;
}

export interface TailLine {
  offset: number;
  line: Buffer;
  ts_us: number;
}

export interface TailBatch {
  source: TailSource;
  inode: number;
  lines: TailLine[];
}

export interface LogTailerOptions {
  sources: TailSource[];
  /** Directories logs may be read from (the agent's `logRoots`); anything else is refused. */
  roots: readonly string[];
  stateFile: string;
  ctx: Context;
  onBatch: (batch: TailBatch) => Promise<void>;
  /** A source seen for the first time is read from its start or only for new lines. */
  startAt?: 'beginning' | 'end';
  pollMs?: number;
  maxLineBytes?: number;
  maxBatchLines?: number;
}

interface Position {
  dev: number;
  ino: number;
  offset: number;
}

interface Open {
  fh: FileHandle;
  dev: number;
  ino: number;
  offset: number;
  /** Bytes of an unfinished last line, waiting for its newline. */
  partial: Buffer;
  /** Offset where `partial` starts. */
  partialAt: number;
  /** Skipping the rest of an over-long line. */
  skipping: boolean;
}

const CHUNK = 256 * 1024;

export class LogTailer {
  private readonly positions: Record<string, Position>;
  private readonly open = new Map<string, Open>();
  private timer: NodeJS.Timeout | null = null;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;
  private readonly ctx: Context;
  private readonly reported = new Set<string>();
  private realRoots: Promise<string[]> | null = null;

  constructor(private readonly opts: LogTailerOptions) {
    this.ctx = childContext(opts.ctx, 'logtail');
    this.positions = readState<Record<string, Position>>(opts.stateFile, {}, this.ctx.log);
  }

  /** The roots as the kernel names them (a root may itself be reached through a symlink, e.g. /var/log on another disk). */
  private roots(): Promise<string[]> {
    return (this.realRoots ??= Promise.all(this.opts.roots.map((r) => realpath(resolve(r)).catch(() => resolve(r)))));
  }

  start(): void {
    const tick = () => {
      this.running = this.pollAll()
        .catch((err: unknown) => this.ctx.log.error({ err }, 'Log tailing round failed; the next one retries.'))
        .finally(() => {
          if (!this.stopped) this.timer = setTimeout(tick, this.opts.pollMs ?? 250);
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running;
    for (const o of this.open.values()) await o.fh.close().catch(() => undefined);
    this.open.clear();
  }

  /** One pass over every source (tests call it directly). */
  async pollAll(): Promise<void> {
    for (const source of this.opts.sources) {
      try {
        await this.poll(source);
        this.reported.delete(source.path);
      } catch (err) {
        this.ctx.metrics.inc('errors');
        // one report per failure streak, not one per poll
        if (!this.reported.has(source.path)) {
          this.reported.add(source.path);
          this.ctx.log.warn(
            { err: ERR_LOG_SOURCE.withCause(err, source.path, (err as Error).message) },
            'A log source cannot be read.',
          );
        }
      }
    }
  }

  private async poll(source: TailSource): Promise<void> {
    let o = this.open.get(source.path);
    if (!o) {
      const opened = await this.openSource(source);
      if (!opened) return;
      this.open.set(source.path, (o = opened));
    }
    // what the descriptor has (the old file keeps growing until the writer reopens)
    await this.drain(source, o);
    let st;
    try {
      st = await lstat(source.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return; // rotated, new file not yet there
      throw err;
    }
    if (st.ino !== o.ino || st.dev !== o.dev) {
      // rename rotation: the old file was read to its end above; switch to the new one
      await this.flushPartial(source, o);
      await o.fh.close();
      this.open.delete(source.path);
      const fresh = await this.openAt(source, 0);
      if (fresh) {
        this.open.set(source.path, fresh);
        await this.drain(source, fresh);
      }
    }
  }

  /** Open a source where the saved position says, finishing a file rotated while we were down. */
  private async openSource(source: TailSource): Promise<Open | null> {
    const saved = this.positions[source.path];
    let st;
    try {
      st = await lstat(source.path);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw err;
    }
    if (!saved) return this.openAt(source, (this.opts.startAt ?? 'end') === 'end' ? st.size : 0);
    if (saved.ino === st.ino && saved.dev === st.dev) return this.openAt(source, saved.offset);
    const old = await this.findRotated(source.path, saved);
    if (old) {
      const o = await this.openFile(source, old, saved.offset);
      if (o) {
        await this.drain(source, o);
        await this.flushPartial(source, o);
        await o.fh.close();
      }
    } else {
      this.ctx.log.warn(
        { path: source.path },
        'The file tailed before the restart is gone; lines written to it after the last read are lost.',
      );
    }
    return this.openAt(source, 0);
  }

  private async findRotated(path: string, saved: Position): Promise<string | null> {
    const dir = dirname(path);
    const base = basename(path);
    for (const name of await readdir(dir)) {
      if (name === base || !name.startsWith(base)) continue;
      const candidate = join(dir, name);
      const st = await lstat(candidate).catch(() => null);
      if (st && st.ino === saved.ino && st.dev === saved.dev) return candidate;
    }
    return null;
  }

  private openAt(source: TailSource, offset: number): Promise<Open | null> {
    return this.openFile(source, source.path, offset);
  }

  private async openFile(source: TailSource, file: string, offset: number): Promise<Open | null> {
    let fh: FileHandle;
    try {
      fh = await open(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return null;
      if (code === 'ELOOP') throw ERR_LOG_NOT_REGULAR.withCause(err, file, 'symbolic link');
      throw err;
    }
    let st;
    try {
      st = await fh.stat();
      if (!st.isFile()) throw ERR_LOG_NOT_REGULAR(file, kindOf(st));
      // what the descriptor really is, every directory link resolved
      const real = await readlink(`/proc/self/fd/${fh.fd}`).catch(() => realpath(file));
      if (!isBelowAny(real, await this.roots())) throw ERR_LOG_NOT_ALLOWED(file, real, this.opts.roots.join(', '));
    } catch (err) {
      await fh.close();
      throw err;
    }
    const at = st.size < offset ? 0 : offset; // truncated while we were away
    const o: Open = {
      fh,
      dev: st.dev,
      ino: st.ino,
      offset: at,
      partial: Buffer.alloc(0),
      partialAt: at,
      skipping: false,
    };
    if (!this.positions[source.path] || this.positions[source.path]!.ino !== st.ino) this.save(source, o, o.offset);
    return o;
  }

  /** Read from the descriptor to its end, handing complete lines over in batches. */
  private async drain(source: TailSource, o: Open): Promise<void> {
    const maxLine = this.opts.maxLineBytes ?? 64 * 1024;
    const maxLines = this.opts.maxBatchLines ?? 1000;
    const size = (await o.fh.stat()).size;
    if (size < o.offset) {
      // copytruncate: the file was emptied under us; what was written between our last
      // read and the truncation is gone (inherent to copytruncate)
      this.ctx.metrics.inc('truncations');
      o.offset = 0;
      o.partial = Buffer.alloc(0);
      o.partialAt = 0;
      o.skipping = false;
    }
    const buf = Buffer.allocUnsafe(CHUNK);
    let lines: TailLine[] = [];
    for (;;) {
      const { bytesRead } = await o.fh.read(buf, 0, CHUNK, o.offset);
      if (bytesRead === 0) break;
      const chunk = buf.subarray(0, bytesRead);
      let start = 0;
      for (;;) {
        const nl = chunk.indexOf(0x0a, start);
        if (nl < 0) break;
        const piece = chunk.subarray(start, nl);
        if (o.skipping) {
          o.skipping = false;
        } else {
          const whole = o.partial.length ? Buffer.concat([o.partial, piece]) : Buffer.from(piece);
          const line = whole.length && whole[whole.length - 1] === 0x0d ? whole.subarray(0, whole.length - 1) : whole;
          lines.push({
            offset: o.partialAt,
            line: line.length > maxLine ? line.subarray(0, maxLine) : line,
            ts_us: this.ctx.clock.now() * 1000,
          });
        }
        o.partial = Buffer.alloc(0);
        start = nl + 1;
        o.partialAt = o.offset + start;
        if (lines.length >= maxLines) {
          await this.emit(source, o, lines, o.offset + start);
          lines = [];
        }
      }
      if (start < chunk.length && !o.skipping) {
        o.partial = Buffer.concat([o.partial, chunk.subarray(start)]);
        if (o.partial.length > maxLine) {
          // an endless line: keep its head, drop the rest up to the next newline
          lines.push({ offset: o.partialAt, line: o.partial.subarray(0, maxLine), ts_us: this.ctx.clock.now() * 1000 });
          this.ctx.metrics.inc('lines_cut');
          o.partial = Buffer.alloc(0);
          o.skipping = true;
        }
      }
      o.offset += bytesRead;
      if (o.offset >= size && bytesRead < CHUNK) break;
    }
    // the position saved is the start of the unfinished line, so a restart rereads it whole
    if (lines.length) await this.emit(source, o, lines, o.skipping ? o.offset : o.partialAt);
  }

  /** At rotation an unterminated last line is complete: nothing more will be appended to it. */
  private async flushPartial(source: TailSource, o: Open): Promise<void> {
    if (!o.partial.length) return;
    const line = { offset: o.partialAt, line: o.partial, ts_us: this.ctx.clock.now() * 1000 };
    o.partial = Buffer.alloc(0);
    await this.emit(source, o, [line], o.offset);
  }

  private async emit(source: TailSource, o: Open, lines: TailLine[], resumeAt: number): Promise<void> {
    try {
      await this.opts.onBatch({ source, inode: o.ino, lines });
    } catch (err) {
      // not sent (the bus gave up): the next round reads from this batch's first line again.
      // The batches before it were sent; nothing after it was handed over (a drain stops here)
      this.rewind(o, lines[0]!.offset);
      throw err;
    }
    this.ctx.metrics.inc('sent', lines.length);
    this.save(source, o, resumeAt);
  }

  /** Read from `offset` (a line's start) on, as if nothing after it had been read. */
  private rewind(o: Open, offset: number): void {
    o.offset = offset;
    o.partial = Buffer.alloc(0);
    o.partialAt = offset;
    o.skipping = false;
  }

  private save(source: TailSource, o: Open, offset: number): void {
    this.positions[source.path] = { dev: o.dev, ino: o.ino, offset };
    writeState(this.opts.stateFile, this.positions);
  }
}

function kindOf(st: {
  isDirectory(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
}): string {
  if (st.isDirectory()) return 'directory';
  if (st.isFIFO()) return 'FIFO';
  if (st.isSocket()) return 'socket';
  if (st.isCharacterDevice()) return 'character device';
  if (st.isBlockDevice()) return 'block device';
  return 'special file';
}
