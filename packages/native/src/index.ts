/**
 * The one module that loads Cordon's native DPI engine (native/cordon_dpi.node) and exposes
 * it as a typed, batch-oriented API: compile rules once, create an engine, hand it batches of
 * frames, get EVE alert lines back. Nothing else in the codebase touches the addon.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERR_NATIVE_ACCESS_LINES, ERR_NATIVE_BAD_BATCH, ERR_NATIVE_BAD_OPTION, ERR_NATIVE_LITERALS, ERR_NATIVE_MISSING } from './errors.js';

export * from './errors.js';

export interface RuleSource {
  /** A name for reports (usually the file path). */
  name: string;
  text: string;
}

export interface RuleFailure {
  sid: number | null;
  file: string;
  line: number;
  reason: string;
}

export interface LoadReport {
  rules: number;
  loaded: number;
  failed: number;
  failures: RuleFailure[];
}

export type ChecksumMode = 'auto' | 'on' | 'off';

export interface EngineStats {
  packets: number;
  bytes: number;
  decode_errors: number;
  bad_checksums: number;
  fragments_pending: number;
  flows: number;
  flows_evicted: number;
  alerts: number;
  active_flows: number;
}

/** A batch of frames laid out for one native call. */
export interface FrameBatch {
  /** Frames back to back. */
  data: Buffer;
  /** n+1 offsets into data. */
  offsets: Uint32Array;
  /** Capture time of each frame, microseconds since the epoch. */
  tsUs: Float64Array;
  /** LINKTYPE_* of each frame. */
  linktypes: Uint32Array;
}

interface NativeRules {
  rawScan(data: Buffer, offsets?: Uint32Array): number;
  rawScanHs(data: Buffer, offsets?: Uint32Array): number | null;
  matcher(): string;
  report(): { rules: number; loaded: number; failed: number; failures: { sid?: number | null; file: string; line: number; reason: string }[] };
}
interface NativeEngine {
  setRules(r: NativeRules): void;
  processBatch(data: Buffer, offsets: Uint32Array, ts: Float64Array, lt: Uint32Array): string[];
  processBatchAsync(data: Buffer, offsets: Uint32Array, ts: Float64Array, lt: Uint32Array): Promise<string[]>;
  finish(): string[];
  finishAsync(): Promise<string[]>;
  stats(): string;
}
interface NativeLiteralMatcher {
  scan(data: Buffer, offsets: Uint32Array, out: Uint32Array): number;
}
interface Addon {
  /** Present when the engine was built with Hyperscan. */
  LiteralMatcher?: new (literals: string[]) => NativeLiteralMatcher;
  DpiRules: { compile(sources: RuleSource[]): NativeRules; compileAsync(sources: RuleSource[]): Promise<NativeRules> };
  DpiEngine: new (rules: NativeRules, checksum: string, maxFlows?: number, encryption?: string) => NativeEngine;
  nativeHeapBytes(): number;
  /** Absent from engines built before it. */
  accessLines?(data: Buffer, offsets: Uint32Array, lengths: Int32Array, out: Int32Array): number;
}

const here = dirname(fileURLToPath(import.meta.url));
/** packages/native/dist/src → repo root → native/cordon_dpi.node; CORDON_DPI_NODE overrides. */
export const ADDON_PATH = process.env.CORDON_DPI_NODE ?? resolve(here, '../../../../native/cordon_dpi.node');

let addon: Addon | undefined;
function load(): Addon {
  if (addon) return addon;
  if (!existsSync(ADDON_PATH)) throw ERR_NATIVE_MISSING(ADDON_PATH, 'file not found');
  try {
    addon = createRequire(import.meta.url)(ADDON_PATH) as Addon;
  } catch (err) {
    throw ERR_NATIVE_MISSING.withCause(err, ADDON_PATH, (err as Error).message);
  }
  return addon;
}

/** A compiled rule set; immutable, shareable between engines. */
export class Rules {
  private constructor(readonly native: NativeRules) {}
  static compile(sources: RuleSource[]): Rules {
    return new Rules(load().DpiRules.compile(sources));
  }
  /**
   * The same on a libuv pool thread: the calling thread goes on (a service keeps inspecting
   * with its old rules). A compilation cannot be interrupted once started: a caller that
   * stops waiting for it should not start another until it settled.
   */
  static async compileAsync(sources: RuleSource[]): Promise<Rules> {
    return new Rules(await load().DpiRules.compileAsync(sources));
  }
  /**
   * The multi-pattern prefilter alone over `data` with aho-corasick (benchmark baseline);
   * with `offsets` (n+1 entries) each segment is scanned on its own. Returns match count.
   */
  rawScan(data: Buffer, offsets?: Uint32Array): number {
    return this.native.rawScan(data, offsets);
  }
  /**
   * The same raw scan with Hyperscan/Vectorscan (each pattern counted once per call); null
   * when the engine was built without it.
   */
  rawScanHs(data: Buffer, offsets?: Uint32Array): number | null {
    return this.native.rawScanHs(data, offsets) ?? null;
  }
  /** The prefilter's matcher: "hyperscan" or "aho-corasick". */
  matcher(): string {
    return this.native.matcher();
  }
  report(): LoadReport {
    const r = this.native.report();
    return { rules: r.rules, loaded: r.loaded, failed: r.failed, failures: r.failures.map((f) => ({ ...f, sid: f.sid ?? null })) };
  }
}

