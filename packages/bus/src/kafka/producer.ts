import {
  ConnectionPool,
  Writer,
  initProducerIdV5,
  produceV8,
  type Connection,
  type ResponseParser,
} from '@platformatic/kafka';
import type { Metrics } from '@cordon/runtime';
import type { ProduceRecord, Producer, RecordMetadata } from '../types.js';
import { ERR_BAD_PARTITION, ERR_CLOSED } from '../errors.js';
import { partitionForKey } from '../partitioner.js';
import type { KafkaBus } from './bus.js';
import {
  hasKafkaError,
  isNetworkError,
  isSecurityFailure,
  isUnavailable,
  PARTITION_UNAVAILABLE_ERRORS,
  responseOf,
  toBusError,
  UNAVAILABLE_BUDGET_MS,
} from './errors.js';
import { encodeRecordBatch, type BatchRecord } from './record-batch.js';
import { topicClass, type TopicClass } from './tuning.js';

/**
 * Payload bytes per produce request at most. The broker refuses a record batch (one per
 * partition per request) above its `message.max.bytes`, 1 MiB by default: larger sends leave
 * as several requests, in order, and merged sends stop at this budget.
 */
const REQUEST_BYTES = 768 * 1024;
/** How long the broker may take to get acks=all; the connection waits a little longer. */
const PRODUCE_TIMEOUT_MS = 30_000;
/**
 * Connections per broker. A broker handles one request of a connection at a time (it reads
 * the next only after answering), so one connection's rate is one request per round trip —
 * with TLS the broker's decryption is in that trip, and one connection moved ~50k 200-byte
 * records/s where four moved ~115k (bench/RESULTS.md). A request's partitions are spread over
 * the connections by partition number; a partition always uses the same one, so its
 * requests reach the broker in the order they left.
 */
const CONNECTIONS = 4;
/**
 * How long a send keeps being retried (same batch, same sequence: never written twice) while
 * the cluster answers with retriable errors or not at all — a broker restarting, a leader
 * moving. Kafka's own producer does this for delivery.timeout.ms (120 s); a stage that saw its
 * send fail after three tries 250 ms apart died at every broker restart (the fault tests).
 */
const DELIVERY_TIMEOUT_MS = UNAVAILABLE_BUDGET_MS;
const RETRY_BACKOFF_MS = 250;
const RETRY_BACKOFF_MAX_MS = 2_000;
/** Partition errors after which the same batch is sent again (same sequence: never written twice). */
const RETRIABLE = new Set([...PARTITION_UNAVAILABLE_ERRORS, 'UNKNOWN_TOPIC_OR_PARTITION']);
/** InitProducerId answers to ask again after a moment. */
const PID_RETRIABLE = [
  'COORDINATOR_LOAD_IN_PROGRESS',
  'COORDINATOR_NOT_AVAILABLE',
  'NOT_COORDINATOR',
  'CONCURRENT_TRANSACTIONS',
  'REQUEST_TIMED_OUT',
];
/** The broker lost or refused this producer's id/sequence state: a new producer id, then the batch again. */
const RESEQUENCE = ['OUT_OF_ORDER_SEQUENCE_NUMBER', 'UNKNOWN_PRODUCER_ID', 'INVALID_PRODUCER_EPOCH'];

/**
 * Whether a send that could not get metadata or a producer id may wait for the cluster (until
 * its delivery budget) rather than fail at once: no connection, a broker restarting, a
 * coordinator loading, a partition without a leader yet (a broker recovering its logs after
 * an unclean stop answers so for seconds). A security failure never waits.
 */
