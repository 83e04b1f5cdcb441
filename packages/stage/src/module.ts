import type { z } from 'zod';
import type {
  Bus,
  ConsumedRecord,
  ProduceRecord,
  TableFollower,
  TopicPartition,
  TopicPartitionOffset,
} from '@cordon/bus';
import type { Context } from '@cordon/runtime';
import type { DeadLetterSource } from '@cordon/schemas';
import type { Store } from '@cordon/store';
import type { RecordSigner } from './record-sign.js';

/**
 * The stage contract. Every service is one `StageModule`: its name, its configuration
 * section, the topics it reads and writes, and `start()`, which wires its own logic to the
 * runtime's pieces (`stage.consume`, `stage.follow`, `stage.send`, …). `runStage()` owns the
 * rest — the consume loop, decoding with bad records to the DLQ, counters, commits after the
 * output is acknowledged, and a graceful drain on stop — so stages keep only their own logic.
 */
export interface StageModule<Cfg = any, Extra extends object = object> {
  /** `cordon run <name>`, the configuration section, the `stage` label of its metrics. */
  readonly name: string;
  /** One line for `cordon help`. */
  readonly summary: string;
  /** The configuration section: strict (unknown keys are errors), defaults filled. */
  readonly config: z.ZodType<Cfg, z.ZodTypeDef, any>;
  /**
   * `always` (default): `cordon up` runs it. `configured`: only when its section is in the
   * configuration (the agent inside a guest, the watchdog on a hypervisor host).
   */
  readonly when?: 'always' | 'configured';
  /** The consumer groups and topics it reads: what "caught up" and "lag" are measured on. */
  inputs(config: Cfg): StageInput[];
  /** The topics it writes (its dead letters' topic included). */
  outputs(config: Cfg): string[];
  /**
   * The topics it reads outside the groups of `inputs`: the tables it follows, its checkpoints,
   * its own output read back. With `inputs` and `outputs` this is everything its Kafka
   * principal is allowed (`stageAcls`, docs/security.md section 2), so once a module declares
   * it, `stage.follow` of a topic declared nowhere is refused (CORDON_ERR_STAGE_UNDECLARED_READ).
   */
  reads?(config: Cfg): string[];
  /** Wire the stage; what it returns is exposed on the running stage (for tests and tools). */
  start(stage: Stage<Cfg>): Promise<Extra> | Extra;
}

/** Identity, for type inference at the definition site. */
export function defineStage<Cfg, Extra extends object = object>(m: StageModule<Cfg, Extra>): StageModule<Cfg, Extra> {
  return m;
}

export interface StageInput {
  group: string;
  topic: string;
}

/** What the process hosting stages gives each one. */
export interface StageEnv {
  /** The resolved data directory. */
  dataDir: string;
  /** The ClickHouse store, opened on first use and shared by every stage of the process. */
  store(): Promise<Store>;
  /**
   * A store whose session can only read (ClickHouse `readonly = 1`: no writes, no DDL, no
   * settings changes), for a stage that serves reads to people (the manager). Opened on first
   * use; closed by the process.
   */
  readStore(): Promise<Store>;
}

/** What a stage's `start()` is handed. Everything it opens through it is closed by the runtime on stop. */
export interface Stage<Cfg> {
  readonly name: string;
  readonly config: Cfg;
  readonly bus: Bus;
  /** Logger, counters and clock of this stage (component = the stage's name). */
  readonly ctx: Context;
  readonly env: StageEnv;
  /** True once stop() was called. */
  readonly stopping: boolean;
  /** Send now (outside a batch), counted as this stage's output (or DLQ records, for the DLQ topic). */
  send(topic: string, records: ProduceRecord[]): Promise<void>;
  /** A dead letter for the DLQ topic: the record whole, where it came from, the error's code. */
  deadLetter(
    source: DeadLetterSource,
    record: { key: Buffer | null; value: Buffer | null },
    err: unknown,
  ): ProduceRecord;
  /** The one consume loop: see ConsumeSpec. Started at once; stopped (drained) by the runtime. */
  consume<T>(spec: ConsumeSpec<T>): ConsumeLoop;
  /**
   * A compacted topic as a live table (every current record with `restoring` true, then each
   * new one); closed by the runtime on stop. Its failure fails the stage.
   */
  follow(
    topic: string,
    onRecord: (r: ConsumedRecord, restoring: boolean) => Promise<void> | void,
    opts?: { afterRestore?: () => Promise<void> },
  ): Promise<TableFollower>;
  /**
   * Run `fn` every `ms` (never two at once); cleared on stop. A failure is logged and counted,
   * and the next tick tries again.
   */
  every(ms: number, what: string, fn: () => Promise<void> | void): void;
  /** A long-running task of the stage: its failure fails the stage. */
  watch(what: string, task: Promise<unknown>): void;
  /** Cleanup run on stop after the consume loops drained and followers closed, last registered first. */
  onStop(fn: () => Promise<void> | void): void;
  /**
   * Sign every record this stage sends from now on (an agent or watchdog, with the key the
   * coordinator registered for it): consumers refuse its telemetry unsigned (record-trust.ts).
   */
  signRecords(signer: RecordSigner): void;
}

