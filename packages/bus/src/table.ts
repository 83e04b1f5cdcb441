import type { Bus, ConsumedRecord } from './types.js';

/**
 * Read a compacted topic from its start to its current end and return the newest record per
 * key (tombstones remove the key). Used to restore state: blocks, assignments, checkpoints.
 * Reads without a consumer group, so it never disturbs anyone's offsets.
 */
export async function readTable(bus: Bus, topic: string, opts: { partitions?: number[] } = {}): Promise<Map<string, ConsumedRecord>> {
  const ends = await bus.admin.endOffsets(topic);
  const wanted = new Map([...ends].filter(([p, end]) => end > 0n && (!opts.partitions || opts.partitions.includes(p))));
  const table = new Map<string, ConsumedRecord>();
  if (wanted.size === 0) return table;
  const groupId = `cordon-table-reader-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const consumer = bus.consumer({ groupId, topics: [topic], fromBeginning: true, autoCommit: false });
  const remaining = new Set(wanted.keys());
  await new Promise<void>((resolve, reject) => {
    consumer
      .run(async (batch) => {
        const end = wanted.get(batch.partition);
        if (end === undefined) return;
        for (const r of batch.records) {
          if (r.offset >= end) break;
          const k = r.key ? r.key.toString('base64') : '';
          if (r.value === null) table.delete(k);
          else table.set(k, r);
        }
        if (batch.records[batch.records.length - 1]!.offset + 1n >= end) {
          remaining.delete(batch.partition);
          if (remaining.size === 0) resolve();
        }
      })
      .catch(reject);
  });
  await consumer.close();
  return table;
}
