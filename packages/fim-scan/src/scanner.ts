import { createHash } from 'node:crypto';
import { isUtf8 } from 'node:buffer';
import type { Dirent } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname } from 'node:path';
import { childContext, type Context } from '@cordon/runtime';
import type { FileEvent, FileOp, FileScanKind } from '@cordon/schemas';
import { changedAttributes, loadNameMaps, sameStat, toFileAttrs, type Entry, type NameMaps } from './attrs.js';
import { loadBaseline, saveBaseline, selectionFingerprint, type Baseline } from './baseline.js';
import { ERR_FIM_DIR_UNREADABLE, ERR_FIM_NAME_NOT_UTF8, eventError } from './errors.js';
import { isExcluded, isIncluded, isUnder, parseFimPolicy, type FimPolicy, type FimPolicyInput } from './policy.js';
import { createProbePool, type ProbePool } from './pool.js';
import type { ProbeRequest, ProbeResult } from './probe.js';

/**
 * Scanning a watched tree and comparing it with the baseline. A scan covers a set of
 * targets — the watched roots for a full scan, the changed paths for a realtime one — and
 * compares only the part of the baseline those targets cover, so the two kinds of scan
 * share one comparison and report a change the same way.
 *
 * What is reported (as AIDE and OSSEC syscheck report it):
 * - `added` / `removed`: a path that appeared / disappeared;
 * - `changed`: a checked attribute differs at the same path. A file deleted and re-created
 *   under the same name between two looks is `changed` with `inode` among the differences
 *   (AIDE's "i"), since the path is what is watched;
 * - `renamed`: a path disappeared and another appeared with the same device + inode, type
 *   and (for files) mtime — the identity a rename keeps. The inode alone is not enough:
 *   ext4 hands a freed inode number to the next new file, so "rm a; touch b" would look like
 *   a rename. A rename whose file was also rewritten before we looked is removed + added;
 * - `scan`: the path did not change but it could not be checked (a new error).
 * The baseline then takes the new state (syscheck's model: each change is reported once).
 */

export interface Identity {
  agent: string;
  vm: string;
}

export interface ScanTarget {
  path: string;
  /** Descend if it is a directory. */
  recursive: boolean;
}

export interface ScanStats {
  entries: number;
  files: number;
  dirs: number;
  errors: number;
  durationMs: number;
}

export interface ScanOutcome {
  events: FileEvent[];
  stats: ScanStats;
}

/** Paths per native probing call. */
const BATCH = 512;
/** Batches queued for the probing threads at most: the walk runs ahead of them by this much. */
const MAX_QUEUED_BATCHES = 256;

export class FimEngine {
  readonly policy: FimPolicy;
  readonly ctx: Context;
  readonly identity: Identity;
  private readonly stateDir: string;
  private pool: ProbePool | null = null;
  /** The baseline in memory; null until loaded or taken. */
  private baseline: Baseline | null = null;
  private dirty = false;

  constructor(opts: {
    policy: FimPolicyInput | FimPolicy;
    stateDir: string;
    ctx: Context;
    identity?: Partial<Identity>;
  }) {
    this.policy = parseFimPolicy(opts.policy);
    this.ctx = childContext(opts.ctx, 'fim');
    this.stateDir = opts.stateDir;
    this.identity = { agent: opts.identity?.agent ?? 'local', vm: opts.identity?.vm ?? hostname() };
  }

  get baselineEntries(): ReadonlyMap<string, Entry> | null {
    return this.baseline?.entries ?? null;
  }

  get hasUnsavedChanges(): boolean {
    return this.dirty;
  }

  private getPool(): ProbePool {
    this.pool ??= createProbePool(this.policy.hashConcurrency, {
      hash: this.policy.attributeSet.has('sha256'),
      maxHashBytes: this.policy.maxHashBytes,
      trustStat: this.policy.trustStat,
    });
    return this.pool;
  }

  async close(): Promise<void> {
    await this.pool?.close();
    this.pool = null;
  }

  /** Loads the persisted baseline (a corrupt one is set aside and logged). */
  async load(): Promise<boolean> {
    const r = await loadBaseline(this.stateDir);
    if (!r.baseline && 'corrupt' in r && r.corrupt) {
      this.ctx.metrics.inc('errors');
      this.ctx.log.error({ err: r.corrupt }, 'The file integrity baseline is corrupt; a new one is taken.');
    }
    this.baseline = r.baseline;
    return r.baseline !== null;
  }

  async save(): Promise<void> {
    if (!this.baseline) return;
    await saveBaseline(this.stateDir, this.baseline);
    this.dirty = false;
  }

