/**
 * The classic consumer-group wire formats (ConsumerProtocolSubscription / Assignment, as the
 * Java client writes them) and Kafka's range assignor. Pure functions: the group member in
 * consumer.ts does the I/O. Standard encodings mean Java, librdkafka and Cordon consumers can
 * share one group.
 */
import type { TopicPartition } from '../types.js';

export const PROTOCOL_TYPE = 'consumer';
export const RANGE = 'range';

function writeString(parts: Buffer[], s: string): void {
  const b = Buffer.from(s, 'utf8');
  const len = Buffer.alloc(2);
  len.writeInt16BE(b.length);
  parts.push(len, b);
}

function int16(n: number): Buffer {
  const b = Buffer.alloc(2);
  b.writeInt16BE(n);
  return b;
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

class Cursor {
  private pos = 0;
  constructor(private readonly buf: Buffer) {}
  int16(): number {
    const v = this.buf.readInt16BE(this.pos);
    this.pos += 2;
    return v;
  }
  int32(): number {
    const v = this.buf.readInt32BE(this.pos);
    this.pos += 4;
    return v;
  }
  string(): string {
    const len = this.int16();
    const s = this.buf.toString('utf8', this.pos, this.pos + len);
    this.pos += len;
    return s;
  }
}

/** Subscription v0: version, topics, user data (null). */
export function encodeSubscription(topics: string[]): Buffer {
  const parts: Buffer[] = [int16(0), int32(topics.length)];
  for (const t of topics) writeString(parts, t);
  parts.push(int32(-1));
  return Buffer.concat(parts);
}

/** Topics of any subscription version (later versions only append fields). */
export function decodeSubscription(buf: Buffer | null): string[] {
  if (!buf || buf.length < 6) return [];
  const c = new Cursor(buf);
  c.int16();
  const n = c.int32();
  const topics: string[] = [];
  for (let i = 0; i < n; i++) topics.push(c.string());
  return topics;
}

/** Assignment v0: version, [topic, [partition]], user data (null). */
export function encodeAssignment(assigned: TopicPartition[]): Buffer {
  const byTopic = new Map<string, number[]>();
  for (const tp of assigned) byTopic.set(tp.topic, [...(byTopic.get(tp.topic) ?? []), tp.partition]);
  const parts: Buffer[] = [int16(0), int32(byTopic.size)];
  for (const [topic, partitions] of byTopic) {
    writeString(parts, topic);
    parts.push(int32(partitions.length), ...partitions.map(int32));
  }
  parts.push(int32(-1));
  return Buffer.concat(parts);
}

export function decodeAssignment(buf: Buffer | null): TopicPartition[] {
  // An empty assignment is sent as zero bytes.
  if (!buf || buf.length < 6) return [];
  const c = new Cursor(buf);
  c.int16();
  const n = c.int32();
  const out: TopicPartition[] = [];
  for (let i = 0; i < n; i++) {
    const topic = c.string();
    const count = c.int32();
    for (let j = 0; j < count; j++) out.push({ topic, partition: c.int32() });
  }
  return out;
}

/**
 * Kafka's RangeAssignor: per topic, members (sorted by id) get consecutive partition ranges,
 * the first `partitions % members` one extra. Deterministic, so every leader computes the same.
 */
export function rangeAssign(
  subscriptions: Map<string, string[]>,
  partitionCounts: Map<string, number>,
): Map<string, TopicPartition[]> {
  const result = new Map<string, TopicPartition[]>([...subscriptions.keys()].map((m) => [m, []]));
  const topics = new Set([...subscriptions.values()].flat());
  for (const topic of [...topics].sort()) {
    const count = partitionCounts.get(topic) ?? 0;
    const members = [...subscriptions]
      .filter(([, ts]) => ts.includes(topic))
      .map(([m]) => m)
      .sort();
    if (members.length === 0 || count === 0) continue;
    const per = Math.floor(count / members.length);
    const extra = count % members.length;
    members.forEach((member, i) => {
      const start = i * per + Math.min(i, extra);
      const len = per + (i < extra ? 1 : 0);
      for (let p = start; p < start + len; p++) result.get(member)!.push({ topic, partition: p });
    });
  }
  return result;
}