export function producerMayWait(err: unknown): boolean {
  if (isSecurityFailure(err)) return false;
  // isUnavailable covers a bus error that wraps one (ERR_KAFKA_UNREACHABLE) and the coordinator
  // errors; isNetworkError and hasKafkaError search the client's own error tree (findBy)
  return (
    isNetworkError(err) ||
    isUnavailable(err) ||
    (err as { retriable?: boolean }).retriable === true ||
    PID_RETRIABLE.some((n) => hasKafkaError(err, n))
  );
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const yieldTurn = () => new Promise<void>((r) => setImmediate(r));
const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;

const sizeOf = (r: BatchRecord): number => {
  let n = 24 + (r.key?.length ?? 0) + (r.value?.length ?? 0);
  if (r.headers) for (const [k, v] of r.headers) n += k.length + v.length + 8;
  return n;
};

/** Records of one send (or part of it) for one partition, in order. */
interface Part {
  topic: string;
  partition: number;
  records: BatchRecord[];
  /** The batch's first sequence number, under `seqPid` (given once, kept across retries). */
  seq?: number;
  seqPid?: ProducerId;
}

/** A request's first attempt, pipelined: what it wrote and which parts failed, with why. */
interface Attempt {
  base: Map<string, bigint>;
  failed: { part: Part; err: unknown }[];
}

/** A request of a lane: its sends and parts, and its first attempt (in flight or settled). */
interface Job {
  sends: Queued[];
  parts: Part[];
  first: Promise<Attempt>;
}

interface Queued {
  parts: Part[];
  bytes: number;
  /** Base offset of each of `parts`, in order. */
  resolve: (bases: bigint[]) => void;
  reject: (err: unknown) => void;
}

/** A producer id with the next sequence number of each partition under it (a new id starts every partition at 0). */
interface ProducerId {
  producerId: bigint;
  producerEpoch: number;
  sequences: Map<string, number>;
}

/**
 * Requests of a lane in flight at once. One at a time left the broker idle while the client
 * took the answer and built the next request, and the client idle while the broker worked:
 * 0.42-0.61 of kcat's produce rate on a quiet machine (bench/RESULTS.md). Kafka's broker takes
 * up to 5 in flight per idempotent producer and partition, in sequence order.
 */
const PIPELINE = 2;

/**
 * Requests a lane sends at once after a quiet spell before its linger applies: a burst
 * allowance that refills at one request per lingerMs. A live capture's attack — SYN, SYN-ACK,
 * ACK, the request — reaches a bulk lane as two to four sends within a millisecond; with no
 * allowance the second of them lingered ~2 ms (the detection → block loop's p50, see
 * bench/RESULTS.md "Detection → block"). A steady trickle above one request per lingerMs spends
 * the allowance and lingers as before, so the broker's CPU per record is the same there.
 */
export const LINGER_BURST = 4;

/** One request queue (a topic class's): at most PIPELINE requests in flight. */
interface Lane {
  queue: Queued[];
  inFlight: Promise<void> | null;
  lingerMs: number;
  /** When the lane's last request left (performance.now()); -Infinity before the first. */
  lastSentAt: number;
  /** Requests that may leave without lingering (0..LINGER_BURST), as of `refilledAt`. */
  allowance: number;
  refilledAt: number;
}

function lane(lingerMs: number): Lane {
  return { queue: [], inFlight: null, lingerMs, lastSentAt: -Infinity, allowance: LINGER_BURST, refilledAt: 0 };
}

interface ProduceResponse {
  responses: { name: string; partitionResponses: { index: number; errorCode: number; baseOffset: bigint }[] }[];
}

/**
 * The Kafka adapter's producer: idempotent (acks=all, producer id and per-partition sequence
 * numbers, so a retried batch is never written twice), on the client's connections and
 * request framing, with its own record-batch encoder (record-batch.ts).
 *
 * Up to PIPELINE produce requests in flight per topic class (tuning.ts: control and bulk have
 * a queue each, so an alert never waits behind a request of packets), every send that arrived
 * meanwhile merged into the next one (up to REQUEST_BYTES). A batch's sequence numbers are
 * given when it first leaves and kept across its retries; when a request fails, no other
 * leaves until those in flight have settled and the failed ones were sent again in order (see
 * settle()). A request goes to every leader concerned at once (one per broker). Under
 * traffic a queue waits until its class's lingerMs after its last request for more sends; a
 * queue quiet for a while sends its first few requests at once (LINGER_BURST, drain()).
 */
export class KafkaProducer implements Producer {
  private readonly metrics: Metrics;
  private readonly pools: ConnectionPool[];
  private roundRobin = 0;
  private readonly lanes: Record<TopicClass, Lane>;
  private closed = false;
  private pid: Promise<ProducerId> | null = null;

  constructor(private readonly bus: KafkaBus) {
    this.metrics = bus.ctx.metrics.child('producer');
    this.pools = Array.from(
      { length: CONNECTIONS },
      () =>
        new ConnectionPool(`${bus.clientId}-producer`, {
          requestTimeout: PRODUCE_TIMEOUT_MS + 5_000,
          connectTimeout: 5_000,
          ...bus.connection,
        }),
    );
    this.lanes = {
      control: lane(bus.tuning.control.lingerMs),
      bulk: lane(bus.tuning.bulk.lingerMs),
    };
  }

  /** The linger a send to `topic` gets (its class's). */
  lingerMs(topic: string): number {
    return this.lanes[topicClass(topic, this.bus.tuning)].lingerMs;
  }

  async send(topic: string, records: ProduceRecord[]): Promise<RecordMetadata[]> {
    if (this.closed) throw ERR_CLOSED('this Kafka producer');
    if (records.length === 0) return [];
    const meta = await this.bus.topic(topic);
    const now = Date.now();
    // Chunks of at most REQUEST_BYTES, each split by partition, queued together so no other
    // send of this producer lands between them. The partition is always chosen here, never by
    // the client: its default partitioner is not Kafka's, and the embedded bus must agree.
    const chunks: { parts: Map<number, Part>; bytes: number }[] = [];
    const placed: { chunk: number; partition: number; rank: number }[] = new Array(records.length);
    let chunk: { parts: Map<number, Part>; bytes: number } | null = null;
    for (let i = 0; i < records.length; i++) {
      const r = records[i]!;
      let partition: number;
      if (r.partition !== undefined) {
        if (!Number.isInteger(r.partition) || r.partition < 0 || r.partition >= meta.partitions) {
          throw ERR_BAD_PARTITION(topic, r.partition, meta.partitions);
        }
        partition = r.partition;
      } else partition = partitionForKey(r.key, meta.partitions, () => this.roundRobin++);
      let headers: Array<[Buffer, Buffer]> | null = null;
      if (r.headers) {
        headers = [];
        for (const name of Object.keys(r.headers)) headers.push([Buffer.from(name), r.headers[name]!]);
      }
      // null stays null on the wire (a tombstone / a keyless record), not an empty buffer
      const rec: BatchRecord = { key: r.key ?? null, value: r.value ?? null, headers, timestamp: r.timestamp ?? now };
      const n = sizeOf(rec);
      if (chunk === null || chunk.bytes + n > REQUEST_BYTES) chunks.push((chunk = { parts: new Map(), bytes: 0 }));
      chunk.bytes += n;
      let part = chunk.parts.get(partition);
      if (!part) chunk.parts.set(partition, (part = { topic, partition, records: [] }));
      placed[i] = { chunk: chunks.length - 1, partition, rank: part.records.length };
      part.records.push(rec);
    }
    let bases: Map<number, bigint>[];
    try {
      bases = await Promise.all(
        chunks.map(async (c) => {
          const parts = [...c.parts.values()];
          const b = await this.enqueue(this.lanes[topicClass(topic, this.bus.tuning)], parts, c.bytes);
          return new Map(parts.map((p, i) => [p.partition, b[i]!]));
        }),
      );
    } catch (err) {
      this.metrics.inc('errors');
      if (hasKafkaError(err, 'UNKNOWN_TOPIC_OR_PARTITION') || hasKafkaError(err, 'NOT_LEADER_OR_FOLLOWER'))
        this.bus.forgetTopic(topic);
      throw toBusError(err, `producing ${records.length} records to ${topic}`, { ...this.bus.identity, topic });
    }
    const out: RecordMetadata[] = new Array(records.length);
    for (let i = 0; i < records.length; i++) {
      const p = placed[i]!;
      out[i] = { topic, partition: p.partition, offset: bases[p.chunk]!.get(p.partition)! + BigInt(p.rank) };
    }
    this.metrics.inc('sent', records.length);
    return out;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.bus.untrack(this);
    for (const lane of Object.values(this.lanes)) while (lane.inFlight) await lane.inFlight.catch(() => undefined);
    await Promise.all(this.pools.map((p) => p.close()));
  }

  private enqueue(lane: Lane, parts: Part[], bytes: number): Promise<bigint[]> {
    return new Promise((resolve, reject) => {
      lane.queue.push({ parts, bytes, resolve, reject });
      if (!lane.inFlight) lane.inFlight = this.drain(lane);
    });
  }

  /**
   * Queued sends, merged into one request at a time (up to REQUEST_BYTES). The linger is paid
   * under traffic only: a lane sends at once while it has burst allowance left (LINGER_BURST,
   * refilled at one request per lingerMs) — the first frames after a quiet spell are usually
   * an attack's first packets: a 2 ms linger was most of a bulk hop's 3.1 ms p50, 0.8 ms without
   * it — else it waits until lingerMs after its last request, so a steady trickle still leaves
   * as one request per lingerMs (at 18k records/s in sends of 20, no linger cost the broker
   * 40–55 % more CPU a record).
   */
  private async drain(lane: Lane): Promise<void> {
    const jobs: Job[] = [];
    try {
      await this.pump(lane, jobs);
    } catch (err) {
      // not a Kafka error (those reject their own sends): still, no send may wait forever
      for (const j of jobs) for (const s of j.sends) s.reject(err);
    } finally {
      // sends queued while the last requests settled found the lane busy and started no drain:
      // this one goes on with them (else they would wait for some later send)
      lane.inFlight = lane.queue.length > 0 ? this.drain(lane) : null;
    }
  }

  private async pump(lane: Lane, jobs: Job[]): Promise<void> {
    if (lane.lingerMs > 0) {
      const now = performance.now();
      lane.allowance = Math.min(LINGER_BURST, lane.allowance + (now - lane.refilledAt) / lane.lingerMs);
      lane.refilledAt = now;
      const wait = lane.lastSentAt + lane.lingerMs - now;
      if (lane.allowance < 1 && wait > 0) await sleep(wait);
    }
    while (lane.queue.length > 0) {
      let n = 1;
      for (
        let bytes = lane.queue[0]!.bytes;
        n < lane.queue.length && bytes + lane.queue[n]!.bytes <= REQUEST_BYTES;
        n++
      )
        bytes += lane.queue[n]!.bytes;
      const sends = lane.queue.splice(0, n);
      // one batch per topic-partition: the sends' records of it, in send order
      const merged = new Map<string, Part>();
      for (const s of sends)
        for (const p of s.parts) {
          const k = tpKey(p.topic, p.partition);
          const m = merged.get(k);
          if (m) for (const r of p.records) m.records.push(r);
          else merged.set(k, { topic: p.topic, partition: p.partition, records: [...p.records] });
        }
      const parts = [...merged.values()];
      lane.lastSentAt = performance.now();
      lane.allowance = Math.max(0, lane.allowance - 1);
      let pid: ProducerId | null = null;
      try {
        pid = await this.producerId(parts[0]!.topic);
      } catch {
        // no producer id: the cluster is not answering; the retrying path waits for it
      }
      if (pid === null) {
        await this.settle(jobs);
        await this.finish({ sends, parts, first: Promise.resolve({ base: new Map(), failed: [] }) }, true);
      } else {
        // sequence numbers are given here, in launch order, so requests of one partition
        // carry consecutive ones
        const first = this.attempt(parts, pid).catch((err: unknown) => ({
          base: new Map<string, bigint>(),
          failed: parts.map((part) => ({ part, err })),
        }));
        jobs.push({ sends, parts, first });
        if (jobs.length >= PIPELINE) await this.settle(jobs, PIPELINE - 1);
      }
      // the senders just answered usually send again at once (a stage's next batch, a
      // caller's next await): one turn of the loop lets their sends join the next request
      // rather than follow it in a request of their own
      await yieldTurn();
    }
    await this.settle(jobs);
  }

  /**
   * Settle the oldest jobs until at most `keep` are in flight. A job whose first attempt
   * failed in part stops the pipeline: every job in flight settles, then each failed one is
   * sent again in launch order, one at a time (a broker refuses a partition's later batch
   * while an earlier one is missing, and a resend must keep its place and sequence).
   */
  private async settle(jobs: Job[], keep = 0): Promise<void> {
    while (jobs.length > keep) {
      const first = await jobs[0]!.first;
      if (first.failed.length === 0) {
        this.answer(jobs.shift()!, first.base);
        continue;
      }
      await Promise.all(jobs.map((j) => j.first));
      while (jobs.length > 0) await this.finish(jobs.shift()!, false);
    }
  }

  /** A job's retries after its first attempt (all its parts when `whole`), then its senders' answers. */
  private async finish(job: Job, whole: boolean): Promise<void> {
    try {
      const first = await job.first;
      const base = new Map(first.base);
      const todo = whole ? job.parts : first.failed.map((f) => f.part);
      if (todo.length > 0) for (const [k, b] of await this.produce(todo)) base.set(k, b);
      this.answer(job, base);
    } catch (err) {
      for (const s of job.sends) s.reject(err);
    }
  }

  private answer(job: Job, base: Map<string, bigint>): void {
    const seen = new Map<string, number>();
    for (const s of job.sends) {
      s.resolve(
        s.parts.map((p) => {
          const k = tpKey(p.topic, p.partition);
          const before = seen.get(k) ?? 0;
          seen.set(k, before + p.records.length);
          return base.get(k)! + BigInt(before);
        }),
      );
    }
  }

  /** Give each part its sequence numbers under `pid`, unless it has them already. */
  private sequence(parts: Part[], pid: ProducerId): void {
    for (const p of parts) {
      if (p.seqPid === pid) continue;
      const k = tpKey(p.topic, p.partition);
      p.seq = pid.sequences.get(k) ?? 0;
      p.seqPid = pid;
      pid.sequences.set(k, p.seq + p.records.length);
    }
  }

  /**
   * One attempt to write `parts` (one batch each) to their leaders: what was written, what
   * failed. Rejects only when the topics' metadata cannot be had (nothing was sent then).
   */
  private async attempt(parts: Part[], pid: ProducerId): Promise<Attempt> {
    this.sequence(parts, pid);
    const base = new Map<string, bigint>();
    const failed: { part: Part; err: unknown }[] = [];
    const byLeader = new Map<string, { leader: number; slot: number; parts: Part[] }>();
    for (const p of parts) {
      const meta = await this.bus.topic(p.topic);
      const leader = meta.leaders[p.partition] ?? -1;
      const slot = p.partition % CONNECTIONS;
      const k = `${leader}:${slot}`;
      const g = byLeader.get(k);
      if (g) g.parts.push(p);
      else byLeader.set(k, { leader, slot, parts: [p] });
    }
    await Promise.all(
      [...byLeader.values()].map(async ({ leader, slot, parts: mine }) => {
        try {
          if (leader < 0) throw Object.assign(new Error('no leader'), { retriable: true });
          const conn = await this.pools[slot]!.get(await this.bus.broker(leader));
          const res = await this.request(conn, mine, pid);
          const codes = new Map<string, number>();
          for (const t of res.responses)
            for (const pr of t.partitionResponses) {
              const k = tpKey(t.name, pr.index);
              codes.set(k, pr.errorCode);
              if (pr.errorCode === 0) base.set(k, pr.baseOffset);
            }
          for (const p of mine)
            if (codes.get(tpKey(p.topic, p.partition)) !== 0)
              failed.push({ part: p, err: new Error(`no answer for ${p.topic}[${p.partition}]`) });
        } catch (err) {
          const res = responseOf<ProduceResponse>(err);
          for (const p of mine) {
            const pr = res?.responses
              ?.find((t) => t.name === p.topic)
              ?.partitionResponses.find((x) => x.index === p.partition);
            // this partition was written; another in the same request was not
            if (pr && pr.errorCode === 0) base.set(tpKey(p.topic, p.partition), pr.baseOffset);
            else failed.push({ part: p, err });
          }
        }
      }),
    );
    return { base, failed };
  }

  /**
   * Write `parts` (one batch each) to their leaders, retrying what failed; base offset per
   * topic-partition. A resent batch keeps its sequence numbers (never written twice) unless the
   * producer id had to change.
   */
  private async produce(parts: Part[]): Promise<Map<string, bigint>> {
    const base = new Map<string, bigint>();
    let todo = parts;
    const deadline = Date.now() + DELIVERY_TIMEOUT_MS;
    let backoff = RETRY_BACKOFF_MS;
    const again = async (): Promise<void> => {
      this.metrics.inc('retries');
      await sleep(backoff);
      backoff = Math.min(backoff * 2, RETRY_BACKOFF_MAX_MS);
    };
    for (;;) {
      let tried: Attempt;
      try {
        tried = await this.attempt(todo, await this.producerId(todo[0]!.topic));
      } catch (err) {
        // no metadata or producer id: the cluster is not answering (yet)
        if (!producerMayWait(err) || Date.now() >= deadline) throw err;
        for (const p of todo) this.bus.forgetTopic(p.topic);
        await again();
        continue;
      }
      for (const [k, b] of tried.base) base.set(k, b);
      const failed = tried.failed;
      if (failed.length === 0) return base;
      const err = failed[0]!.err;
      const resequence = RESEQUENCE.some((n) => hasKafkaError(err, n));
      const retriable =
        !isSecurityFailure(err) &&
        (resequence ||
          isNetworkError(err) ||
          (err as { retriable?: boolean }).retriable === true ||
          [...RETRIABLE].some((n) => hasKafkaError(err, n)));
      if (!retriable || Date.now() >= deadline) {
        // the broker may or may not hold the failed batches: start over with a new producer id
        // so the next send's sequence numbers are not refused
        this.resetProducerId();
        throw err;
      }
      if (resequence) this.resetProducerId();
      for (const { part } of failed) this.bus.forgetTopic(part.topic);
      await again();
      todo = failed.map((f) => f.part);
    }
  }

  private request(conn: Connection, parts: Part[], pid: ProducerId): Promise<ProduceResponse> {
    const byTopic = new Map<string, Part[]>();
    for (const p of parts) byTopic.set(p.topic, [...(byTopic.get(p.topic) ?? []), p]);
    // encoded here, not in the callback, so an encoding error rejects this send only
    const batches = new Map<Part, Buffer>();
    for (const p of parts)
      batches.set(
        p,
        encodeRecordBatch(p.records, {
          producerId: pid.producerId,
          producerEpoch: pid.producerEpoch,
          baseSequence: p.seq ?? 0,
        }),
      );
    // Produce v8 (not the flexible v9+: the client's reader skips tagged fields wrongly, and a
    // NOT_LEADER_OR_FOLLOWER answer of v10+ carries them, so it could not be read at all):
    // transactional_id acks timeout_ms [topic_data name [partition_data index records]]
    const payload = () =>
      Writer.create()
        .appendString(null, false)
        .appendInt16(-1) // acks=all
        .appendInt32(PRODUCE_TIMEOUT_MS)
        .appendArray(
          [...byTopic],
          (w, [topic, ps]) => {
            w.appendString(topic, false).appendArray(
              ps,
              (w, p) => {
                const b = batches.get(p)!;
                w.appendInt32(p.partition).appendInt32(b.length).append(b);
              },
              false,
              false,
            );
          },
          false,
          false,
        );
    return new Promise((resolve, reject) =>
      conn.send(
        produceV8.api.key,
        produceV8.api.version,
        payload,
        produceV8.parseResponse as ResponseParser<ProduceResponse>,
        false,
        false,
        (err, res) => (err ? reject(err) : resolve(res!)),
      ),
    );
  }

  /** The producer id, asked for once (both lanes share it; a failed ask is asked again next time). */
  private producerId(topic: string): Promise<ProducerId> {
    this.pid ??= (async () => {
      // a fresh broker answers COORDINATOR_LOAD_IN_PROGRESS for a while: ask again, up to ~10 s
      for (let attempt = 0; ; attempt++) {
        try {
          const meta = await this.bus.topic(topic, attempt > 0);
          const leader = meta.leaders.find((l) => l >= 0);
          if (leader === undefined) throw Object.assign(new Error(`no leader for ${topic}`), { retriable: true });
          const conn = await this.pools[0]!.get(await this.bus.broker(leader));
          const res = await initProducerIdV5.api.async(conn, null, 60_000, -1n, -1);
          return { producerId: res.producerId, producerEpoch: res.producerEpoch, sequences: new Map<string, number>() };
        } catch (err) {
          const retriable =
            !isSecurityFailure(err) &&
            ((err as { retriable?: boolean }).retriable === true ||
              isNetworkError(err) ||
              PID_RETRIABLE.some((n) => hasKafkaError(err, n)));
          if (!retriable || attempt >= 40) throw err;
          await sleep(RETRY_BACKOFF_MS);
        }
      }
    })();
    const asked = this.pid;
    asked.catch(() => {
      if (this.pid === asked) this.pid = null;
    });
    return asked;
  }

  /** Start over with a new producer id (every partition's sequence from 0). */
  private resetProducerId(): void {
    this.pid = null;
  }
}
