import type { Assignment } from '@cordon/schemas';

/** A frame held, or handed over for publishing. `frame` is owned (copied) once held. */
export interface SensorFrame {
  tsUs: number;
  origLen: number;
  frame: Buffer;
  /**
   * A recovery frame: held while the agent so named protected the VM, released when it was lost
   * (published with PacketBatch.recovery_of, so consumers drop those the agent delivered).
   */
  recoveryOf?: string;
}

interface Window {
  /** Frames with a timestamp in [since, until) are ours. Infinity: not ours at all. */
  since: number;
  until: number;
  epoch: number;
  /**
   * This sensor's clock less its host's, as the assignment that made the VM ours said
   * (`clock_offset_us`; an agent's, 0 for a watchdog): boundaries, given on the host's clock,
   * are kept here on this sensor's (+ offset), as its frames are stamped.
   */
  offset: number;
  /**
   * A lost agent's recovery this sensor publishes (the assignment's `recovery_of`): frames in
   * [recoveryFrom, since) are published marked as it — those held when the assignment came, and
   * those captured after it (a frame can be stamped before the boundary and read after it).
   */
  recoveryOf: string | null;
  recoveryFrom: number;
  /** Frames not published (yet), oldest first, within the buffer's time and size. */
  held: SensorFrame[];
  bytes: number;
}

export interface WindowOptions {
  /** Is this assignment's protector me (this watchdog's host, this agent's incarnation)? */
  isMe(a: Assignment): boolean;
  /** How long unpublished frames are kept, in packet time (must outlast a silent agent's timeout). */
  holdUs: number;
  maxBytesPerVm: number;
  maxBytes: number;
  /**
   * A VM no assignment names yet is ours (the watchdog: the default protector of a VM without an
   * agent, so a host without a coordinator still inspects everything), or nobody's (the agent).
   */
  unassignedIsMine: boolean;
  /**
   * Publish only frames stamped before a lease the sensor announced (`extendLease`) — the
   * agent's: a successor takes over from the lease the agent last announced, so a frame the
   * agent published can never be after it, even when the agent dies between two heartbeats.
   * Without it, every frame of the window is published at once (the watchdog).
   */
  leased?: boolean;
}

/**
 * Per VM, which of its frames are this sensor's to inspect. An assignment names one protector
 * and a time boundary (`handoff_us`): frames from the boundary on are the protector's, frames
 * before it the previous one's — so a watchdog and an agent watching the same VM never both
 * publish a frame, and never both skip it:
 *
 * - becoming the protector: frames from the boundary on are published, including those already
 *   held (the boundary may be in the past: the lease of a lost agent, when a VM migrated or
 *   powered on);
 * - handing over: frames before the boundary are still published (it may be ahead: a watchdog
 *   keeps inspecting until the agent takes over), none after it;
 * - frames that are nobody's yet (no assignment, another protector) are held for `holdUs` of
 *   packet time, bounded in bytes, oldest dropped first (counted);
 * - with `leased`, frames of the window stamped at or after the announced lease wait (held)
 *   until the next lease covers them.
 */
export class ProtectionWindows {
  private readonly windows = new Map<string, Window>();
  private bytes = 0;
  private lease: number;
  evicted = 0;

  constructor(private readonly opts: WindowOptions) {
    this.lease = opts.leased ? -Infinity : Infinity;
  }

  private window(vm: string): Window {
    let w = this.windows.get(vm);
    if (!w)
      this.windows.set(
        vm,
        (w = {
          since: this.opts.unassignedIsMine ? -Infinity : Infinity,
          until: Infinity,
          epoch: 0,
          offset: 0,
          recoveryOf: null,
          recoveryFrom: Infinity,
          held: [],
          bytes: 0,
        }),
      );
    return w;
  }

  /**
   * Is a frame of `vm` at `tsUs` ours now? If not, it is held (copied) and false is returned. A
   * frame of a lost agent's recovery is ours, marked (`f.recoveryOf`).
   */
  offer(vm: string, f: SensorFrame): boolean {
    const w = this.window(vm);
    if (f.tsUs >= w.since && f.tsUs < w.until && f.tsUs < this.lease) return true;
    if (w.recoveryOf !== null && f.tsUs >= w.recoveryFrom && f.tsUs < w.since && w.until === Infinity) {
      f.recoveryOf = w.recoveryOf;
      return true;
    }
    const held: SensorFrame = { tsUs: f.tsUs, origLen: f.origLen, frame: Buffer.from(f.frame) };
    w.held.push(held);
    w.bytes += held.frame.length;
    this.bytes += held.frame.length;
    this.trim(w, f.tsUs);
    return false;
  }

