import { statSync } from 'node:fs';
import { basename } from 'node:path';
import { childContext, describeError, type Context } from '@cordon/runtime';
import { partitionForKey, type Bus, type ProduceRecord } from '@cordon/bus';
import { codecFor, TOPICS, type Packet, type PacketBatch } from '@cordon/schemas';
import { decodeFrame, partitionKey, readCapture } from '@cordon/pcap';
import { ERR_REPLAY } from './errors.js';

export interface ReplayOptions {
  bus: Bus;
  ctx: Context;
  file: string;
  /** Sensor name on every batch; default `replay:<file name>`. */
  sensor?: string;
  vm?: string | null;
  /** Packets per batch (per partition). */
  batchPackets?: number;
  /** Batches in flight at once. */
  inflight?: number;
  /**
   * Called as the capture is read: `bytes` of the file's `total` (estimated from the frames
   * read: record headers are counted at their pcap size), packets so far.
   */
  onProgress?: (p: { bytes: number; total: number; packets: number }) => void;
}

export interface ReplayReport {
  sensor: string;
  packets: number;
  batches: number;
  bytes: number;
  undecodable: number;
  /** Set when the capture is malformed: everything before the fault was published. */
  error?: { code: string; message: string };
}

const packetCodec = () => codecFor(TOPICS.packets);

/**
 * Publish a capture's frames to `packets`, batched per partition and keyed so both directions
 * of a flow (and its IP fragments) land on one partition. At the end every partition gets an
 * end-of-source marker so stages flush what they hold for this sensor. A malformed capture
 * stops the replay with a clear error and a DLQ record; what was read before is kept.
 */
export async function replayCapture(opts: ReplayOptions): Promise<ReplayReport> {
  const ctx = childContext(opts.ctx, 'replay');
  const sensor = opts.sensor ?? `replay:${basename(opts.file)}`;
  const batchPackets = opts.batchPackets ?? 256;
  const codec = packetCodec();
  const topics = await opts.bus.admin.listTopics();
  const info = topics.find((t) => t.name === TOPICS.packets);
  if (!info) throw ERR_REPLAY(opts.file, `topic ${TOPICS.packets} does not exist; run "cordon topics apply"`);
  const partitions = info.partitions;
  const producer = opts.bus.producer();
  const report: ReplayReport = { sensor, packets: 0, batches: 0, bytes: 0, undecodable: 0 };
  const sensorKey = Buffer.from(sensor);

  interface Pending {
    key: Buffer;
    linktype: number;
    packets: Packet[];
  }
  const pending = new Map<number, Pending>();
  const inflight = new Set<Promise<unknown>>();
  const maxInflight = opts.inflight ?? 8;

  const send = async (records: ProduceRecord[]) => {
    const p = producer.send(TOPICS.packets, records);
    inflight.add(p);
    p.finally(() => inflight.delete(p)).catch(() => undefined);
    if (inflight.size >= maxInflight) await Promise.race(inflight);
  };
  const flush = async (partition: number) => {
    const b = pending.get(partition);
    if (!b || b.packets.length === 0) return;
    pending.delete(partition);
    const batch: PacketBatch = {
      batch_id: `${sensor}:${b.packets[0]!.seq}`,
      sensor,
      vm: opts.vm ?? null,
      linktype: b.linktype,
      end_of_source: false,
      recovery_of: null,
      packets: b.packets,
    };
    report.batches++;
    await send([{ key: b.key, value: codec.encode(batch), partition }]);
  };

  let failure: unknown;
  let total = 0;
  try {
    total = statSync(opts.file).size;
  } catch {
    // readCapture names the file in its own error
  }
  let read = 24;
  try {
    for await (const f of readCapture(opts.file)) {
      read += 16 + f.frame.length;
      if (opts.onProgress && (f.seq & 255) === 0)
        opts.onProgress({ bytes: Math.min(read, total), total, packets: report.packets });
      const d = decodeFrame(f.linktype, f.frame);
      // frames that are not IP still travel (keyed by sensor): the stages count them or DLQ them
      const key = d.kind === 'ip' ? partitionKey(d) : sensorKey;
      if (d.kind !== 'ip') report.undecodable++;
      const partition = partitionForKey(key, partitions, () => 0);
      let b = pending.get(partition);
      if (b && b.linktype !== f.linktype) {
        await flush(partition);
        b = undefined;
      }
      if (!b) pending.set(partition, (b = { key, linktype: f.linktype, packets: [] }));
      b.packets.push({ ts_us: f.ts_us, seq: f.seq, orig_len: f.orig_len, frame: f.frame });
      report.packets++;
      report.bytes += f.orig_len;
      if (b.packets.length >= batchPackets) await flush(partition);
    }
  } catch (err) {
    failure = err;
  }
  for (const p of [...pending.keys()]) await flush(p);
  // end-of-source markers: one per partition, so every stage instance hears it
  const eos: ProduceRecord[] = [];
  for (let p = 0; p < partitions; p++) {
    const batch: PacketBatch = {
      batch_id: `${sensor}:eos`,
      sensor,
      vm: opts.vm ?? null,
      linktype: 1,
      end_of_source: true,
      recovery_of: null,
      packets: [],
    };
    eos.push({ key: sensorKey, value: codec.encode(batch), partition: p });
  }
  await send(eos);
  await Promise.all(inflight);
  opts.onProgress?.({ bytes: failure === undefined ? total : Math.min(read, total), total, packets: report.packets });
  if (failure !== undefined) {
    const { code, message } = describeError(failure);
    report.error = { code, message };
    ctx.metrics.inc('errors');
    await producer.send(TOPICS.dlq, [
      {
        key: Buffer.from(TOPICS.packets),
        value: codecFor(TOPICS.dlq).encode({
          ts_us: ctx.clock.now() * 1000,
          stage: 'replay',
          source_topic: null,
          source_partition: null,
          source_offset: null,
          error_code: code,
          error: `${opts.file}: ${message}`,
          key: null,
          value: null,
        }),
      },
    ]);
  }
  await producer.close();
  ctx.metrics.inc('sent', report.packets);
  return report;
}
