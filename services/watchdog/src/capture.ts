import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { childContext, type Context } from '@cordon/runtime';
import { followTable, partitionForKey, type Bus, type ProduceRecord, type TableFollower } from '@cordon/bus';
import { codecFor, TOPICS, type Packet, type PacketBatch } from '@cordon/schemas';
import { decodeFrame, partitionKey } from '@cordon/pcap';
import { LiveCapture } from '@cordon/native';
import { AssignmentView, InventoryView } from '@cordon/policy';

/**
 * The watchdog's eyes: a live capture on every port of the host's bridge (AF_PACKET, native),
 * each frame attributed to a VM by MAC from the inventory, published to `packets` keyed like a
 * replay (address pair → partition) so the dpi instance owning the partition holds the flow.
 * Frames of VMs whose assignment says `agent` are not published: their agent inspects them.
 * Capture drops (kernel and buffer) are counted and reported.
 */
export interface CaptureOptions {
  bus: Bus;
  ctx: Context;
  host: string;
  bridge: string;
  /** Capture inside this network namespace (the lab's host). */
  netns?: string;
  /** How often the buffers are drained. */
  pollMs?: number;
  /** Frames per PacketBatch at most. */
  batchFrames?: number;
}

export interface CaptureHandle {
  readonly ports: string[];
  stats(): { captured: number; published: number; skippedAgent: number; droppedKernel: number; droppedRing: number };
  stop(): Promise<void>;
}

const run = promisify(execFile);

/** The bridge's member interfaces, as `ip link` lists them. */
export async function bridgePorts(bridge: string, netns?: string): Promise<string[]> {
  const args = [...(netns ? ['-n', netns] : []), '-j', 'link', 'show', 'master', bridge];
  const { stdout } = await run('ip', args);
  return (JSON.parse(stdout || '[]') as Array<{ ifname: string }>).map((l) => l.ifname).sort();
}

const macOf = (b: Buffer, at: number) =>
  Array.from(b.subarray(at, at + 6), (x) => x.toString(16).padStart(2, '0')).join(':');

export async function startCapture(opts: CaptureOptions): Promise<CaptureHandle> {
  const ctx = childContext(opts.ctx, 'capture');
  const { bus } = opts;
  const sensor = `watchdog:${opts.host}`;
  const codec = codecFor(TOPICS.packets);
  const producer = bus.producer();
  const inventory = new InventoryView();
  const assignments = new AssignmentView();
  const followers: TableFollower[] = [
    await followTable(bus, TOPICS.inventory, `cordon-capture-${opts.host}-inventory-${process.pid}`, (r) => inventory.apply(r.key, r.value)),
    await followTable(bus, TOPICS.assignments, `cordon-capture-${opts.host}-assignments-${process.pid}`, (r) => assignments.apply(r.key, r.value)),
  ];
  const info = (await bus.admin.listTopics()).find((t) => t.name === TOPICS.packets);
  const partitions = info?.partitions ?? 1;
  const ports = await bridgePorts(opts.bridge, opts.netns);
  const captures = ports.map((p) => LiveCapture.open(p, opts.netns ? { netns: opts.netns } : {}));
  ctx.log.info({ bridge: opts.bridge, ports }, 'Capturing on the bridge ports.');
  const counts = { captured: 0, published: 0, skippedAgent: 0 };
  let seq = 0;
  let stopped = false;
  const inflight = new Set<Promise<unknown>>();

  /** The VM a frame belongs to: the destination VM when it is local (the one attacked), else the source. */
  const attribute = (frame: Buffer): string | null => {
    if (frame.length < 12) return null;
    const dst = inventory.vmByMac(macOf(frame, 0));
    const src = inventory.vmByMac(macOf(frame, 6));
    return (dst ?? src)?.id ?? null;
  };

  const tick = () => {
    if (stopped) return;
    // Batches in creation order; per partition, a frame joins the partition's last batch when
    // it is for the same VM, else starts the next one — so each partition's records stay in
    // time order however the frames alternate between VMs.
    const batches: Array<{ key: Buffer; partition: number; vm: string | null; packets: Packet[] }> = [];
    const lastOf = new Map<number, (typeof batches)[number]>();
    // Frames of one flow enter at different ports (request at the client's, reply at the
    // server's) and are read by different threads: merge them back into time order first,
    // or the flow's stream would see a reply before its request.
    const frames: Array<{ ts: number; frame: Buffer; orig: number }> = [];
    for (const c of captures) {
      const b = c.drain(0);
      for (let i = 0; i < b.tsUs.length; i++) frames.push({ ts: b.tsUs[i]!, frame: b.data.subarray(b.offsets[i]!, b.offsets[i + 1]!), orig: b.origLen[i]! });
    }
    frames.sort((x, y) => x.ts - y.ts);
    for (const { ts, frame, orig } of frames) {
      counts.captured++;
      const vm = attribute(frame);
      if (vm && assignments.byVm.get(vm)?.mode === 'agent') {
        counts.skippedAgent++;
        continue;
      }
      const d = decodeFrame(1, frame);
      const key = d.kind === 'ip' ? partitionKey(d) : Buffer.from(sensor);
      const partition = partitionForKey(key, partitions, () => 0);
      let g = lastOf.get(partition);
      if (!g || g.vm !== vm || g.packets.length >= (opts.batchFrames ?? 512)) {
        batches.push((g = { key, partition, vm, packets: [] }));
        lastOf.set(partition, g);
      }
      g.packets.push({ ts_us: ts, seq: seq++, orig_len: orig, frame: Buffer.from(frame) });
    }
    const records: ProduceRecord[] = [];
    for (const g of batches) {
      const batch: PacketBatch = { batch_id: `${sensor}:${g.packets[0]!.seq}`, sensor, vm: g.vm, linktype: 1, end_of_source: false, packets: g.packets };
      records.push({ key: g.key, value: codec.encode(batch), partition: g.partition });
      counts.published += g.packets.length;
    }
    if (records.length) {
      const p = producer.send(TOPICS.packets, records).catch((err: unknown) => {
        ctx.metrics.inc('errors');
        ctx.log.error({ err }, 'Captured frames could not be published.');
      });
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
    }
    const s = stats();
    ctx.metrics.set('captured', s.captured);
    ctx.metrics.set('dropped', s.droppedKernel + s.droppedRing);
    timer = setTimeout(tick, opts.pollMs ?? 2);
  };
  const stats = () => {
    let droppedKernel = 0;
    let droppedRing = 0;
    for (const c of captures) {
      const s = c.stats();
      droppedKernel += s.droppedKernel;
      droppedRing += s.droppedRing;
    }
    return { ...counts, droppedKernel, droppedRing };
  };
  let timer: NodeJS.Timeout = setTimeout(tick, 0);
  return {
    ports,
    stats,
    stop: async () => {
      stopped = true;
      clearTimeout(timer);
      for (const c of captures) c.close();
      await Promise.all(inflight);
      for (const f of followers) await f.close();
      await producer.close();
    },
  };
}
