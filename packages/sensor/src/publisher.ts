import { partitionForKey, type ProduceRecord } from '@cordon/bus';
import { decodeFrame, partitionKey } from '@cordon/pcap';
import { codecFor, TOPICS, type Packet, type PacketBatch } from '@cordon/schemas';
import type { SensorFrame } from './windows.js';

/**
 * Frames → PacketBatch records on `packets`, keyed like a replay (the address pair, so both
 * directions of a flow reach the dpi instance that owns its partition). Per partition, a frame
 * joins the partition's last batch when it is of the same VM, else starts the next one — each
 * partition's records stay in time order however the frames alternate between VMs. Recovery frames
 * (`SensorFrame.recoveryOf`) go in batches of their own, marked `recovery_of`.
 */
export class FramePublisher {
  private readonly codec = codecFor(TOPICS.packets);
  private readonly sensorKey: Buffer;
  /** Address pair → partition key and partition: one hash per flow, not per frame. */
  private readonly partitionOf = new Map<string, { key: Buffer; partition: number }>();
  private batches: Array<{
    key: Buffer;
    partition: number;
    vm: string | null;
    recoveryOf: string | null;
    packets: Packet[];
  }> = [];
  private lastOf = new Map<number, (typeof this.batches)[number]>();
  private seq = 0;
  published = 0;
  /** Timestamp of the newest frame published, µs. */
  newestUs = 0;

  constructor(
    private readonly opts: {
      sensor: string;
      partitions: number;
      batchFrames?: number;
      send(records: ProduceRecord[]): Promise<void>;
    },
  ) {
    this.sensorKey = Buffer.from(opts.sensor);
  }

  private route(frame: Buffer): { key: Buffer; partition: number } {
    const d = decodeFrame(1, frame);
    if (d.kind !== 'ip')
      return { key: this.sensorKey, partition: partitionForKey(this.sensorKey, this.opts.partitions, () => 0) };
    const id = `${d.proto}|${d.vlan}|${d.src.toString('latin1')}|${d.dst.toString('latin1')}`;
    let r = this.partitionOf.get(id);
    if (!r) {
      if (this.partitionOf.size >= 65_536) this.partitionOf.clear();
      const key = partitionKey(d);
      this.partitionOf.set(id, (r = { key, partition: partitionForKey(key, this.opts.partitions, () => 0) }));
    }
    return r;
  }

  /** Queue a frame (no copy: it is encoded at the next flush, which must come before the frame's buffer is reused). */
  add(vm: string | null, f: SensorFrame): void {
    const { key, partition } = this.route(f.frame);
    const recoveryOf = f.recoveryOf ?? null;
    let g = this.lastOf.get(partition);
    if (!g || g.vm !== vm || g.recoveryOf !== recoveryOf || g.packets.length >= (this.opts.batchFrames ?? 512)) {
      this.batches.push((g = { key, partition, vm, recoveryOf, packets: [] }));
      this.lastOf.set(partition, g);
    }
    g.packets.push({ ts_us: f.tsUs, seq: this.seq++, orig_len: f.origLen, frame: f.frame });
    if (f.tsUs > this.newestUs) this.newestUs = f.tsUs;
  }

  /** Encode and send what was queued; resolves when it is acknowledged. */
  flush(): Promise<void> | null {
    if (this.batches.length === 0) return null;
    const records: ProduceRecord[] = [];
    for (const g of this.batches) {
      const batch: PacketBatch = {
        batch_id: `${this.opts.sensor}:${g.packets[0]!.seq}`,
        sensor: this.opts.sensor,
        vm: g.vm,
        linktype: 1,
        end_of_source: false,
        recovery_of: g.recoveryOf,
        packets: g.packets,
      };
      records.push({ key: g.key, value: this.codec.encode(batch), partition: g.partition });
      this.published += g.packets.length;
    }
    this.batches = [];
    this.lastOf = new Map();
    return this.opts.send(records);
  }
}
