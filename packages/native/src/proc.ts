/**
 * Process events for the agent, from the host-side addon (native/capture/src/proc.rs): the
 * kernel's process events connector (netlink, root) or /proc polling, read on a thread of its
 * own — with each exec's /proc details read the moment it arrives — and drained in batches.
 */
import { ERR_NATIVE_PROC } from './errors.js';
import { loadHostAddon } from './capture.js';

export type ProcMode = 'connector' | 'poll';

export interface ProcEvent {
  kind: 'exec' | 'exit' | 'uid';
  pid: number;
  ppid: number;
  /** Session id (the session leader's pid); 0 when unknown. */
  sid: number;
  uid: number;
  euid: number;
  /** The executable's path, without " (deleted)"; empty when unknown. */
  exe: string;
  exeDeleted: boolean;
  exeMode: number;
  exeSize: number;
  /** Hex SHA-256 of the executable; empty when unknown or over the size limit. */
  sha256: string;
  argv: string[];
  argvTruncated: boolean;
  cwd: string;
  comm: string;
  parentExe: string;
  /** Process start, µs since the epoch (0: unknown). */
  startUs: number;
  /** When the event was read, µs since the epoch. */
  tsUs: number;
  exitCode: number;
  /** Its /proc entry was gone before the details could be read. */
  incomplete: boolean;
}

export interface ProcStats {
  mode: ProcMode;
  events: number;
  execs: number;
  forks: number;
  /** Dropped because the queue was full (not drained in time). */
  droppedQueue: number;
  /** Times the kernel reported lost events (ENOBUFS). */
  droppedKernel: number;
  /** Execs whose /proc entry vanished before their details were read. */
  incomplete: number;
  hashCacheHits: number;
  hashed: number;
  queued: number;
  /** The reader thread runs at a raised priority now (execs are few). */
  boosted: boolean;
}

interface NativeProcEvents {
  drain(max: number): ProcEvent[];
  stats(): ProcStats;
  close(): void;
}
interface ProcAddon {
  ProcEvents?: {
    open(
      mode: string,
      maxQueue?: number | null,
      hashMaxBytes?: number | null,
      pollMs?: number | null,
      boostBelow?: number | null,
      onData?: (() => void) | null,
    ): NativeProcEvents;
  };
}

export interface ProcEventsOptions {
  /** `auto`: the connector, else /proc polling (not root, or no connector). */
  mode?: ProcMode | 'auto';
  /** Events held for draining at most; more are counted as dropped. */
  maxQueue?: number;
  /** Executables larger than this are not hashed. */
  hashMaxBytes?: number;
  /** /proc polling interval. */
  pollMs?: number;
  /**
   * Below this many execs a second the reader thread runs at a raised priority (root), so it
   * reads a short process's /proc entry before the process is gone; above, it yields to the
   * machine's work (0: never raised). Default 500.
   */
  boostBelowExecsPerSecond?: number;
  /** Called (on this thread) when events wait after a drain. */
  onData?: () => void;
}

export class ProcEvents {
  private constructor(private readonly native: NativeProcEvents) {}

  /** Throws CORDON_ERR_NATIVE_PROC when the mode asked for cannot run (the connector without root). */
  static open(opts: ProcEventsOptions = {}): ProcEvents {
    const a = loadHostAddon() as unknown as ProcAddon;
    if (!a.ProcEvents) throw ERR_NATIVE_PROC('the host addon has no process events (rebuild it: bash native/capture/build.sh)');
    try {
      return new ProcEvents(
        a.ProcEvents.open(opts.mode ?? 'auto', opts.maxQueue ?? null, opts.hashMaxBytes ?? null, opts.pollMs ?? null, opts.boostBelowExecsPerSecond ?? null, opts.onData ?? null),
      );
    } catch (err) {
      throw ERR_NATIVE_PROC.withCause(err, (err as Error).message);
    }
  }

  /** Up to `max` queued events (0: all). */
  drain(max = 0): ProcEvent[] {
    return this.native.drain(max);
  }

  stats(): ProcStats {
    return this.native.stats();
  }

  close(): void {
    this.native.close();
  }
}
