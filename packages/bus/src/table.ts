import { ERR_UNKNOWN_TOPIC } from './errors.js';
import { partitionForKey } from './partitioner.js';
import type { Bus, ConsumedRecord, Consumer } from './types.js';

/**
 * A consumer that never commits and starts each partition it is given at `startAt(partition)`
 * (its beginning when that is undefined): the reader under readRange and followTable.
 */
function positionedReader(
  bus: Bus,
  topic: string,
  groupId: string,
  startAt: (partition: number) => bigint | undefined,
): Consumer {
  const consumer = bus.consumer({
    groupId,
    topics: [topic],
    fromBeginning: true,
    autoCommit: false,
    onAssign: (tps) => {
      for (const tp of tps) {
        const at = startAt(tp.partition);
        if (at !== undefined && at > 0n) consumer.seek({ topic, partition: tp.partition, offset: at });
      }
    },
  });
  return consumer;
}

/**
 * Read a topic from given offsets (default: each partition's start) up to the end offsets
 * seen when the call starts, handing every record to `onRecord`. Reads without committing,
 * under a throwaway group, so it never disturbs anyone's offsets.
 */
export async function readRange(
  bus: Bus,
  topic: string,
  onRecord: (r: ConsumedRecord) => void,
  opts: { partitions?: number[]; from?: Map<number, bigint> } = {},
): Promise<void> {
  const ends = await bus.admin.endOffsets(topic);
  const wanted = new Map(
    [...ends].filter(
      ([p, end]) => end > (opts.from?.get(p) ?? 0n) && (!opts.partitions || opts.partitions.includes(p)),
    ),
  );
  if (wanted.size === 0) return;
  const groupId = `cordon-reader-${process.pid}-${Date.now()}-${Math.random().toString(36).slice(2)}`;
  const remaining = new Set(wanted.keys());
  const consumer = positionedReader(bus, topic, groupId, (p) => opts.from?.get(p));
  await new Promise<void>((resolve, reject) => {
    consumer
      .run(async (batch) => {
        const end = wanted.get(batch.partition);
        if (end === undefined || !remaining.has(batch.partition)) return;
        for (const r of batch.records) {
          if (r.offset >= end) break;
          if (r.offset >= (opts.from?.get(batch.partition) ?? 0n)) onRecord(r);
        }
        if (batch.records[batch.records.length - 1]!.offset + 1n >= end) {
          remaining.delete(batch.partition);
          if (remaining.size === 0) resolve();
        }
      })
      .catch(reject);
  });
  await consumer.close();
}

/** Every record of a topic, from its start to the end offsets seen when the call starts. */
export async function readAll(bus: Bus, topic: string): Promise<ConsumedRecord[]> {
  const out: ConsumedRecord[] = [];
  await readRange(bus, topic, (r) => out.push(r));
  return out;
}

/**
 * Read a compacted topic from its start to its current end and return the newest record per
 * key (tombstones remove the key). Used to restore state: blocks, assignments, checkpoints.
 */
export async function readTable(
  bus: Bus,
  topic: string,
  opts: { partitions?: number[] } = {},
): Promise<Map<string, ConsumedRecord>> {
  const table = new Map<string, ConsumedRecord>();
  await readRange(
    bus,
    topic,
    (r) => {
      const k = r.key ? r.key.toString('base64') : '';
      if (r.value === null) table.delete(k);
      else table.set(k, r);
    },
    opts,
  );
  return table;
}

/**
 * A compacted topic as a live table: every current record at start (readTable), then every
 * record written after — with no gap between the two. The end offsets are taken before the
 * table is read and the follower seeks to them, so a record written meanwhile is seen once
 * or twice (appliers are idempotent), never zero times.
 */
export interface TableFollower {
  /** Stop following (the records already handed over stay applied). */
  close(): Promise<void>;
  /** Settles when following stops; rejects if the consumer failed. */
  readonly done: Promise<void>;
}

export async function followTable(
  bus: Bus,
  topic: string,
  groupId: string,
  onRecord: (r: ConsumedRecord, restoring: boolean) => Promise<void> | void,
  opts: {
    /** Runs after the current table was handed over, before any followed record. */ afterRestore?: () => Promise<void>;
  } = {},
): Promise<TableFollower> {
  const ends = await bus.admin.endOffsets(topic);
  const table = await readTable(bus, topic);
  // in offset order per partition, so a later record for a key never precedes an earlier one
  const initial = [...table.values()].sort((a, b) => a.partition - b.partition || (a.offset < b.offset ? -1 : 1));
  for (const r of initial) await onRecord(r, true);
  await opts.afterRestore?.();
  const consumer = positionedReader(bus, topic, groupId, (p) => ends.get(p) ?? 0n);
  const done = consumer.run(async (batch) => {
    for (const r of batch.records) await onRecord(r, false);
  });
  return { done, close: () => consumer.close() };
}

/**
 * The newest record of each of `keys` in a compacted topic (missing or tombstoned keys are
 * absent), reading only the partitions those keys hash to: how a stage finds its checkpoints
 * without reading everyone else's. Throws CORDON_ERR_BUS_UNKNOWN_TOPIC when there is no topic.
 */
export async function readKeys(bus: Bus, topic: string, keys: string[]): Promise<Map<string, ConsumedRecord>> {
  const found = new Map<string, ConsumedRecord>();
  if (keys.length === 0) return found;
  const info = (await bus.admin.listTopics()).find((t) => t.name === topic);
  if (!info) throw ERR_UNKNOWN_TOPIC(topic);
  const partitions = [...new Set(keys.map((k) => partitionForKey(Buffer.from(k), info.partitions, () => 0)))];
  const table = await readTable(bus, topic, { partitions });
  for (const k of keys) {
    const r = table.get(Buffer.from(k).toString('base64'));
    if (r) found.set(k, r);
  }
  return found;
}