  /**
   * Apply an assignment of `a.vm`; returns the held frames that became ours, oldest first. An
   * assignment that takes the VM back from a lost agent (`recovery_of`) also returns the held
   * frames from `recovery_from_us` to the boundary, marked as that agent's recovery.
   */
  assign(a: Assignment): SensorFrame[] {
    const w = this.window(a.vm);
    if (a.epoch < w.epoch) return []; // an older assignment, seen late
    w.epoch = a.epoch;
    w.recoveryOf = null;
    w.recoveryFrom = Infinity;
    if (this.opts.isMe(a)) {
      w.offset = a.clock_offset_us;
      w.since = a.handoff_us + w.offset;
      w.until = Infinity;
      if (a.recovery_of !== null && a.recovery_from_us < a.handoff_us) {
        w.recoveryOf = a.recovery_of;
        w.recoveryFrom = a.recovery_from_us + w.offset;
        const recovered = this.take(w, w.recoveryFrom, w.since, a.recovery_of);
        return recovered.length ? [...recovered, ...this.takeOurs(w)] : this.takeOurs(w);
      }
    } else {
      // frames from the boundary on are another's; those before it that were ours stay ours
      // (the boundary on this sensor's clock, as the assignment that made them ours said)
      w.until = w.since === Infinity ? Infinity : Math.min(w.until, a.handoff_us + w.offset);
      if (w.until <= w.since) w.since = w.until = Infinity;
    }
    return this.takeOurs(w);
  }

  /**
   * The sensor announced (and the bus acknowledged) that it publishes frames stamped before
   * `us`: returns, per VM, the held frames that this makes ours.
   */
  extendLease(us: number): Array<{ vm: string; frames: SensorFrame[] }> {
    if (us <= this.lease) return [];
    this.lease = us;
    const out: Array<{ vm: string; frames: SensorFrame[] }> = [];
    for (const [vm, w] of this.windows) {
      const frames = this.takeOurs(w);
      if (frames.length) out.push({ vm, frames });
    }
    return out;
  }

  /** The lease announced last (Infinity: not leased). */
  get leaseUs(): number {
    return this.lease;
  }

  /** This sensor's clock less its host's for `vm`, as its assignment said (0: none, or a watchdog). */
  offsetUs(vm: string): number {
    return this.windows.get(vm)?.offset ?? 0;
  }

  /** `f` stamped on the host's clock, as it is published (the same frame when the offset is 0). */
  onHostClock(vm: string, f: SensorFrame): SensorFrame {
    const off = this.offsetUs(vm);
    return off === 0 ? f : { ...f, tsUs: f.tsUs - off };
  }

  /** The epoch applied per VM (the acknowledgements a heartbeat carries). */
  acks(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [vm, w] of this.windows) if (w.epoch > 0) out[vm] = w.epoch;
    return out;
  }

  /** Is `vm` ours from some boundary on (the assignment names us)? */
  protects(vm: string): boolean {
    const w = this.windows.get(vm);
    return !!w && w.since !== Infinity && w.until === Infinity;
  }

  forget(vm: string): void {
    const w = this.windows.get(vm);
    if (!w) return;
    this.bytes -= w.bytes;
    this.windows.delete(vm);
  }

  heldBytes(): number {
    return this.bytes;
  }

  /** Remove and return the held frames the window and the lease now make ours, oldest first. */
  private takeOurs(w: Window): SensorFrame[] {
    return this.take(w, w.since, Math.min(w.until, this.lease));
  }

  /** Remove and return the held frames stamped in [from, end), oldest first (marked `recoveryOf`). */
  private take(w: Window, from: number, end: number, recoveryOf?: string): SensorFrame[] {
    if (w.held.length === 0 || from >= end) return [];
    const mine: SensorFrame[] = [];
    const rest: SensorFrame[] = [];
    for (const f of w.held) {
      if (f.tsUs < from || f.tsUs >= end) rest.push(f);
      else mine.push(recoveryOf === undefined ? f : { ...f, recoveryOf });
    }
    if (mine.length) {
      w.held = rest;
      const freed = mine.reduce((n, f) => n + f.frame.length, 0);
      w.bytes -= freed;
      this.bytes -= freed;
    }
    return mine;
  }

  private trim(w: Window, nowTs: number): void {
    const oldest = nowTs - this.opts.holdUs;
    let drop = 0;
    while (
      drop < w.held.length &&
      (w.held[drop]!.tsUs < oldest || w.bytes > this.opts.maxBytesPerVm || this.bytes > this.opts.maxBytes)
    ) {
      const f = w.held[drop]!;
      w.bytes -= f.frame.length;
      this.bytes -= f.frame.length;
      // frames older than the hold were anybody's: only a size eviction could cost an inspection
      if (f.tsUs >= oldest) this.evicted++;
      drop++;
    }
    if (drop) w.held.splice(0, drop);
  }
}