  /**
   * Full scan of the watched roots. Without a baseline (or with `rebaseline`) it takes one
   * and reports one `baseline` event per root; otherwise it reports the differences.
   */
  async fullScan(
    kind: FileScanKind,
    opts: {
      rebaseline?: boolean;
      /**
       * Loads the baseline (`load`); called once the tree is listed and its probing queued,
       * so the baseline is decoded while the probing threads work. With trustStat the
       * probes need the baseline: it is loaded first.
       */
      load?: (() => Promise<unknown>) | null;
    } = {},
  ): Promise<ScanOutcome> {
    const started = this.ctx.clock.now();
    const targets = this.policy.paths.map((path) => ({ path, recursive: true }));
    let loading: Promise<unknown> | null = null;
    if (opts.load && this.policy.trustStat) await opts.load();
    const load = this.policy.trustStat ? null : opts.load;
    const onQueued = () => {
      loading ??= load ? load() : null;
      loading?.catch(() => undefined); // awaited (and thrown) after the walk
    };
    const { current, unknown, stats } = await this.collect(targets, onQueued);
    onQueued();
    await loading;
    const selection = selectionFingerprint(this.policy.include, this.policy.exclude);
    const base = this.baseline;
    // Roots the baseline does not cover (new in the policy, or a changed include/exclude
    // selection) are baselined, not reported as thousands of additions.
    const covered = new Set(!opts.rebaseline && base && base.header.selection === selection ? base.header.roots : []);
    if (base && base.header.selection !== selection)
      this.ctx.log.warn(
        'The include/exclude selection changed since the baseline; the watched trees are baselined again.',
      );
    const names = loadNameMaps();
    const events: FileEvent[] = [];
    const comparedRoots = this.policy.paths.filter((r) => covered.has(r));
    // Nothing compared (a first scan, a rebaseline): everything found is the baseline.
    let entries = comparedRoots.length ? new Map<string, Entry>() : current;
    for (const root of this.policy.paths) {
      if (covered.has(root)) continue;
      if (comparedRoots.length) for (const [p, e] of current) if (isUnder(p, root)) entries.set(p, e);
      events.push(this.event('baseline', kind, root, null, null, null, null, names));
    }
    if (base && comparedRoots.length) {
      const scopeHas = (p: string) => comparedRoots.some((r) => isUnder(p, r));
      // The usual check compares every watched root with a baseline of exactly those roots
      // (its entries all lie below them, and the current ones below the watched roots): no copies.
      const whole = comparedRoots.length === this.policy.paths.length;
      let prevInScope = base.entries;
      if (!whole || covered.size !== comparedRoots.length) {
        prevInScope = new Map<string, Entry>();
        for (const [p, e] of base.entries) if (scopeHas(p)) prevInScope.set(p, e);
      }
      let cur = current;
      if (!whole) {
        cur = new Map<string, Entry>();
        for (const [p, e] of current) if (scopeHas(p)) cur.set(p, e);
      }
      if (whole && unknown.size === 0) {
        // Nothing hidden: the new baseline is exactly what the scan found (no second 100k map).
        events.push(...this.diff(prevInScope, cur, unknown, kind, names, null));
        entries = cur;
      } else events.push(...this.diff(prevInScope, cur, unknown, kind, names, entries));
    }
    this.baseline = {
      header: { version: 1, created_us: this.ctx.clock.now() * 1000, roots: [...this.policy.paths], selection },
      entries,
    };
    this.dirty = true;
    stats.durationMs = this.ctx.clock.now() - started;
    this.count(stats, events);
    return { events, stats };
  }

