/**
 * The host-side addon (native/cordon_capture.node, built from native/capture). Here: the
 * watchdog's live capture, an AF_PACKET socket per interface read by a thread of its own,
 * drained in batches; nft.ts holds its nftables half. The DPI addon and this one are the
 * only native code; both load in @cordon/native.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERR_NATIVE_CAPTURE, ERR_NATIVE_MISSING } from './errors.js';

export interface CapturedBatch {
  data: Buffer;
  /** n+1 offsets into data. */
  offsets: Uint32Array;
  tsUs: Float64Array;
  origLen: Uint32Array;
}

export interface CaptureStats {
  received: number;
  /** Dropped by the kernel: the socket buffer was full. */
  droppedKernel: number;
  /** Dropped because the batches were not drained in time. */
  droppedRing: number;
}

interface NativeCapture {
  drain(max: number): { data: Buffer; offsets: Uint32Array; tsUs: Float64Array; origLen: Uint32Array };
  stats(): { received: number; droppedKernel: number; droppedRing: number };
  close(): void;
}
interface NativeNftSession {
  run(script: string, json?: boolean | null): Promise<string>;
  close(): void;
}
interface CaptureAddon {
  Capture: { open(iface: string, netns?: string | null, snaplen?: number | null, maxBufferedFrames?: number | null, promisc?: boolean | null, onData?: (() => void) | null): NativeCapture };
  NftSession: { open(netns?: string | null): NativeNftSession };
}

const here = dirname(fileURLToPath(import.meta.url));
export const CAPTURE_ADDON_PATH = process.env.CORDON_CAPTURE_NODE ?? resolve(here, '../../../../native/cordon_capture.node');

let addon: CaptureAddon | undefined;
/** The host-side addon (capture and nftables), loaded once. */
export function loadHostAddon(): CaptureAddon {
  if (addon) return addon;
  if (!existsSync(CAPTURE_ADDON_PATH)) throw ERR_NATIVE_MISSING(CAPTURE_ADDON_PATH, 'file not found (native/capture/build.sh builds it)');
  try {
    addon = createRequire(import.meta.url)(CAPTURE_ADDON_PATH) as CaptureAddon;
  } catch (err) {
    throw ERR_NATIVE_MISSING.withCause(err, CAPTURE_ADDON_PATH, (err as Error).message);
  }
  return addon;
}

export class LiveCapture {
  private constructor(
    readonly iface: string,
    private readonly native: NativeCapture,
  ) {}

  /**
   * Promiscuous unless `promisc: false` (on a bridge: every frame it forwards). `onData` runs
   * (on this thread) when frames arrive after a drain — drain then, instead of on a timer.
   * Needs root (or CAP_NET_RAW, and CAP_SYS_ADMIN for `netns`). Throws a typed error otherwise.
   */
  static open(iface: string, opts: { netns?: string; snaplen?: number; promisc?: boolean; onData?: () => void } = {}): LiveCapture {
    const a = loadHostAddon();
    try {
      return new LiveCapture(iface, a.Capture.open(iface, opts.netns ?? null, opts.snaplen ?? null, null, opts.promisc ?? true, opts.onData ?? null));
    } catch (err) {
      throw ERR_NATIVE_CAPTURE.withCause(err, `opening a capture on ${iface}${opts.netns ? ` in namespace ${opts.netns}` : ''}`, (err as Error).message);
    }
  }

  /** Up to `max` buffered frames (0: all). */
  drain(max = 0): CapturedBatch {
    return this.native.drain(max);
  }

  stats(): CaptureStats {
    return this.native.stats();
  }

  close(): void {
    this.native.close();
  }
}
