import { watch, type FSWatcher } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Context } from '@cordon/runtime';
import type { FileEvent, FileScanKind } from '@cordon/schemas';
import { isUnder, parseFimPolicy, type FimPolicy, type FimPolicyInput } from './policy.js';
import { FimEngine, type Identity, type ScanOutcome } from './scanner.js';

/**
 * The agent's file integrity monitor: a startup scan against the persisted baseline (what
 * changed while the agent was down), then inotify in real time plus scheduled full scans.
 *
 * Realtime: one non-recursive `fs.watch` per watched directory (one inotify watch each,
 * shared inotify fd in libuv). Node 20's `fs.watch(…, { recursive: true })` on Linux is a
 * JS emulation that adds a watch per *file* and walks the tree with sync readdir/stat on the
 * event loop at start — 100k watches and a blocked agent for a 100k-file tree — and it follows
 * symlinks; watching directories is what inotify-based FIM tools (OSSEC/Wazuh whodata-less
 * realtime, inotifywait -r) do.
 *
 * A burst of changes is debounced (`debounceMs` of quiet, at most `maxDelayMs` after the
 * first change) and only the changed paths are re-checked. Memory stays bounded in a flood:
 * pending paths are a set capped at `maxPendingPaths`; past it they are dropped and the
 * watched trees are rescanned instead (the same fallback as a watch error). libuv does not
 * surface the kernel's IN_Q_OVERFLOW, so events lost there are caught by the scheduled scan.
 *
 * Delivery is at least once: events are handed to `onEvents` before the baseline that
 * includes them is written; if `onEvents` fails, the last written baseline is reloaded and
 * a full rescan reports the changes again (with the same event ids).
 */

export interface FimWatcherOptions {
  policy: FimPolicyInput | FimPolicy;
  /** The agent's state directory; the baseline lives in it. */
  stateDir: string;
  ctx: Context;
  /** Identity stamped on every event (the agent fills in its enrolled id and VM). */
  identity?: Partial<Identity>;
  onEvents: (events: FileEvent[]) => Promise<void>;
  /** Events per `onEvents` call at most (default 1000). */
  maxEventsPerCall?: number;
}

export interface FimWatcher {
  /** Startup scan against the baseline, then realtime watches and scheduled scans. */
  /** Load the baseline, scan (`rebaseline`: take a new baseline without reporting differences), then watch. */
  start(opts?: { rebaseline?: boolean }): Promise<void>;
  /** Stops watching; waits for the scan in progress; writes the baseline. */
  stop(): Promise<void>;
  /** A full scan now (as the schedule does; `agent-commands` rescan). */
  rescan(): Promise<void>;
  /** Takes a new baseline of the current state without reporting differences. */
  rebaseline(): Promise<void>;
  /** Directories watched now. */
  readonly watchCount: number;
  readonly policy: FimPolicy;
}

