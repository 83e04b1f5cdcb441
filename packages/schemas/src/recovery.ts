import type { Packet, PacketBatch } from './generated.js';

/**
 * How far apart two sensors' stamps of one packet may be, µs: an agent stamps a frame in the
 * guest, the watchdog on the host's bridge, a few tens of µs apart on one clock (more when the
 * guest's clock is off). A recovery frame stamped within this of the agent's newest is taken for
 * one the agent delivered; so at most this much of a lost agent's last traffic can go
 * uninspected, where a larger value would drop more and a smaller one inspect the agent's last
 * frame twice.
 */
export const RECOVERY_TOLERANCE_US = 2000;

/** The (VM, sensor) keys a RecoveryFilter keeps per partition, least recently seen dropped first. */
export const RECOVERY_MAX_KEYS_PER_PARTITION = 65_536;

/**
 * The consumer's side of a recovery (`PacketBatch.recovery_of`). When an agent is lost, the
 * watchdog publishes the frames it held while the agent protected the VM, from a little before
 * the agent's last heartbeat on: the agent delivered some of them, the rest nobody has. A
 * consumer of `packets` (the dpi, the flows) drops those the agent delivered:
 *
 * - per input partition it keeps the newest frame time of each (VM, sensor);
 * - one producer's records reach a partition in order, and both sensors' frames of a flow go to
 *   the same partition (the address-pair key), so a recovery frame stamped at or before the
 *   agent's newest frame in that partition (with `RECOVERY_TOLERANCE_US`) is one the agent
 *   delivered, and a later one is one it never sent.
 *
 * It is symmetric: an agent cut off from the bus (not dead) whose retried sends arrive after the
 * recovery has its frames inside the recovery's range dropped instead.
 *
 * Its state is in memory. A consumer that checkpoints (the flows stage) keeps each partition's in
 * its checkpoint (`snapshot`, `restore`); one that does not (the dpi), restarted after the agent's
 * last frame of a partition, keeps that partition's whole recovery — frames inspected twice
 * rather than never.
 */
export class RecoveryFilter {
  /**
   * Per partition: `vm \0 sensor` → the newest frame time of that sensor's own batches, and the
   * range of the recoveries that named it (µs); insertion order: least recently seen first.
   */
  private readonly known = new Map<number, Map<string, { newest: number; recLo: number; recHi: number }>>();
  /** Recovery frames dropped as delivered by the agent already. */
  dropped = 0;
  /** Recovery frames kept (the agent never delivered them). */
  recovered = 0;
  /** An agent's frames that came after a recovery of them (an agent cut off, its sends retried): dropped. */
  late = 0;

  constructor(
    private readonly opts: {
      toleranceUs?: number;
      maxKeysPerPartition?: number;
      /** Told each count as it grows (a stage's metrics), beside the totals above. */
      count?: (what: 'recovery_dropped' | 'recovery_late' | 'recovery_packets', n: number) => void;
    } = {},
  ) {}

  private entry(partition: number, key: string): { newest: number; recLo: number; recHi: number } {
    let m = this.known.get(partition);
    if (!m) this.known.set(partition, (m = new Map()));
    let e = m.get(key);
    if (e) m.delete(key);
    else e = { newest: -Infinity, recLo: Infinity, recHi: -Infinity };
    m.set(key, e);
    // a partition sees a bounded number of VMs and sensors; past the bound the least recently
    // seen goes (a recovery of it is then kept whole)
    if (m.size > (this.opts.maxKeysPerPartition ?? RECOVERY_MAX_KEYS_PER_PARTITION)) m.delete(m.keys().next().value!);
    return e;
  }

  /**
   * The packets of `b`, read from `partition`, to process: all, less a recovery's frames the agent
   * delivered — whichever of the two copies of a frame comes second is dropped.
   */
  packets(partition: number, b: PacketBatch): Packet[] {
    if (b.vm === null || b.packets.length === 0) return b.packets;
    const tol = this.opts.toleranceUs ?? RECOVERY_TOLERANCE_US;
    if (b.recovery_of === null) {
      const e = this.entry(partition, `${b.vm}\u0000${b.sensor}`);
      let kept = b.packets;
      // frames of this sensor a recovery already covered: a cut-off agent's sends, delivered late
      if (e.recLo <= e.recHi) {
        kept = b.packets.filter((p) => p.ts_us < e.recLo - tol || p.ts_us > e.recHi + tol);
        const n = b.packets.length - kept.length;
        this.late += n;
        if (n) this.opts.count?.('recovery_late', n);
      }
      for (const p of b.packets) if (p.ts_us > e.newest) e.newest = p.ts_us;
      return kept;
    }
    const e = this.entry(partition, `${b.vm}\u0000${b.recovery_of}`);
    for (const p of b.packets) {
      if (p.ts_us < e.recLo) e.recLo = p.ts_us;
      if (p.ts_us > e.recHi) e.recHi = p.ts_us;
    }
    const limit = e.newest + tol;
    const kept = b.packets.filter((p) => p.ts_us > limit);
    const n = b.packets.length - kept.length;
    this.dropped += n;
    this.recovered += kept.length;
    if (n) this.opts.count?.('recovery_dropped', n);
    if (kept.length) this.opts.count?.('recovery_packets', kept.length);
    return kept;
  }

  /** A partition taken away: what was known of it goes. */
  forget(partition: number): void {
    this.known.delete(partition);
  }

  /** What is known of `partition`, for a checkpoint of it (least recently seen first). */
  snapshot(partition: number): RecoveryPartitionState {
    const m = this.known.get(partition);
    if (!m) return [];
    const finite = (x: number) => (Number.isFinite(x) ? x : null);
    return [...m].map(([key, e]) => [key, finite(e.newest), finite(e.recLo), finite(e.recHi)]);
  }

  /**
   * Merge a checkpoint's `snapshot` of `partition` into what is known of it. Merging only moves
   * the newest frame times later and widens the recovery ranges, so records read again after a
   * restore (those before the checkpoint's offset) change nothing.
   */
  restore(partition: number, state: RecoveryPartitionState): void {
    for (const [key, newest, recLo, recHi] of state) {
      const e = this.entry(partition, key);
      if (newest !== null && newest > e.newest) e.newest = newest;
      if (recLo !== null && recLo < e.recLo) e.recLo = recLo;
      if (recHi !== null && recHi > e.recHi) e.recHi = recHi;
    }
  }
}

/**
 * A `RecoveryFilter`'s state of one partition, as JSON: `[vm \0 sensor, newest frame time,
 * lowest and highest recovered frame time]`, µs; null where nothing is known.
 */
export type RecoveryPartitionState = Array<[string, number | null, number | null, number | null]>;