export interface EngineOptions {
  checksum?: ChecksumMode;
  /**
   * The flow table's cap (default 200,000): beyond it the least recently seen flows are
   * ended (their pending transactions inspected) and counted in `stats().flows_evicted`.
   */
  maxFlows?: number;
  /**
   * Suricata's `encryption-handling`: `default` — once a TLS flow carries application data,
   * or both sides of an SSH flow sent NEWKEYS, rules that inspect the packet or stream
   * payload no longer see it (TLS/SSH, header and flow keywords still do); `full` — content
   * rules go on inspecting it.
   */
  encryptionHandling?: EncryptionHandling;
}

export type EncryptionHandling = 'default' | 'full';

/**
 * Flow, stream and app-layer state plus the current rule set. One engine runs one batch at a
 * time: while `processBatchAsync` or `finishAsync` is in flight, the engine refuses other calls.
 */
export class Engine {
  private readonly native: NativeEngine;
  constructor(rules: Rules, opts: EngineOptions = {}) {
    const mode = opts.checksum ?? 'auto';
    if (!['auto', 'on', 'off'].includes(mode)) throw ERR_NATIVE_BAD_OPTION(`checksum must be auto, on or off, not "${mode}"`);
    const max = opts.maxFlows;
    if (max !== undefined && !(Number.isInteger(max) && max >= 1 && max <= 0xffffffff))
      throw ERR_NATIVE_BAD_OPTION(`maxFlows must be a whole number from 1 to 4294967295, not ${String(max)}`);
    const enc = opts.encryptionHandling ?? 'default';
    if (enc !== 'default' && enc !== 'full')
      throw ERR_NATIVE_BAD_OPTION(`encryptionHandling must be default or full, not "${String(enc)}"`);
    this.native = new (load().DpiEngine)(rules.native, mode, max, enc);
  }
  /** Swap the rule set; flows continue. */
  setRules(rules: Rules): void {
    this.native.setRules(rules.native);
  }
  /** Inspect one batch; returns EVE JSON alert lines. */
  processBatch(batch: FrameBatch): string[] {
    try {
      return this.native.processBatch(batch.data, batch.offsets, batch.tsUs, batch.linktypes);
    } catch (err) {
      throw ERR_NATIVE_BAD_BATCH.withCause(err, (err as Error).message);
    }
  }
  /**
   * The same on a libuv pool thread (the JavaScript thread goes on; engines of other
   * partitions run on the other pool threads meanwhile). The batch's buffers must stay
   * unchanged until the promise settles.
   */
  async processBatchAsync(batch: FrameBatch): Promise<string[]> {
    try {
      return await this.native.processBatchAsync(batch.data, batch.offsets, batch.tsUs, batch.linktypes);
    } catch (err) {
      throw ERR_NATIVE_BAD_BATCH.withCause(err, (err as Error).message);
    }
  }
  /** End of input: flush every flow; returns the last alerts. */
  finish(): string[] {
    try {
      return this.native.finish();
    } catch (err) {
      throw ERR_NATIVE_BAD_BATCH.withCause(err, (err as Error).message);
    }
  }
  /**
   * The same on a libuv pool thread: ending a full flow table (every pending transaction
   * inspected) can take a while, and the JavaScript thread goes on meanwhile.
   */
  async finishAsync(): Promise<string[]> {
    try {
      return await this.native.finishAsync();
    } catch (err) {
      throw ERR_NATIVE_BAD_BATCH.withCause(err, (err as Error).message);
    }
  }
  stats(): EngineStats {
    return JSON.parse(this.native.stats()) as EngineStats;
  }
}

