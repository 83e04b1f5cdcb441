/**
 * The agent's anti-malware addon (native/cordon_scan.node, built from native/scan on YARA-X):
 * YARA rules compiled once, files scanned in batches on libuv's thread pool (never on the JS
 * thread), each file's SHA-256 computed from the bytes scanned. A crate of its own so the DPI
 * engine's builds do not wait for YARA-X's wasmtime.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERR_NATIVE_MISSING, ERR_NATIVE_YARA_RULE } from './errors.js';

export interface YaraSource {
  /** What errors name (a file path). */
  name: string;
  /** Rule names must be unique within a namespace. */
  namespace: string;
  text: string;
}

export interface YaraMatch {
  rule: string;
  namespace: string;
  tags: string[];
  /** The rule's metadata. */
  meta: Record<string, string | number | boolean>;
  /** The patterns that matched, each with the offset of its first match. */
  patterns: Array<{ id: string; offset: number }>;
}

export type FileScanStatus = 'ok' | 'too_large' | 'not_regular' | 'not_found' | 'unreadable' | 'timeout' | 'error';

export interface FileScan {
  path: string;
  status: FileScanStatus;
  /** By fstat of the opened file. */
  size: number;
  /** Read and scanned (0 unless status is ok or timeout: a file above the limit is not read). */
  bytes: number;
  /** Of the bytes scanned. */
  sha256: string | null;
  matches: YaraMatch[];
  error: string | null;
  micros: number;
}

interface NativeFileScan {
  path: string;
  status: string;
  size: number;
  bytes: number;
  sha256?: string | null;
  matches: Array<{ rule: string; namespace: string; tags: string[]; meta: string; patterns: string[]; offsets: number[] }>;
  error?: string | null;
  micros: number;
}
interface NativeYaraRules {
  readonly ruleCount: number;
  scanFiles(paths: string[], maxBytes: number, timeoutMs: number): Promise<NativeFileScan[]>;
  scanBuffer(data: Buffer, timeoutMs: number): Promise<NativeFileScan>;
}
interface ScanAddon {
  YaraRules: {
    compile(sources: YaraSource[]): NativeYaraRules;
    compileAsync(sources: YaraSource[]): Promise<NativeYaraRules>;
  };
  yaraXVersion(): string;
}

const here = dirname(fileURLToPath(import.meta.url));
export const SCAN_ADDON_PATH = process.env.CORDON_SCAN_NODE ?? resolve(here, '../../../../native/cordon_scan.node');

let addon: ScanAddon | undefined;
function loadScanAddon(): ScanAddon {
  if (addon) return addon;
  if (!existsSync(SCAN_ADDON_PATH))
    throw ERR_NATIVE_MISSING(SCAN_ADDON_PATH, 'file not found (native/scan/build.sh builds it)');
  try {
    addon = createRequire(import.meta.url)(SCAN_ADDON_PATH) as ScanAddon;
  } catch (err) {
    throw ERR_NATIVE_MISSING.withCause(err, SCAN_ADDON_PATH, (err as Error).message);
  }
  return addon;
}

/** A bad rule, as the addon reports it: the first error, with the file and line it is at. */
interface BadRule {
  kind: 'bad_rule';
  file: string;
  line: number;
  column: number;
  code: string;
  message: string;
}

function rethrow(err: unknown): never {
  const text = (err as Error).message ?? String(err);
  let bad: BadRule | null = null;
  try {
    const parsed = JSON.parse(text) as BadRule;
    if (parsed?.kind === 'bad_rule') bad = parsed;
  } catch {
    // not one of ours
  }
  if (bad) throw ERR_NATIVE_YARA_RULE.withCause(err, `${bad.file}:${bad.line}:${bad.column}`, `${bad.message} (${bad.code})`);
  throw err;
}

const toScan = (r: NativeFileScan): FileScan => ({
  path: r.path,
  status: r.status as FileScanStatus,
  size: r.size,
  bytes: r.bytes,
  sha256: r.sha256 ?? null,
  error: r.error ?? null,
  micros: r.micros,
  matches: r.matches.map((m) => ({
    rule: m.rule,
    namespace: m.namespace,
    tags: m.tags,
    meta: JSON.parse(m.meta) as Record<string, string | number | boolean>,
    patterns: m.patterns.map((id, i) => ({ id, offset: m.offsets[i] ?? 0 })),
  })),
});

/** Compiled YARA rules. Scans run on libuv's pool; a batch of files is one call. */
export class YaraRules {
  private constructor(private readonly native: NativeYaraRules) {}

  /** Compile on the calling thread; a bad rule is CORDON_ERR_NATIVE_YARA_RULE naming file:line:column. */
  static compile(sources: YaraSource[]): YaraRules {
    try {
      return new YaraRules(loadScanAddon().YaraRules.compile(sources));
    } catch (err) {
      rethrow(err);
    }
  }

  /** Compile off the JS thread (compiling a large set takes a while). */
  static async compileAsync(sources: YaraSource[]): Promise<YaraRules> {
    try {
      return new YaraRules(await loadScanAddon().YaraRules.compileAsync(sources));
    } catch (err) {
      rethrow(err);
    }
  }

  get ruleCount(): number {
    return this.native.ruleCount;
  }

  /** Scan files one after the other on one pool thread; files above `maxBytes` are reported, not read. */
  async scanFiles(paths: string[], opts: { maxBytes: number; timeoutMs: number }): Promise<FileScan[]> {
    const out = await this.native.scanFiles(paths, opts.maxBytes, Math.max(1, Math.round(opts.timeoutMs)));
    return out.map(toScan);
  }

  async scanBuffer(data: Buffer, opts: { timeoutMs: number }): Promise<FileScan> {
    return toScan(await this.native.scanBuffer(data, Math.max(1, Math.round(opts.timeoutMs))));
  }
}

export const yaraXVersion = (): string => loadScanAddon().yaraXVersion();