export interface ConsumeSpec<T> {
  group: string;
  topics: string[];
  /**
   * Decode a record's value. Default: the topic's Avro codec. A throw sends the record to the
   * DLQ with the error's code, and the batch goes on.
   */
  decode?: (value: Buffer, record: ConsumedRecord) => T;
  /** A record without a value: `dead-letter` (default: stage inputs carry no tombstones) or `skip`. */
  tombstones?: 'dead-letter' | 'skip';
  /** Where a group that never committed starts: the beginning (default) or the end. */
  fromBeginning?: boolean;
  maxBatchRecords?: number;
  /**
   * `batch` (default): a batch's offset is committed once its outputs are acknowledged.
   * `manual`: the stage commits itself (`loop.commit`), e.g. together with a checkpoint.
   */
  commit?: 'batch' | 'manual';
  /** Where rejected records go (default `cordon.dlq.v1`). */
  dlqTopic?: string;
  /** Partitions gained (after a rebalance, and at start); runs exclusively with batches. */
  onAssign?(tps: TopicPartition[]): Promise<void> | void;
  /** Partitions about to be given up (rebalance, stop); runs exclusively with batches. */
  onRevoke?(tps: TopicPartition[]): Promise<void> | void;
  /** One batch of one partition, records decoded; outputs emitted here are sent before the commit. */
  handle(batch: StageBatch<T>): Promise<void> | void;
}

export interface Decoded<T> {
  value: T;
  record: ConsumedRecord;
}

export interface StageBatch<T> {
  readonly topic: string;
  readonly partition: number;
  /** The records that decoded, in offset order (the others are already on their way to the DLQ). */
  readonly records: ReadonlyArray<Decoded<T>>;
  /** Offset of the batch's first record, decoded or not. */
  readonly firstOffset: bigint;
  /** Offset after the batch's last record, decoded or not. */
  readonly nextOffset: bigint;
  /**
   * Queue records for a topic. Sent when `handle` returns — topics in the order first
   * emitted, records in order — and acknowledged before the batch's offset is committed.
   */
  emit(topic: string, records: ProduceRecord | ProduceRecord[]): void;
  /**
   * A record of this batch the stage cannot use: to the DLQ with the error's code (and, when
   * given, `value` in place of the record's own bytes, e.g. the one bad frame of a batch).
   */
  reject(record: ConsumedRecord, err: unknown, value?: Buffer | null): void;
  /** Send what was emitted so far now, e.g. before a checkpoint that must not get ahead of it. */
  flush(): Promise<void>;
}

export interface ConsumeLoop {
  /** Run `fn` exclusively with this loop's batches and rebalance callbacks (timers touching partition state). */
  exclusive<R>(fn: () => Promise<R>): Promise<R>;
  seek(tp: TopicPartitionOffset): void;
  commit(offsets: TopicPartitionOffset[]): Promise<void>;
  assignment(): TopicPartition[];
}

/** A stage that runs: what `start()` returned, plus its lifecycle. */
export type RunningStage<Cfg = unknown, Extra extends object = object> = Extra & {
  readonly name: string;
  readonly config: Cfg;
  /** Settles when the stage has stopped: resolves after stop(), rejects if the stage failed. */
  readonly done: Promise<void>;
  /** Drain (in-flight batches finished and committed), close followers and the producer. Idempotent. */
  stop(): Promise<void>;
};
