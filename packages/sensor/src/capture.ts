import type { ProduceRecord } from '@cordon/bus';
import { LiveCapture } from '@cordon/native';
import type { Logger, Metrics } from '@cordon/runtime';
import { FramePublisher } from './publisher.js';
import type { ProtectionWindows, SensorFrame } from './windows.js';

export interface SensorCaptureOptions {
  /** `watchdog:<host>` or `agent:<id>`: the PacketBatches' sensor. */
  sensor: string;
  iface: string;
  netns?: string;
  /** Drain at least this often (arriving frames wake the drain at once anyway). */
  pollMs?: number;
  batchFrames?: number;
  /** Partitions of the packets topic. */
  partitions: number;
  send(records: ProduceRecord[]): Promise<void>;
  /** The VM a frame belongs to, or null (published as it comes). */
  attribute(frame: Buffer): string | null;
  windows: ProtectionWindows;
  log: Logger;
  metrics: Metrics;
  /** Added to every frame's capture stamp: the sensor's clock is set off from the kernel's (`clockOffsetUs`). */
  stampOffsetUs?: number;
}

export interface SensorCaptureStats {
  captured: number;
  published: number;
  held: number;
  heldBytes: number;
  evicted: number;
  droppedKernel: number;
  droppedRing: number;
  /** Timestamp of the newest frame published (on the host's clock, as published), µs. */
  newestUs: number;
}

export interface SensorCapture {
  stats(): SensorCaptureStats;
  /** Publish frames a hand-off made ours (ProtectionWindows.assign's result). */
  release(vm: string, frames: SensorFrame[]): void;
  /** Leased windows: the lease `us` was announced and acknowledged; publish what it covers, held frames first. */
  extendLease(us: number): void;
  /** Publish nothing (and hold nothing) until resumed: a sensor that must not inspect (a clone told to enroll again). */
  pause(paused: boolean): void;
  stop(): Promise<void>;
}

/**
 * A live capture (AF_PACKET, native) on an interface, drained when frames arrive (the addon
 * calls back once per burst) and at least every `pollMs`; each frame is attributed to a VM and
 * published when that VM's window makes it ours, else held (ProtectionWindows).
 */
export function startSensorCapture(opts: SensorCaptureOptions): SensorCapture {
  const { windows, log, metrics } = opts;
  const inflight = new Set<Promise<unknown>>();
  const publisher = new FramePublisher({
    sensor: opts.sensor,
    partitions: opts.partitions,
    ...(opts.batchFrames ? { batchFrames: opts.batchFrames } : {}),
    send: opts.send,
  });
  const counts = { captured: 0, held: 0, skipped: 0 };
  const stampOffsetUs = opts.stampOffsetUs ?? 0;
  let paused = false;

  const sendNow = () => {
    const p = publisher.flush()?.catch((err: unknown) => {
      metrics.inc('errors');
      log.error({ err }, 'Captured frames could not be published.');
    });
    if (!p) return;
    inflight.add(p);
    void p.finally(() => inflight.delete(p));
  };

  let timer: NodeJS.Timeout | undefined;
  let scheduled = false;
  let stopped = false;
  const soon = () => {
    if (scheduled || stopped) return;
    scheduled = true;
    setImmediate(tick);
  };
  const capture = LiveCapture.open(opts.iface, { ...(opts.netns ? { netns: opts.netns } : {}), onData: soon });
  log.info({ iface: opts.iface, netns: opts.netns ?? null }, 'Capturing.');

  function tick(): void {
    scheduled = false;
    clearTimeout(timer);
    if (stopped) return;
    const b = capture.drain(0);
    for (let i = 0; i < b.tsUs.length; i++) {
      const frame = b.data.subarray(b.offsets[i]!, b.offsets[i + 1]!);
      counts.captured++;
      const vm = opts.attribute(frame);
      const f = { tsUs: b.tsUs[i]! + stampOffsetUs, origLen: b.origLen[i]!, frame };
      if (paused) {
        counts.skipped++;
        continue;
      }
      // no copy for frames published now: they are encoded below, before this tick ends
      if (vm === null) publisher.add(vm, f);
      else if (windows.offer(vm, f)) publisher.add(vm, windows.onHostClock(vm, f));
      else counts.held++;
    }
    sendNow();
    const s = stats();
    metrics.set('captured', s.captured);
    metrics.set('dropped', s.droppedKernel + s.droppedRing);
    metrics.set('held_bytes', s.heldBytes);
    timer = setTimeout(soon, opts.pollMs ?? 50);
  }
  let lastDrops = { droppedKernel: 0, droppedRing: 0 };
  const stats = (): SensorCaptureStats => {
    // a stopped capture keeps reporting what it counted
    if (!stopped) lastDrops = capture.stats();
    const { droppedKernel, droppedRing } = lastDrops;
    return {
      captured: counts.captured,
      published: publisher.published,
      held: counts.held,
      heldBytes: windows.heldBytes(),
      evicted: windows.evicted,
      droppedKernel,
      droppedRing,
      newestUs: publisher.newestUs,
    };
  };
  const release = (vm: string, frames: SensorFrame[]): void => {
    if (paused || frames.length === 0) return;
    for (const f of frames) publisher.add(vm, windows.onHostClock(vm, f));
    metrics.inc('released', frames.length);
    sendNow();
  };
  soon();
  return {
    stats,
    release,
    extendLease(us) {
      for (const r of windows.extendLease(us)) release(r.vm, r.frames);
    },
    pause(p) {
      paused = p;
    },
    async stop() {
      stats();
      stopped = true;
      clearTimeout(timer);
      capture.close();
      await Promise.all(inflight);
    },
  };
}
