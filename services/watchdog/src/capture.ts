import { childContext } from '@cordon/runtime';
import { partitionForKey, type ProduceRecord } from '@cordon/bus';
import type { Stage } from '@cordon/stage';
import { codecFor, TOPICS, type Packet, type PacketBatch } from '@cordon/schemas';
import { decodeFrame, partitionKey } from '@cordon/pcap';
import { LiveCapture } from '@cordon/native';
import { AssignmentView, InventoryView } from '@cordon/policy';

/**
 * The watchdog's eyes: a live capture on the host's bridge (AF_PACKET, native, promiscuous: every
 * frame the bridge forwards, in the order it forwards them), each frame attributed to a VM by MAC
 * from the inventory, published to `packets` keyed like a replay (address pair → partition) so
 * the dpi instance owning the partition holds the flow.
 * Frames of VMs whose assignment says `agent` are not published: their agent inspects them.
 * Capture drops (kernel and buffer) are counted and reported.
 */
export interface CaptureOptions {
  /** The watchdog stage it publishes for (its follows and sends are the stage's). */
  stage: Stage<unknown>;
  host: string;
  /** The bridge (or a mirror port) to capture on. */
  bridge: string;
  /** Capture inside this network namespace (the lab's host). */
  netns?: string;
  /** Drain at least this often (frames also wake the drain as they arrive). */
  pollMs?: number;
  /** Frames per PacketBatch at most. */
  batchFrames?: number;
}

export interface CaptureHandle {
  readonly iface: string;
  stats(): { captured: number; published: number; skippedAgent: number; droppedKernel: number; droppedRing: number };
  stop(): Promise<void>;
}

const macOf = (b: Buffer, at: number) =>
  Array.from(b.subarray(at, at + 6), (x) => x.toString(16).padStart(2, '0')).join(':');

export async function startCapture(opts: CaptureOptions): Promise<CaptureHandle> {
  const { stage } = opts;
  const ctx = childContext(stage.ctx, 'capture');
  const { bus } = stage;
  const sensor = `watchdog:${opts.host}`;
  const codec = codecFor(TOPICS.packets);
  const inventory = new InventoryView();
  /** MAC (as a 48-bit number) → VM id, filled as frames come; emptied when the inventory changes. */
  const vmOfMac = new Map<number, string | null>();
  /** Address pair → partition key and partition: one SHA-256 per flow, not per frame. */
  const partitionOf = new Map<string, { key: Buffer; partition: number }>();
  const assignments = new AssignmentView();
  await stage.follow(TOPICS.inventory, (r) => {
    inventory.apply(r.key, r.value);
    vmOfMac.clear();
  });
  await stage.follow(TOPICS.assignments, (r) => assignments.apply(r.key, r.value));
  const info = (await bus.admin.listTopics()).find((t) => t.name === TOPICS.packets);
  const partitions = info?.partitions ?? 1;
  let timer: NodeJS.Timeout | undefined;
  let scheduled = false;
  let stopped = false;
  // drained as soon as frames arrive (the addon calls back once per burst), and at least every
  // pollMs whatever happens
  const soon = () => {
    if (scheduled || stopped) return;
    scheduled = true;
    setImmediate(tick);
  };
  const capture = LiveCapture.open(opts.bridge, { ...(opts.netns ? { netns: opts.netns } : {}), onData: soon });
  ctx.log.info({ bridge: opts.bridge }, 'Capturing on the bridge.');
  const counts = { captured: 0, published: 0, skippedAgent: 0 };
  let seq = 0;
  const inflight = new Set<Promise<unknown>>();

  const vmByMac = (frame: Buffer, at: number): string | null => {
    const n = frame.readUIntBE(at, 6);
    let vm = vmOfMac.get(n);
    if (vm === undefined) vmOfMac.set(n, (vm = inventory.vmByMac(macOf(frame, at))?.id ?? null));
    return vm;
  };
  /** The VM a frame belongs to: the destination VM when it is local (the one attacked), else the source. */
  const attribute = (frame: Buffer): string | null => (frame.length < 12 ? null : (vmByMac(frame, 0) ?? vmByMac(frame, 6)));
  const sensorKey = Buffer.from(sensor);
  const route = (frame: Buffer): { key: Buffer; partition: number } => {
    const d = decodeFrame(1, frame);
    if (d.kind !== 'ip') return { key: sensorKey, partition: partitionForKey(sensorKey, partitions, () => 0) };
    const id = `${d.proto}|${d.vlan}|${d.src.toString('latin1')}|${d.dst.toString('latin1')}`;
    let r = partitionOf.get(id);
    if (!r) {
      if (partitionOf.size >= 65_536) partitionOf.clear();
      const key = partitionKey(d);
      partitionOf.set(id, (r = { key, partition: partitionForKey(key, partitions, () => 0) }));
    }
    return r;
  };

  function tick(): void {
    scheduled = false;
    clearTimeout(timer);
    if (stopped) return;
    // Batches in creation order; per partition, a frame joins the partition's last batch when
    // it is for the same VM, else starts the next one — so each partition's records stay in
    // time order however the frames alternate between VMs.
    const batches: Array<{ key: Buffer; partition: number; vm: string | null; packets: Packet[] }> = [];
    const lastOf = new Map<number, (typeof batches)[number]>();
    const b = capture.drain(0);
    for (let i = 0; i < b.tsUs.length; i++) {
      const frame = b.data.subarray(b.offsets[i]!, b.offsets[i + 1]!);
      counts.captured++;
      const vm = attribute(frame);
      if (vm && assignments.byVm.get(vm)?.mode === 'agent') {
        counts.skippedAgent++;
        continue;
      }
      const { key, partition } = route(frame);
      let g = lastOf.get(partition);
      if (!g || g.vm !== vm || g.packets.length >= (opts.batchFrames ?? 512)) {
        batches.push((g = { key, partition, vm, packets: [] }));
        lastOf.set(partition, g);
      }
      // no copy: the frame is encoded below, before this tick ends
      g.packets.push({ ts_us: b.tsUs[i]!, seq: seq++, orig_len: b.origLen[i]!, frame });
    }
    const records: ProduceRecord[] = [];
    for (const g of batches) {
      const batch: PacketBatch = { batch_id: `${sensor}:${g.packets[0]!.seq}`, sensor, vm: g.vm, linktype: 1, end_of_source: false, packets: g.packets };
      records.push({ key: g.key, value: codec.encode(batch), partition: g.partition });
      counts.published += g.packets.length;
    }
    if (records.length) {
      const p = stage.send(TOPICS.packets, records).catch((err: unknown) => {
        ctx.metrics.inc('errors');
        ctx.log.error({ err }, 'Captured frames could not be published.');
      });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    const s = stats();
    ctx.metrics.set('captured', s.captured);
    ctx.metrics.set('dropped', s.droppedKernel + s.droppedRing);
    timer = setTimeout(soon, opts.pollMs ?? 50);
  }
  const stats = () => {
    const { droppedKernel, droppedRing } = capture.stats();
    return { ...counts, droppedKernel, droppedRing };
  };
  soon();
  return {
    iface: opts.bridge,
    stats,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      capture.close();
      await Promise.all(inflight);
    },
  };
}