  /**
   * Re-checks only the given paths (recursively for directories) against the baseline, and
   * updates the baseline for them. Needs a baseline (call fullScan first).
   */
  async partialScan(paths: Iterable<string>, kind: FileScanKind): Promise<ScanOutcome> {
    const started = this.ctx.clock.now();
    if (!this.baseline) return this.fullScan(kind);
    const base = this.baseline.entries;
    const inRoots = (p: string) => this.policy.paths.some((r) => isUnder(p, r));
    // A changed path's directory changes too (mtime, ctime): it is re-checked on its own,
    // so a realtime scan reports what a full scan would have.
    const targets = new Map<string, ScanTarget>();
    for (const p of paths) {
      if (!inRoots(p)) continue;
      targets.set(p, { path: p, recursive: true });
      const d = dirname(p);
      if (d !== p && inRoots(d) && !targets.has(d)) targets.set(d, { path: d, recursive: false });
    }
    // A target below a recursive directory target is covered by it.
    const rec = [...targets.values()].filter((t) => t.recursive).map((t) => t.path);
    const recSet = new Set(rec);
    const coveredByAncestor = (p: string) => {
      for (let d = dirname(p); d !== p && d.length > 0; p = d, d = dirname(d)) if (recSet.has(d)) return true;
      return false;
    };
    const list = [...targets.values()].filter((t) => !coveredByAncestor(t.path));
    const names = loadNameMaps();
    const { current, unknown, stats } = await this.collect(list);
    // The part of the baseline these targets cover: the targets themselves, and everything
    // below a recursive target that is (or was) a directory.
    const prevInScope = new Map<string, Entry>();
    const dirTargets = new Set<string>();
    for (const t of list) {
      const b = base.get(t.path);
      if (b) prevInScope.set(t.path, b);
      if (t.recursive && (b?.type === 'dir' || current.get(t.path)?.type === 'dir')) dirTargets.add(t.path);
    }
    if (dirTargets.size) {
      for (const [p, e] of base) {
        for (let d = dirname(p), q = p; d !== q; q = d, d = dirname(d)) {
          if (dirTargets.has(d)) {
            prevInScope.set(p, e);
            break;
          }
        }
      }
    }
    const next = new Map<string, Entry>();
    const events = this.diff(prevInScope, current, unknown, kind, names, next);
    for (const p of prevInScope.keys()) base.delete(p);
    for (const [p, e] of next) base.set(p, e);
    if (events.length || prevInScope.size !== next.size) this.dirty = true;
    stats.durationMs = this.ctx.clock.now() - started;
    this.count(stats, events);
    return { events, stats };
  }

  private count(stats: ScanStats, events: FileEvent[]): void {
    const m = this.ctx.metrics;
    m.inc('scans');
    m.inc('entries_scanned', stats.entries);
    m.inc('errors', stats.errors);
    m.inc('sent', events.length);
    m.set('baseline_entries', this.baseline?.entries.size ?? 0);
  }

  /**
   * Walks the targets (directories listed on this thread, paths probed by the pool) and
   * returns what is there now. `unknown`: paths that could not be stat'ed or listed, with
   * the error — their baseline state is kept, not reported as removed.
   */
  private async collect(
    targets: ScanTarget[],
    /** Called once, when the probing threads have work queued for a while (the walk is done or the queue full). */
    onQueued?: () => void,
  ): Promise<{
    current: Map<string, Entry>;
    unknown: Map<string, { error: string; subtree: boolean; self: boolean }>;
    stats: ScanStats;
  }> {
    const pool = this.getPool();
    const policy = this.policy;
    const base = this.baseline?.entries;
    const current = new Map<string, Entry>();
    const unknown = new Map<string, { error: string; subtree: boolean; self: boolean }>();
    const dirErrors = new Map<string, string>();
    const stats: ScanStats = { entries: 0, files: 0, dirs: 0, errors: 0, durationMs: 0 };
    const maxInflight = MAX_QUEUED_BATCHES;
    const inflight = new Set<Promise<void>>();
    let failure: unknown = null;
    let batch: ProbeRequest[] = [];
    let queued = () => {
      queued = () => {};
      onQueued?.();
    };

    const onResults = (reqs: ProbeRequest[], results: ProbeResult[]) => {
      for (let i = 0; i < reqs.length; i++) {
        const r = results[i]!;
        const path = reqs[i]!.path;
        if (r.kind === 'ok') current.set(path, r.entry);
        else if (r.kind === 'unknown') unknown.set(path, { error: r.error, subtree: true, self: true });
      }
    };
    const flush = async () => {
      if (batch.length === 0) return;
      const reqs = batch;
      batch = [];
      const p: Promise<void> = pool.probe(reqs).then(
        (res) => onResults(reqs, res),
        (err: unknown) => {
          failure ??= err;
        },
      );
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      if (inflight.size >= maxInflight) {
        queued();
        await Promise.race(inflight);
      }
    };
    const add = async (path: string) => {
      const prev = policy.trustStat ? base?.get(path) : undefined;
      batch.push(
        prev
          ? {
              path,
              prev: {
                size: prev.size,
                mtimeUs: prev.mtimeUs,
                ctimeUs: prev.ctimeUs,
                ino: prev.ino,
                dev: prev.dev,
                sha256: prev.sha256,
              },
            }
          : { path },
      );
      if (batch.length >= BATCH) await flush();
    };

    const walk = async (dir: string) => {
      const stack = [dir];
      while (stack.length) {
        const d = stack.pop()!;
        let list;
        try {
          // names as bytes: one that is not UTF-8 must not vanish from the scan (a lossy decode
          // names a path that does not exist, and its probe would find nothing)
          list = await readdir(d, { withFileTypes: true, encoding: 'buffer' });
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code === 'ENOENT' || code === 'ENOTDIR') continue; // vanished or replaced: the probe of d tells
          dirErrors.set(d, eventError(ERR_FIM_DIR_UNREADABLE(d, code ?? (err as Error).message)));
          continue;
        }
        for (const de of list) {
          if (!isUtf8(de.name)) {
            const p = `${d === '/' ? '' : d}/${escapedName(de.name)}`;
            if (!isExcluded(policy, p) && isIncluded(policy, p)) current.set(p, undecodableEntry(p, d, de));
            continue;
          }
          const name = de.name.toString();
          const p = d === '/' ? `/${name}` : `${d}/${name}`;
          if (isExcluded(policy, p)) continue;
          if (de.isDirectory()) stack.push(p);
          if (isIncluded(policy, p)) await add(p);
        }
      }
    };