/** Builds FrameBatch values from frames, growing one buffer. */
export class BatchBuilder {
  private parts: Buffer[] = [];
  private offs: number[] = [0];
  private ts: number[] = [];
  private lts: number[] = [];
  private bytes = 0;
  add(frame: Buffer, tsUs: number, linktype: number): void {
    this.parts.push(frame);
    this.bytes += frame.length;
    this.offs.push(this.bytes);
    this.ts.push(tsUs);
    this.lts.push(linktype);
  }
  get size(): number {
    return this.ts.length;
  }
  get byteLength(): number {
    return this.bytes;
  }
  take(): FrameBatch {
    const b: FrameBatch = {
      data: Buffer.concat(this.parts, this.bytes),
      offsets: Uint32Array.from(this.offs),
      tsUs: Float64Array.from(this.ts),
      linktypes: Uint32Array.from(this.lts),
    };
    this.parts = [];
    this.offs = [0];
    this.ts = [];
    this.lts = [];
    this.bytes = 0;
    return b;
  }
}

/**
 * Where the fields of a batch's web access lines lie, found natively (loginspect builds the
 * events from these rows instead of searching each line in JavaScript). Line `k` is
 * `data[offsets[k] .. offsets[k] + lengths[k])`, a line whose characters are its bytes (a
 * negative length: not looked at); its row is `out[k * ACCESS_ROW .. (k + 1) * ACCESS_ROW)`:
 * `row[0]` is 0 not looked at, 1 an access line, 2 not one, 3 a shape left to the caller;
 * for an access line `row[1 .. 27)` are its spans (loginspect's SLOT order) and then the
 * stamp's bounds, the gap before the request, the address's bounds and the vhost's end (-1).
 */
export class AccessLines {
  private constructor(private readonly fn: NonNullable<Addon['accessLines']>) {}

  /** Null when the DPI engine is not built (or predates it): the caller decodes in JavaScript. */
  static create(): AccessLines | null {
    try {
      const fn = load().accessLines;
      return fn ? new AccessLines(fn) : null;
    } catch {
      return null;
    }
  }

  decode(data: Buffer, offsets: Uint32Array, lengths: Int32Array, out: Int32Array): void {
    if (out.length < lengths.length * ACCESS_ROW)
      throw ERR_NATIVE_ACCESS_LINES(`an access row of ${ACCESS_ROW} a line: ${out.length} for ${lengths.length} lines`);
    try {
      this.fn(data, offsets, lengths, out);
    } catch (err) {
      throw ERR_NATIVE_ACCESS_LINES.withCause(err, (err as Error).message);
    }
  }
}

/** Entries of a line's row in `AccessLines.decode`'s output. */
export const ACCESS_ROW = 34;

/**
 * Case-insensitive ASCII literals (loginspect's rule literals) searched in a batch of lines
 * with one native call, on Hyperscan: every occurrence of every literal in each line. The
 * JavaScript scan this replaces visits every character of a line at a few ns each; Hyperscan
 * reads a batch of lines for a fraction of that (bench/RESULTS.md, loginspect).
 */
export class LiteralMatcher {
  private constructor(private readonly native: NativeLiteralMatcher) {}

  /**
   * A matcher for `literals` (literal `i` is reported as `i`); null when the DPI engine is not
   * built, or was built without Hyperscan: the caller searches in JavaScript then.
   */
  static create(literals: readonly string[]): LiteralMatcher | null {
    for (const l of literals)
      if (l.length === 0 || !/^[\0-\x7f]*$/.test(l))
        throw ERR_NATIVE_LITERALS(`a literal must be non-empty ASCII, not ${JSON.stringify(l)}`);
    if (literals.length === 0) return null;
    let a: Addon;
    try {
      a = load();
    } catch {
      return null;
    }
    if (a.LiteralMatcher === undefined) return null;
    return new LiteralMatcher(new a.LiteralMatcher([...literals]));
  }

  /**
   * Line `k` is `data[offsets[k] .. offsets[k + 1])`; each occurrence of a literal in it is
   * written to `out` as the triple (k, literal, start), lines in order. Returns how many, or
   * -1 when `out` cannot hold them all (grow it and call again).
   */
  scan(data: Buffer, offsets: Uint32Array, out: Uint32Array): number {
    try {
      return this.native.scan(data, offsets, out);
    } catch (err) {
      throw ERR_NATIVE_LITERALS.withCause(err, (err as Error).message);
    }
  }
}

/**
 * Bytes the native heaps hold, apart from the JavaScript heap: what mimalloc (the engines'
 * flows, streams, rule sets) has committed plus glibc malloc's bytes in use (Hyperscan's). For
 * benchmarks; it follows live memory only in a process started with
 * MIMALLOC_ARENA_EAGER_COMMIT=0 and MIMALLOC_PURGE_DELAY=0 (mimalloc otherwise commits its
 * arenas up front and keeps freed pages a while).
 */
export function nativeHeapBytes(): number {
  return load().nativeHeapBytes();
}

export const nativeAddonPath = (): string => join(ADDON_PATH);
export * from './capture.js';
export * from './scan.js';
export * from './nft.js';
export * from './nft-blocks.js';
export * from './proc.js';
export * from './fim.js';
export * from './sign.js';
