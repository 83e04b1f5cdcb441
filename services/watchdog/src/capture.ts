import { childContext } from '@cordon/runtime';
import { AssignmentView, InventoryView } from '@cordon/policy';
import { ProtectionWindows, startSensorCapture, type SensorCaptureStats } from '@cordon/sensor';
import type { Stage } from '@cordon/stage';
import { codecFor, TOPICS, watchdogSensor, type Assignment } from '@cordon/schemas';

/**
 * The watchdog's eyes: a live capture on the host's bridge (promiscuous: every frame the bridge
 * forwards, in the order it forwards them), each frame attributed to a VM by MAC from the
 * inventory and published to `packets` when the VM's assignment makes it this watchdog's — from
 * the hand-off's time boundary on (@cordon/sensor's ProtectionWindows). Frames of VMs an agent
 * protects, or nobody yet, are held for `holdMs` of packet time: when the coordinator hands
 * such a VM back (its agent went silent, it migrated here, it just powered on), the watchdog
 * inspects them from the boundary, so the hand-off leaves no hole. A VM no assignment names
 * yet is the watchdog's (a host without a coordinator inspects everything); frames of no known
 * VM are published as they come.
 */
export interface CaptureOptions {
  stage: Stage<unknown>;
  host: string;
  /** The bridge (or a mirror port) to capture on. */
  bridge: string;
  netns?: string;
  pollMs?: number;
  batchFrames?: number;
  holdMs?: number;
  holdMaxMiB?: number;
}

export type CaptureStats = SensorCaptureStats;

export interface CaptureHandle {
  readonly iface: string;
  stats(): CaptureStats;
  /** The assignment epoch applied per VM. */
  acks(): Record<string, number>;
  /** Is this watchdog inspecting the VM now? */
  protects(vm: string): boolean;
  stop(): Promise<void>;
}

const macOf = (b: Buffer, at: number) =>
  Array.from(b.subarray(at, at + 6), (x) => x.toString(16).padStart(2, '0')).join(':');

export async function startCapture(opts: CaptureOptions): Promise<CaptureHandle> {
  const { stage } = opts;
  const ctx = childContext(stage.ctx, 'capture');
  const inventory = new InventoryView();
  /** MAC (as a 48-bit number) → VM id, filled as frames come; emptied when the inventory changes. */
  const vmOfMac = new Map<number, string | null>();
  const holdMiB = opts.holdMaxMiB ?? 64;
  const windows = new ProtectionWindows({
    isMe: (a: Assignment) => a.mode === 'watchdog' && a.host === opts.host,
    holdUs: (opts.holdMs ?? 10_000) * 1000,
    maxBytesPerVm: Math.max(1 << 20, Math.floor((holdMiB << 20) / 8)),
    maxBytes: holdMiB << 20,
    unassignedIsMine: true,
  });
  await stage.follow(TOPICS.inventory, (r) => {
    inventory.apply(r.key, r.value);
    vmOfMac.clear();
  });
  const vmByMac = (frame: Buffer, at: number): string | null => {
    const n = frame.readUIntBE(at, 6);
    let vm = vmOfMac.get(n);
    if (vm === undefined) vmOfMac.set(n, (vm = inventory.vmByMac(macOf(frame, at))?.id ?? null));
    return vm;
  };
  const info = (await stage.bus.admin.listTopics()).find((t) => t.name === TOPICS.packets);
  let capture: ReturnType<typeof startSensorCapture> | null = null;
  const pending: Array<{ vm: string; frames: ReturnType<ProtectionWindows['assign']> }> = [];
  // assignments first (a restart knows at once what is whose), then the capture
  const assignments = new AssignmentView();
  const assignCodec = codecFor(TOPICS.assignments);
  await stage.follow(TOPICS.assignments, (r) => {
    assignments.apply(r.key, r.value);
    if (!r.value) {
      windows.forget(r.key?.toString() ?? '');
      return;
    }
    const a = assignCodec.decode(r.value);
    const released = windows.assign(a);
    if (released.length === 0) return;
    if (capture) capture.release(a.vm, released);
    else pending.push({ vm: a.vm, frames: released });
  });
  capture = startSensorCapture({
    sensor: watchdogSensor(opts.host),
    iface: opts.bridge,
    ...(opts.netns ? { netns: opts.netns } : {}),
    ...(opts.pollMs ? { pollMs: opts.pollMs } : {}),
    ...(opts.batchFrames ? { batchFrames: opts.batchFrames } : {}),
    partitions: info?.partitions ?? 1,
    send: (records) => stage.send(TOPICS.packets, records),
    /** The VM a frame belongs to: the destination VM when it is local (the one attacked), else the source. */
    attribute: (frame) => (frame.length < 12 ? null : (vmByMac(frame, 0) ?? vmByMac(frame, 6))),
    windows,
    log: ctx.log,
    metrics: ctx.metrics,
  });
  for (const p of pending.splice(0)) capture.release(p.vm, p.frames);
  const c = capture;
  return {
    iface: opts.bridge,
    stats: () => c.stats(),
    acks: () => windows.acks(),
    protects: (vm) => windows.protects(vm),
    stop: () => c.stop(),
  };
}