export function createFimWatcher(opts: FimWatcherOptions): FimWatcher {
  const policy = parseFimPolicy(opts.policy);
  const engine = new FimEngine({ policy, stateDir: opts.stateDir, ctx: opts.ctx, identity: opts.identity });
  const { log, metrics, clock } = engine.ctx;
  const maxPerCall = opts.maxEventsPerCall ?? 1000;
  const watches = new Map<string, FSWatcher>();
  const pending = new Set<string>();
  let overflow = false;
  let firstPendingAt = 0;
  let debounceTimer: NodeJS.Timeout | null = null;
  let persistTimer: NodeJS.Timeout | null = null;
  let scheduleTimer: NodeJS.Timeout | null = null;
  let lastSave = 0;
  let started = false;
  let stopping = false;
  let warnedWatchCap = false;

  // One scan at a time: they all read and update the same baseline.
  let lock: Promise<unknown> = Promise.resolve();
  const exclusive = <T>(fn: () => Promise<T>): Promise<T> => {
    const run = lock.then(fn, fn);
    lock = run.catch(() => undefined);
    return run;
  };

  const inRoots = (p: string) => policy.paths.some((r) => isUnder(p, r));

  async function deliver(out: ScanOutcome): Promise<void> {
    for (let i = 0; i < out.events.length; i += maxPerCall) await opts.onEvents(out.events.slice(i, i + maxPerCall));
  }

  /** Runs a scan and delivers it; on a delivery failure, falls back to the saved baseline. */
  async function scanAndDeliver(kind: FileScanKind, scan: () => Promise<ScanOutcome>): Promise<void> {
    const out = await scan();
    try {
      await deliver(out);
    } catch (err) {
      metrics.inc('errors');
      metrics.inc('delivery_failures');
      log.error(
        { err, events: out.events.length },
        'File events could not be delivered; they are reported again by a rescan from the saved baseline.',
      );
      await engine.load();
      scheduleRetry();
      return;
    }
    if (
      out.events.some((e) => e.op === 'baseline' || e.after?.type === 'dir' || e.before?.type === 'dir') ||
      kind !== 'realtime'
    )
      syncWatches();
    await persist(kind !== 'realtime');
  }

  async function persist(now: boolean): Promise<void> {
    if (!engine.hasUnsavedChanges) return;
    const due = lastSave + policy.persistIntervalMs - clock.now();
    if (now || due <= 0 || stopping) {
      if (persistTimer) clearTimeout(persistTimer);
      persistTimer = null;
      await engine.save();
      lastSave = clock.now();
      return;
    }
    persistTimer ??= setTimeout(() => {
      persistTimer = null;
      exclusive(() => persist(true)).catch((err: unknown) =>
        log.error({ err }, 'The file integrity baseline could not be written; the next change retries.'),
      );
    }, due);
    persistTimer.unref();
  }

  let retryTimer: NodeJS.Timeout | null = null;
  function scheduleRetry(): void {
    if (stopping || retryTimer) return;
    retryTimer = setTimeout(() => {
      retryTimer = null;
      runFull('scheduled').catch((err: unknown) => log.error({ err }, 'File integrity rescan failed.'));
    }, 5000);
    retryTimer.unref();
  }

  function runFull(kind: FileScanKind, rebaseline = false): Promise<void> {
    return exclusive(async () => {
      if (stopping) return;
      // A full scan covers whatever realtime had pending.
      pending.clear();
      overflow = false;
      await scanAndDeliver(kind, () => engine.fullScan(kind, { rebaseline }));
    });
  }

  // ---- realtime -------------------------------------------------------------------------

  function onFsEvent(dir: string, filename: string | Buffer | null): void {
    if (stopping) return;
    metrics.inc('received');
    if (pending.size === 0 && !overflow) firstPendingAt = clock.now();
    if (!overflow) {
      const p = filename === null ? dir : join(dir, filename.toString());
      if (inRoots(p)) pending.add(p);
      if (pending.size > policy.maxPendingPaths) {
        // Bounded memory: forget the paths, rescan the trees.
        pending.clear();
        overflow = true;
        metrics.inc('realtime_overflows');
        log.warn(
          { max: policy.maxPendingPaths },
          'Too many file changes at once; the watched trees are rescanned instead of each path.',
        );
      }
    }
    armDebounce();
  }

  function armDebounce(): void {
    if (debounceTimer) clearTimeout(debounceTimer);
    const wait = Math.max(0, Math.min(policy.debounceMs, firstPendingAt + policy.maxDelayMs - clock.now()));
    debounceTimer = setTimeout(flushPending, wait);
  }

  function flushPending(): void {
    debounceTimer = null;
    exclusive(async () => {
      if (stopping) return;
      if (overflow) {
        overflow = false;
        pending.clear();
        await scanAndDeliver('realtime', () => engine.fullScan('realtime'));
        return;
      }
      if (pending.size === 0) return;
      const paths = [...pending];
      pending.clear();
      metrics.inc('realtime_scans');
      await scanAndDeliver('realtime', () => engine.partialScan(paths, 'realtime'));
    }).catch((err: unknown) => {
      metrics.inc('errors');
      log.error({ err }, 'A realtime file integrity check failed; the watched trees are rescanned.');
      scheduleRetry();
    });
  }

  function watchDir(dir: string): void {
    if (watches.has(dir) || stopping) return;
    if (watches.size >= policy.maxWatches) {
      if (!warnedWatchCap)
        log.warn(
          { max: policy.maxWatches },
          'The directory watch cap is reached; directories past it are covered by scheduled scans only.',
        );
      warnedWatchCap = true;
      metrics.inc('watches_skipped');
      return;
    }
    let w: FSWatcher;
    try {
      w = watch(dir, { persistent: false }, (_type, filename) => onFsEvent(dir, filename));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT' && code !== 'ENOTDIR') {
        metrics.inc('errors');
        log.warn({ err, dir }, 'A directory cannot be watched in real time; scheduled scans still cover it.');
      }
      return;
    }
    w.on('error', (err) => {
      // The directory went away or the watch broke: re-check it (and re-watch if it is back).
      w.close();
      watches.delete(dir);
      if (stopping) return;
      log.debug({ err, dir }, 'A directory watch failed; the directory is rescanned.');
      onFsEvent(dirname(dir), dir.slice(dirname(dir).length + 1) || null);
    });
    watches.set(dir, w);
  }

  /** Watches = the directories in the baseline (plus roots and the parents of file roots). */
  function syncWatches(): void {
    if (!policy.realtime || stopping) return;
    const want = new Set<string>();
    for (const r of policy.paths) want.add(r);
    const entries = engine.baselineEntries;
    if (entries) {
      for (const [p, e] of entries) if (e.type === 'dir') want.add(p);
      for (const r of policy.paths) {
        const e = entries.get(r);
        if (e && e.type !== 'dir') {
          want.delete(r);
          want.add(dirname(r)); // a file named as a root: its directory reports its changes
        }
      }
    }
    for (const [d, w] of watches) {
      if (!want.has(d)) {
        w.close();
        watches.delete(d);
      }
    }
    for (const d of want) watchDir(d);
    metrics.set('watches', watches.size);
  }

  // ---- lifecycle ------------------------------------------------------------------------

  return {
    policy,
    get watchCount() {
      return watches.size;
    },
    async start(startOpts: { rebaseline?: boolean } = {}): Promise<void> {
      if (started) return;
      started = true;
      await exclusive(async () => {
        const had = await engine.load();
        // Watch what we know before scanning, so a change during the startup scan is not missed.
        if (had) syncWatches();
        else if (policy.realtime) for (const r of policy.paths) watchDir(r);
        await scanAndDeliver('startup', () =>
          engine.fullScan('startup', { rebaseline: startOpts.rebaseline === true }),
        );
        syncWatches();
        log.info(
          {
            roots: policy.paths,
            entries: engine.baselineEntries?.size ?? 0,
            watches: watches.size,
            baseline: had ? 'compared' : 'taken',
          },
          'File integrity monitoring started.',
        );
      });
      if (policy.scanIntervalS > 0) {
        scheduleTimer = setInterval(() => {
          runFull('scheduled').catch((err: unknown) => {
            metrics.inc('errors');
            log.error({ err }, 'Scheduled file integrity scan failed; the next one retries.');
          });
        }, policy.scanIntervalS * 1000);
        scheduleTimer.unref();
      }
    },
    rescan: () => runFull('scheduled'),
    rebaseline: () => runFull('scheduled', true),
    async stop(): Promise<void> {
      stopping = true;
      for (const t of [debounceTimer, persistTimer, retryTimer]) if (t) clearTimeout(t);
      if (scheduleTimer) clearInterval(scheduleTimer);
      for (const w of watches.values()) w.close();
      watches.clear();
      await exclusive(async () => {
        if (engine.hasUnsavedChanges) await engine.save();
        await engine.close();
      });
      log.info('File integrity monitoring stopped.');
    },
  };
}
