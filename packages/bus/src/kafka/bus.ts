/**
 * The Kafka adapter of the bus, on @platformatic/kafka (pure JS; chosen by measurement, see
 * bench/RESULTS.md "Kafka client choice"). Admin uses the client's high-level class; the
 * producer sends produce requests itself over the client's connections with its own record
 * batch encoder (producer.ts, record-batch.ts: the client's encoder cost ~4x the CPU per record);
 * the consumer speaks the group protocol itself (consumer.ts) because the client's stream
 * consumer rejoins on a rebalance without a revoke hook.
 */
import { Admin as PlatformaticAdmin } from '@platformatic/kafka';
import { childContext, createContext, type Context } from '@cordon/runtime';
import type { Bus, Consumer, ConsumerOptions, Producer } from '../types.js';
import { ERR_CLOSED, ERR_UNKNOWN_TOPIC } from '../errors.js';
import { KafkaAdminImpl } from './admin.js';
import { KafkaConsumer } from './consumer.js';
import { connectionSecurity, type KafkaSecurity } from './client-config.js';
import { isUnknownTopic, toBusError, type BusIdentity } from './errors.js';
import { KafkaProducer } from './producer.js';
import { resolveTuning, type KafkaTuning, type PathTuning } from './tuning.js';

export interface KafkaBusOptions {
  /** host:port of one or more brokers, e.g. ['127.0.0.1:19092']. */
  brokers: string[];
  clientId?: string;
  /** TLS and SASL (loadKafkaClientConfig reads them from a client configuration file); none: plaintext. */
  security?: KafkaSecurity;
  /** Linger and fetch settings of the control and the bulk path (tuning.ts); defaults per field. */
  tuning?: { control?: Partial<PathTuning>; bulk?: Partial<PathTuning>; bulkTopics?: string[] };
  ctx?: Context;
}

/** What the adapter needs to know about a topic; cached for METADATA_MAX_AGE_MS. */
export interface TopicMeta {
  name: string;
  id: string;
  partitions: number;
  /** Leader node id per partition. */
  leaders: number[];
  /** Leader epoch per partition (fetches carry it so a stale leader is detected). */
  leaderEpochs: number[];
  fetchedAt: number;
}

export interface BrokerAddress {
  host: string;
  port: number;
}

/**
 * Partition counts can grow; a cached view older than this is refreshed before use. (Wall
 * time, not ctx.clock: it measures the broker's real world, which a test clock does not move.)
 */
const METADATA_MAX_AGE_MS = 5_000;

export class KafkaBus implements Bus {
  readonly kind = 'kafka' as const;
  readonly admin: KafkaAdminImpl;
  readonly brokers: string[];
  readonly clientId: string;
  readonly ctx: Context;
  /** TLS and SASL options of every connection this bus opens (admin, producers, consumers' pools). */
  readonly connection: ReturnType<typeof connectionSecurity>;
  /** Brokers and SASL user, for error messages (never the password). */
  readonly identity: BusIdentity;
  /** The control and bulk paths' settings. */
  readonly tuning: KafkaTuning;
  /** Shared metadata/admin connection; consumers and producers open their own. */
  readonly client: PlatformaticAdmin;
  private readonly topics = new Map<string, TopicMeta>();
  private readonly brokerById = new Map<number, BrokerAddress>();
  private readonly open = new Set<{ close(): Promise<void> }>();
  private closed = false;

  constructor(opts: KafkaBusOptions) {
    if (opts.brokers.length === 0) throw new TypeError('createKafkaBus: brokers must name at least one host:port');
    this.brokers = [...opts.brokers];
    this.clientId = opts.clientId ?? 'cordon';
    this.tuning = resolveTuning(opts.tuning);
    this.ctx = childContext(opts.ctx ?? createContext(), 'bus.kafka');
    this.connection = connectionSecurity(opts.security);
    this.identity = { brokers: this.brokers, ...(opts.security?.sasl ? { user: opts.security.sasl.username } : {}) };
    this.client = new PlatformaticAdmin({
      clientId: `${this.clientId}-admin`,
      bootstrapBrokers: this.brokers,
      // Fail fast and let callers decide: a bus caller retries at its own level.
      retries: 2,
      retryDelay: 250,
      ...this.connection,
    });
    this.admin = new KafkaAdminImpl(this);
  }

  producer(): Producer {
    this.assertOpen();
    return this.track(new KafkaProducer(this));
  }

  consumer(opts: ConsumerOptions): Consumer {
    this.assertOpen();
    return this.track(new KafkaConsumer(this, opts));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.open].map((c) => c.close()));
    await this.client.close();
  }

  /** Metadata of `topic`, from the cache unless stale or `refresh`; ERR_UNKNOWN_TOPIC if absent. */
  async topic(topic: string, refresh = false): Promise<TopicMeta> {
    const cached = this.topics.get(topic);
    if (cached && !refresh && Date.now() - cached.fetchedAt < METADATA_MAX_AGE_MS) return cached;
    const [meta] = await this.fetchTopics([topic]);
    if (!meta) throw ERR_UNKNOWN_TOPIC(topic);
    return meta;
  }

  /** Fresh metadata of the topics that exist (unknown ones are left out, not an error). */
  async fetchTopics(names: string[]): Promise<TopicMeta[]> {
    if (names.length === 0) return [];
    let md;
    try {
      md = await this.client.metadata({ topics: names, forceUpdate: true });
    } catch (err) {
      if (isUnknownTopic(err)) {
        // One unknown topic fails the whole request: ask for the others one by one.
        if (names.length === 1) {
          this.topics.delete(names[0]!);
          return [];
        }
        return (await Promise.all(names.map((n) => this.fetchTopics([n])))).flat();
      }
      throw toBusError(err, 'metadata request', { ...this.identity });
    }
    for (const [id, b] of md.brokers) this.brokerById.set(id, { host: b.host, port: b.port });
    const out: TopicMeta[] = [];
    for (const name of names) {
      const t = md.topics.get(name);
      if (!t) {
        this.topics.delete(name);
        continue;
      }
      const meta: TopicMeta = {
        name,
        id: t.id,
        partitions: t.partitionsCount,
        leaders: t.partitions.map((p) => p.leader),
        leaderEpochs: t.partitions.map((p) => p.leaderEpoch),
        fetchedAt: Date.now(),
      };
      this.topics.set(name, meta);
      out.push(meta);
    }
    return out;
  }

  forgetTopic(topic: string): void {
    this.topics.delete(topic);
  }

  /** Address of broker `nodeId` (from the last metadata answer). */
  async broker(nodeId: number): Promise<BrokerAddress> {
    let b = this.brokerById.get(nodeId);
    if (!b) {
      const md = await this.client.metadata({ topics: [], forceUpdate: true });
      for (const [id, x] of md.brokers) this.brokerById.set(id, { host: x.host, port: x.port });
      b = this.brokerById.get(nodeId);
    }
    if (!b)
      throw toBusError(new Error(`broker ${nodeId} is not in the cluster metadata`), 'metadata request', {
        ...this.identity,
      });
    return b;
  }

  untrack(c: { close(): Promise<void> }): void {
    this.open.delete(c);
  }

  private track<T extends { close(): Promise<void> }>(c: T): T {
    this.open.add(c);
    return c;
  }

  private assertOpen(): void {
    if (this.closed) throw ERR_CLOSED('the Kafka bus');
  }
}