    for (const t of targets) {
      if (isExcluded(policy, t.path)) continue;
      if (isIncluded(policy, t.path)) await add(t.path);
      // Whether a target is a directory is known only after its probe; listing it is cheap
      // and fails with ENOTDIR for a file.
      if (t.recursive) await walk(t.path);
    }
    await flush();
    queued();
    while (inflight.size) await Promise.race(inflight);
    if (failure) throw failure;

    for (const [d, error] of dirErrors) {
      const e = current.get(d);
      if (e && e.type === 'dir') e.error = error;
      unknown.set(d, { error, subtree: true, self: false });
    }
    for (const e of current.values()) {
      stats.entries++;
      if (e.type === 'file') stats.files++;
      else if (e.type === 'dir') stats.dirs++;
      if (e.error) stats.errors++;
    }
    stats.errors += [...unknown.values()].filter((u) => u.self).length;
    return { current, unknown, stats };
  }

  /**
   * Differences between two views of the same scope; `into` receives the new baseline part
   * (null: the caller takes `cur` itself, which is that part when nothing was hidden).
   */
  private diff(
    prev: Map<string, Entry>,
    cur: Map<string, Entry>,
    unknown: Map<string, { error: string; subtree: boolean; self: boolean }>,
    kind: FileScanKind,
    names: NameMaps,
    into: Map<string, Entry> | null,
  ): FileEvent[] {
    const events: FileEvent[] = [];
    const check = this.policy.attributeSet;
    // A path we could not look at keeps its last known state (with the error, so it is reported once).
    const hidden = (p: string): { error: string; self: boolean } | null => {
      const u = unknown.get(p);
      if (u?.self) return u;
      for (let d = dirname(p), q = p; d !== q; q = d, d = dirname(d)) {
        const a = unknown.get(d);
        if (a?.subtree) return a;
      }
      return null;
    };
    const removed: Entry[] = [];
    for (const [p, b] of prev) {
      if (cur.has(p)) continue;
      const h = hidden(p);
      if (h) {
        if (h.self && b.error !== h.error) {
          events.push(this.event('scan', kind, p, b, null, null, h.error, names));
        }
        into?.set(p, h.self ? { ...b, error: h.error } : b);
        continue;
      }
      removed.push(b);
    }
    const added: Entry[] = [];
    for (const [p, a] of cur) {
      const b = prev.get(p);
      if (!b) {
        added.push(a);
        continue;
      }
      into?.set(p, a);
      // The common case, nothing moved: no attribute list to build.
      if (sameEntry(a, b)) continue;
      // A file we could not hash this time keeps its known digest if nothing says it changed.
      if (a.type === 'file' && a.sha256 === null && a.error && b.sha256 && sameStat(a, b)) a.sha256 = b.sha256;
      const diff = changedAttributes(b, a, check, names);
      if (diff.length) events.push(this.event('changed', kind, p, b, a, null, a.error, names));
      else if (a.error && a.error !== b.error) events.push(this.event('scan', kind, p, b, a, null, a.error, names));
    }
    // Renames: same device + inode + type, and for files the same mtime (see the file comment).
    const byIdentity = new Map<string, Entry[]>();
    for (const r of removed) {
      const k = `${r.dev}:${r.ino}:${r.type}`;
      const l = byIdentity.get(k);
      if (l) l.push(r);
      else byIdentity.set(k, [r]);
    }
    const renamedAway = new Set<string>();
    for (const a of added) {
      into?.set(a.path, a);
      const cands = byIdentity.get(`${a.dev}:${a.ino}:${a.type}`);
      const i =
        cands?.findIndex((r) => (a.type !== 'file' || r.mtimeUs === a.mtimeUs) && !renamedAway.has(r.path)) ?? -1;
      if (cands && i >= 0) {
        const from = cands[i]!;
        cands.splice(i, 1);
        renamedAway.add(from.path);
        events.push(this.event('renamed', kind, a.path, from, a, from.path, a.error, names));
      } else {
        events.push(this.event('added', kind, a.path, null, a, null, a.error, names));
      }
    }
    for (const r of removed)
      if (!renamedAway.has(r.path)) events.push(this.event('removed', kind, r.path, r, null, null, null, names));
    events.sort((x, y) => (x.path < y.path ? -1 : x.path > y.path ? 1 : 0));
    return events;
  }

  /**
   * event_id hashes what the event says, not when it was seen: a change reported, then
   * reported again after a crash that lost the baseline update, carries the same id, so
   * downstream stages deduplicate it.
   */
  private event(
    op: FileOp,
    scan: FileScanKind,
    path: string,
    before: Entry | null,
    after: Entry | null,
    renamedFrom: string | null,
    error: string | null,
    names: NameMaps,
  ): FileEvent {
    const b = before ? toFileAttrs(before, names) : null;
    const a = after ? toFileAttrs(after, names) : null;
    const { agent, vm } = this.identity;
    const id =
      op === 'baseline'
        ? createHash('sha256')
            .update(`${agent}\0${vm}\0baseline\0${path}\0${this.ctx.clock.now()}`)
            .digest('hex')
            .slice(0, 32)
        : createHash('sha256')
            .update(JSON.stringify([agent, vm, op, path, renamedFrom, b, a, error]))
            .digest('hex')
            .slice(0, 32);
    return {
      event_id: id,
      agent,
      vm,
      ts_us: this.ctx.clock.now() * 1000,
      path,
      op,
      scan,
      before: b,
      after: a,
      renamed_from: renamedFrom,
      error,
    };
  }
}

