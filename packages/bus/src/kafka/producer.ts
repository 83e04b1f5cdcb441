import { ProduceAcks, Producer as PlatformaticProducer, type MessageToProduce } from '@platformatic/kafka';
import type { Metrics } from '@cordon/runtime';
import type { ProduceRecord, Producer, RecordMetadata } from '../types.js';
import { ERR_BAD_PARTITION, ERR_CLOSED } from '../errors.js';
import { partitionForKey } from '../partitioner.js';
import type { KafkaBus } from './bus.js';
import { hasKafkaError, toBusError } from './errors.js';

/**
 * Payload bytes per produce request at most. The broker refuses a record batch (one per
 * partition per request) above its `message.max.bytes`, 1 MiB by default: larger sends leave
 * as several requests, in order, and merged sends stop at this budget.
 */
const REQUEST_BYTES = 768 * 1024;

const sizeOf = (m: MessageToProduce): number => {
  let n = 64 + (m.key?.length ?? 0) + (m.value?.length ?? 0);
  if (m.headers) for (const [k, v] of m.headers as unknown as Map<Buffer, Buffer>) n += k.length + v.length + 8;
  return n;
};

export class KafkaProducer implements Producer {
  private readonly client: PlatformaticProducer;
  private readonly metrics: Metrics;
  private roundRobin = 0;
  private readonly queue: {
    messages: MessageToProduce[];
    bytes: number;
    resolve: (offsets: { topic: string; partition: number; offset: bigint }[]) => void;
    reject: (err: unknown) => void;
  }[] = [];
  private inFlight: Promise<void> | null = null;
  private closed = false;

  constructor(private readonly bus: KafkaBus) {
    this.metrics = bus.ctx.metrics.child('producer');
    this.client = new PlatformaticProducer({
      clientId: `${bus.clientId}-producer`,
      bootstrapBrokers: bus.brokers,
      acks: ProduceAcks.ALL,
      // Retries after a lost response must not write a batch twice (seen on a fresh topic).
      idempotent: true,
      autocreateTopics: false,
      retries: 3,
      retryDelay: 250,
      ...bus.connection,
    });
  }

  async send(topic: string, records: ProduceRecord[]): Promise<RecordMetadata[]> {
    if (this.closed) throw ERR_CLOSED('this Kafka producer');
    if (records.length === 0) return [];
    const meta = await this.bus.topic(topic);
    const now = Date.now();
    // The partition is always chosen here, never by the client: its default partitioner is not
    // Kafka's (murmur2 >>> 0 instead of & 0x7fffffff), and the embedded bus must agree with us.
    const partitions = records.map((r) => {
      if (r.partition !== undefined) {
        if (!Number.isInteger(r.partition) || r.partition < 0 || r.partition >= meta.partitions) {
          throw ERR_BAD_PARTITION(topic, r.partition, meta.partitions);
        }
        return r.partition;
      }
      return partitionForKey(r.key, meta.partitions, () => this.roundRobin++);
    });
    const messages: MessageToProduce[] = records.map((r, i) => {
      const m: MessageToProduce = {
        topic,
        partition: partitions[i]!,
        // null stays null on the wire (a tombstone / a keyless record), not an empty buffer.
        key: (r.key ?? undefined) as Buffer | undefined,
        value: (r.value ?? undefined) as Buffer | undefined,
        timestamp: BigInt(r.timestamp ?? now),
      };
      if (r.headers)
        m.headers = new Map(Object.entries(r.headers).map(([k, v]) => [Buffer.from(k), v])) as unknown as Map<
          Buffer,
          Buffer
        >;
      return m;
    });
    const out: RecordMetadata[] = [];
    try {
      // Chunks of at most REQUEST_BYTES, queued together so no other send of this producer
      // lands between them; each gets its own base offsets (another process's producer may).
      const chunks: Array<{ messages: MessageToProduce[]; bytes: number }> = [];
      for (const m of messages) {
        const n = sizeOf(m);
        const last = chunks[chunks.length - 1];
        if (last && last.bytes + n <= REQUEST_BYTES) {
          last.messages.push(m);
          last.bytes += n;
        } else chunks.push({ messages: [m], bytes: n });
      }
      const results = await Promise.all(chunks.map((c) => this.enqueue(c.messages, c.bytes)));
      chunks.forEach((chunk, ci) => {
        const base = new Map<number, bigint>();
        for (const o of results[ci]!) if (o.topic === topic) base.set(o.partition, o.offset);
        const rank = new Map<number, bigint>();
        for (const m of chunk.messages) {
          const p = m.partition!;
          const k = rank.get(p) ?? 0n;
          rank.set(p, k + 1n);
          const b = base.get(p);
          if (b === undefined) throw new Error(`no offset returned for partition ${p}`);
          out.push({ topic, partition: p, offset: b + k });
        }
      });
    } catch (err) {
      this.metrics.inc('errors');
      if (hasKafkaError(err, 'UNKNOWN_TOPIC_OR_PARTITION') || hasKafkaError(err, 'NOT_LEADER_OR_FOLLOWER'))
        this.bus.forgetTopic(topic);
      throw toBusError(err, `producing ${records.length} records to ${topic}`, { ...this.bus.identity, topic });
    }
    this.metrics.inc('sent', records.length);
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.bus.untrack(this);
    while (this.inFlight) await this.inFlight.catch(() => undefined);
    await this.client.close();
  }

  /**
   * One produce request at a time, with every send that arrived meanwhile merged into the
   * next one. Why: the client's idempotent producer advances its sequence numbers only when a
   * response arrives, so two concurrent requests reuse a sequence and the broker refuses the
   * second (OUT_OF_ORDER_SEQUENCE_NUMBER). Merging keeps throughput: the waiting sends leave
   * as one bigger request (up to REQUEST_BYTES). Resolves with the base offset of each (topic, partition) of `messages`.
   */
  private enqueue(
    messages: MessageToProduce[],
    bytes: number,
  ): Promise<{ topic: string; partition: number; offset: bigint }[]> {
    return new Promise((resolve, reject) => {
      this.queue.push({ messages, bytes, resolve, reject });
      if (!this.inFlight) this.inFlight = this.drain();
    });
  }

  private async drain(): Promise<void> {
    while (this.queue.length > 0) {
      let n = 1;
      for (
        let bytes = this.queue[0]!.bytes;
        n < this.queue.length && bytes + this.queue[n]!.bytes <= REQUEST_BYTES;
        n++
      )
        bytes += this.queue[n]!.bytes;
      const sends = this.queue.splice(0, n);
      try {
        const result = await this.client.send({ messages: sends.flatMap((s) => s.messages) });
        const base = new Map<string, bigint>();
        for (const o of result.offsets ?? []) base.set(`${o.topic}\u0000${o.partition}`, o.offset);
        // Split the merged request back: each send's records follow the earlier sends' records
        // of the same partition, in order, in the one batch per partition the request carried.
        const seen = new Map<string, bigint>();
        for (const s of sends) {
          const mine = new Map<string, { topic: string; partition: number; offset: bigint }>();
          for (const m of s.messages) {
            const key = `${m.topic}\u0000${m.partition}`;
            const n = seen.get(key) ?? 0n;
            seen.set(key, n + 1n);
            const b = base.get(key);
            if (b !== undefined && !mine.has(key))
              mine.set(key, { topic: m.topic, partition: m.partition!, offset: b + n });
          }
          s.resolve([...mine.values()]);
        }
      } catch (err) {
        for (const s of sends) s.reject(err);
      }
    }
    this.inFlight = null;
  }
}
