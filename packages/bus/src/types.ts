/**
 * The bus: one interface, two adapters (Kafka and embedded), one conformance suite.
 *
 * Semantics follow Kafka's: a topic has N partitions; a record's partition is
 * murmur2(key) % N (Kafka's default partitioner, so both adapters place keys alike);
 * consumers in one group split the partitions between them and rebalance when members
 * join or leave; a group's committed offset is the next offset to read; compacted topics
 * keep the newest record per key (a null value is a tombstone).
 */

export interface BusHeaders {
  [name: string]: Buffer;
}

/** A record to produce. `partition` overrides the key hash (rarely needed). */
export interface ProduceRecord {
  key: Buffer | null;
  value: Buffer | null;
  headers?: BusHeaders;
  partition?: number;
  /** Milliseconds since epoch; defaults to now. */
  timestamp?: number;
}

export interface ConsumedRecord {
  topic: string;
  partition: number;
  offset: bigint;
  key: Buffer | null;
  value: Buffer | null;
  headers: BusHeaders;
  timestamp: number;
}

export interface RecordMetadata {
  topic: string;
  partition: number;
  offset: bigint;
}

export interface TopicSpec {
  name: string;
  partitions: number;
  /** `compact` keeps the newest value per key; `delete` drops by retention. */
  cleanupPolicy: 'delete' | 'compact';
  /** Retention in ms for `delete` topics; -1 = forever. */
  retentionMs: number;
}

export interface TopicInfo {
  name: string;
  partitions: number;
}

export interface Admin {
  /** Create missing topics; existing ones are left as they are (partitions only grow). */
  ensureTopics(specs: TopicSpec[]): Promise<void>;
  listTopics(): Promise<TopicInfo[]>;
  deleteTopics(names: string[]): Promise<void>;
  /** Next offset to be written, per partition. */
  endOffsets(topic: string): Promise<Map<number, bigint>>;
  /** Committed offsets of a group on a topic (partitions without a commit are absent). */
  committedOffsets(groupId: string, topic: string): Promise<Map<number, bigint>>;
}

export interface Producer {
  /** Resolves once every record is durably accepted (acks=all on Kafka, persisted on embedded). */
  send(topic: string, records: ProduceRecord[]): Promise<RecordMetadata[]>;
  close(): Promise<void>;
}

export interface Batch {
  topic: string;
  partition: number;
  records: ConsumedRecord[];
}

export interface ConsumerOptions {
  groupId: string;
  topics: string[];
  /** Where to start a partition the group has never committed: earliest (default) or latest. */
  fromBeginning?: boolean;
  /** Upper bound of records handed to one eachBatch call. */
  maxBatchRecords?: number;
  /** Commit the offsets of a batch after eachBatch resolves (default true). */
  autoCommit?: boolean;
  /** Called with the partitions this member now owns after each rebalance. */
  onAssign?: (assigned: TopicPartition[]) => void | Promise<void>;
  /** Called with partitions being taken away, before another member gets them. */
  onRevoke?: (revoked: TopicPartition[]) => void | Promise<void>;
}

export interface TopicPartition {
  topic: string;
  partition: number;
}

export interface TopicPartitionOffset extends TopicPartition {
  offset: bigint;
}

export interface Consumer {
  /**
   * Start the fetch loop. eachBatch gets records of one partition in offset order; when it
   * resolves and autoCommit is on, offset (last + 1) is committed for the group. If it throws,
   * the consumer stops and `run`'s promise rejects (at-least-once: the batch is redelivered
   * to whoever owns the partition next).
   */
  run(eachBatch: (batch: Batch) => Promise<void>): Promise<void>;
  commit(offsets: TopicPartitionOffset[]): Promise<void>;
  /** Move the fetch position of an assigned partition. */
  seek(tp: TopicPartitionOffset): void;
  assignment(): TopicPartition[];
  /** Leave the group (triggering a rebalance) and stop fetching; `run` resolves. */
  close(): Promise<void>;
}

export interface Bus {
  readonly kind: 'kafka' | 'embedded';
  readonly admin: Admin;
  producer(): Producer;
  consumer(opts: ConsumerOptions): Consumer;
  close(): Promise<void>;
}