/** Every recorded field equal (owner and group follow from uid and gid): nothing to report. */
function sameEntry(a: Entry, b: Entry): boolean {
  return (
    a.ino === b.ino &&
    a.mtimeUs === b.mtimeUs &&
    a.ctimeUs === b.ctimeUs &&
    a.size === b.size &&
    a.sha256 === b.sha256 &&
    a.mode === b.mode &&
    a.uid === b.uid &&
    a.gid === b.gid &&
    a.dev === b.dev &&
    a.type === b.type &&
    a.linkTarget === b.linkTarget &&
    a.error === b.error
  );
}

export interface ScanOnceOptions {
  policy: FimPolicyInput | FimPolicy;
  stateDir: string;
  ctx: Context;
  identity?: Partial<Identity>;
  /** 'check' (default): compare with the baseline (taking one if there is none); 'init': take a new baseline. */
  mode?: 'check' | 'init';
  /** Write the new state as the baseline (default true, as the agent does after each check). */
  update?: boolean;
  scanKind?: FileScanKind;
}

/** One full scan against the baseline in `stateDir`: for tests, the bench and `cordon fim` commands. */
export async function scanOnce(opts: ScanOnceOptions): Promise<ScanOutcome> {
  const engine = new FimEngine(opts);
  try {
    const out = await engine.fullScan(opts.scanKind ?? 'scheduled', {
      rebaseline: opts.mode === 'init',
      load: opts.mode !== 'init' ? () => engine.load() : null,
    });
    if (opts.update !== false) await engine.save();
    return out;
  } finally {
    await engine.close();
  }
}

/**
 * A name that is not UTF-8 as a path string: every byte outside printable ASCII, and `\`, as
 * `\xHH` — the same name gives the same path on every scan, so it is reported once when it
 * appears and once when it goes.
 */
function escapedName(name: Buffer): string {
  let out = '';
  for (const b of name)
    out += b >= 0x20 && b < 0x7f && b !== 0x5c ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`;
  return out;
}

/** What a scan records for an entry it cannot address by a UTF-8 path: its type and why. */
function undecodableEntry(path: string, dir: string, de: Dirent<Buffer>): Entry {
  return {
    path,
    type: de.isDirectory() ? 'dir' : de.isSymbolicLink() ? 'symlink' : de.isFile() ? 'file' : 'other',
    mode: 0,
    uid: 0,
    gid: 0,
    size: 0,
    dev: 0,
    ino: 0,
    mtimeUs: 0,
    ctimeUs: 0,
    sha256: null,
    linkTarget: null,
    error: eventError(ERR_FIM_NAME_NOT_UTF8(dir, de.name.toString('hex'))),
  };
}
