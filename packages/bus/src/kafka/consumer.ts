/**
 * A Kafka consumer-group member speaking the classic (eager) group protocol itself, over
 * @platformatic/kafka's request encoders and connections.
 *
 * Why not the client's own consumer: on a rebalance its stream rejoins at once, with no hook
 * between "the coordinator asked us to give partitions back" and "someone else owns them".
 * The bus promises onRevoke runs before another member gets a partition (stages checkpoint
 * there), so this member finishes the batch in hand, calls onRevoke, and only then rejoins.
 *
 * Shape: one loop per consumer (rebalance → fetch → deliver batch by batch → commit), plus a
 * heartbeat timer on a separate connection so a slow eachBatch does not cost the membership.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import {
  ConnectionPool,
  FetchIsolationLevels,
  FindCoordinatorKeyTypes,
  fetchV17,
  heartbeatV4,
  joinGroupV9,
  leaveGroupV5,
  offsetCommitV9,
  offsetFetchV9,
  syncGroupV5,
  type Connection,
} from '@platformatic/kafka';
import type { Context, Logger, Metrics } from '@cordon/runtime';
import type {
  Batch,
  ConsumedRecord,
  Consumer,
  ConsumerOptions,
  TopicPartition,
  TopicPartitionOffset,
} from '../types.js';
import { ERR_CLOSED, ERR_KAFKA_DENIED, ERR_KAFKA_GROUP, ERR_NOT_ASSIGNED } from '../errors.js';
import type { BrokerAddress, KafkaBus, TopicMeta } from './bus.js';
import {
  hasKafkaError,
  isNetworkError,
  isSecurityFailure,
  isUnavailable,
  responseOf,
  toBusError,
  UNAVAILABLE_BUDGET_MS,
} from './errors.js';
import { fetchV17Parser, type FetchResponse } from './fetch-response.js';
import { topicClass } from './tuning.js';
import {
  PROTOCOL_TYPE,
  RANGE,
  decodeAssignment,
  decodeSubscription,
  encodeAssignment,
  encodeSubscription,
  rangeAssign,
} from './group-protocol.js';

/** A dead member's partitions move after this long without heartbeats. */
const SESSION_TIMEOUT_MS = 10_000;
const HEARTBEAT_INTERVAL_MS = 1_000;
/** How long the coordinator waits for every member to rejoin (also the longest eachBatch during a rebalance). */
const REBALANCE_TIMEOUT_MS = 60_000;
/** Longest long-poll time of a fetch (the topic class's fetchMaxWaitMs, tuning.ts, is used; this bounds the request timeout). */
const FETCH_MAX_WAIT_MS = 10_000;
const FETCH_MAX_BYTES = 50 * 1024 * 1024;
const PARTITION_MAX_BYTES = 4 * 1024 * 1024;
const RETRY_BACKOFF_MS = 200;
/** The leader re-checks partition counts this often; a grown topic triggers a rebalance. */
const METADATA_CHECK_MS = 5_000;

/** The broker errors that mean "this member must (re)join the group". */
const REJOIN_ERRORS = ['REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'UNKNOWN_MEMBER_ID', 'FENCED_INSTANCE_ID'];
/** The broker errors that mean "ask again who the coordinator is". */
const COORDINATOR_ERRORS = ['NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE', 'COORDINATOR_LOAD_IN_PROGRESS'];

interface Owned {
  topic: string;
  partition: number;
  /** Next offset to hand out; null until resolved from the group's commit or the reset policy. */
  position: bigint | null;
  /** Bumped by seek, so a batch fetched before the seek is not delivered after it. */
  seekEpoch: number;
}

/** Which consumer's eachBatch the current async context runs in (close() from inside must not wait for itself). */
const handlerScope = new AsyncLocalStorage<KafkaConsumer>();

/** One partition's share of a fetch response, fetched from offset `from`. */
interface Fetched {
  topic: string;
  partition: number;
  from: bigint;
  records: ConsumedRecord[];
  /** The offset after the last one the response covered (control records included). */
  next: bigint;
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;
const samePositions = (a: Map<string, bigint>, b: Map<string, bigint>) =>
  a.size === b.size && [...a].every(([k, v]) => b.get(k) === v);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

function errorName(err: unknown, names: string[]): string | undefined {
  return names.find((n) => hasKafkaError(err, n));
}

export class KafkaConsumer implements Consumer {
  private readonly log: Logger;
  private readonly metrics: Metrics;
  private readonly groupPool: ConnectionPool;
  private readonly fetchPool: ConnectionPool;
  private coordinator: BrokerAddress | null = null;
  private memberId = '';
  private generationId = -1;
  private owned = new Map<string, Owned>();
  /** Partition counts the current assignment was computed from (leader only). */
  private assignedFrom: Map<string, number> | null = null;
  private lastMetadataCheck = 0;
  private rejoinNeeded = true;
  private heartbeatTimer: NodeJS.Timeout | null = null;
  private running: Promise<void> | null = null;
  private stopping = false;
  /** eachBatch (or onAssign / onRevoke) threw: the loop ends with its error, whatever it is. */
  private handlerFailed = false;
  /** Positions delivered since the last commit, committed once per fetch round. */
  private readonly toCommit = new Map<string, TopicPartitionOffset>();
  /** The commit in flight (at most one; the fetches go on meanwhile); its failure is rethrown by settleCommit. */
  private pendingCommit: Promise<void> | null = null;
  /** No commit in flight: the next round may send one (else its positions wait for the next). */
  private commitDone = true;
  /**
   * The next round's fetch, sent while this round's records are delivered (from the positions
   * they leave), so a record that arrives meanwhile is on its way already. Used only if the
   * positions are still those it was sent from (no seek, rebalance or partial delivery since).
   */
  private prefetch: { from: Map<string, bigint>; result: Promise<Fetched[]> } | null = null;
  private closed = false;
  /** The fetch settings of this consumer's topic class (control if any of its topics is). */
  readonly fetchWaitMs: number;
  readonly fetchMinBytes: number;

  constructor(
    private readonly bus: KafkaBus,
    private readonly opts: ConsumerOptions,
  ) {
    const ctx: Context = bus.ctx;
    this.log = ctx.log.child({ groupId: opts.groupId });
    this.metrics = ctx.metrics.child('consumer');
    const cls = opts.topics.some((t) => topicClass(t, bus.tuning) === 'control') ? 'control' : 'bulk';
    this.fetchWaitMs = bus.tuning[cls].fetchMaxWaitMs;
    this.fetchMinBytes = bus.tuning[cls].fetchMinBytes;
    const clientId = `${bus.clientId}-consumer`;
    // JoinGroup is answered only when every member has rejoined: its timeout must outlast that.
    this.groupPool = new ConnectionPool(clientId, {
      requestTimeout: REBALANCE_TIMEOUT_MS + 10_000,
      connectTimeout: 5_000,
      ...bus.connection,
    });
    this.fetchPool = new ConnectionPool(clientId, {
      requestTimeout: FETCH_MAX_WAIT_MS + 30_000,
      connectTimeout: 5_000,
      ...bus.connection,
    });
  }

  run(eachBatch: (batch: Batch) => Promise<void>): Promise<void> {
    if (this.running) return this.running;
    if (this.closed || this.stopping) return Promise.reject(ERR_CLOSED('this Kafka consumer'));
    this.running = this.loop(eachBatch);
    return this.running;
  }

  async commit(offsets: TopicPartitionOffset[]): Promise<void> {
    if (offsets.length === 0) return;
    await this.commitOffsets(offsets, true);
  }

  seek(tp: TopicPartitionOffset): void {
    const o = this.owned.get(tpKey(tp.topic, tp.partition));
    if (!o) throw ERR_NOT_ASSIGNED(tp.topic, tp.partition);
    o.position = tp.offset;
    o.seekEpoch++;
  }

  assignment(): TopicPartition[] {
    return [...this.owned.values()].map(({ topic, partition }) => ({ topic, partition }));
  }

  async close(): Promise<void> {
    this.stopping = true;
    // From inside eachBatch, waiting for the loop would wait for ourselves: the loop stops
    // (and leaves the group) as soon as the handler returns.
    if (handlerScope.getStore() === this) return;
    if (this.running) await this.running.catch(() => undefined);
    await this.leave(true);
    await this.finish();
  }

  // ---- the loop -------------------------------------------------------------------------

  private async loop(eachBatch: (batch: Batch) => Promise<void>): Promise<void> {
    let failure: unknown = null;
    let topicsChecked = false;
    /** When the cluster stopped answering (null while it answers). */
    let unavailableSince: number | null = null;
    let lastWarn = 0;
    try {
      while (!this.stopping) {
        try {
          if (!topicsChecked) {
            // Unknown topics fail fast, like the embedded bus (Kafka would wait for them forever).
            for (const t of this.opts.topics) await this.bus.topic(t);
            topicsChecked = true;
          }
          await this.round(eachBatch);
          unavailableSince = null;
        } catch (err) {
          // The handler's own failure, or the cluster refusing for good: stop. The cluster not
          // answering (a broker restarting, a coordinator or leader moving) is waited out for
          // UNAVAILABLE_BUDGET_MS, as the producer does: a consumer that exits at every broker
          // restart turns one restart into a restart of every stage.
          if (this.handlerFailed || !isUnavailable(err) || this.stopping) throw err;
          const now = Date.now();
          unavailableSince ??= now;
          if (now - unavailableSince >= UNAVAILABLE_BUDGET_MS) throw err;
          this.metrics.inc('unavailable_retries');
          if (now === unavailableSince || now - lastWarn >= 10_000) {
            lastWarn = now;
            this.log.warn(
              { err, forMs: now - unavailableSince, budgetMs: UNAVAILABLE_BUDGET_MS },
              'The Kafka cluster does not answer; retrying.',
            );
          }
          this.coordinator = null;
          for (const t of this.opts.topics) this.bus.forgetTopic(t);
          await sleep(
            Math.min(RETRY_BACKOFF_MS * 2 ** Math.min(6, Math.floor((now - unavailableSince) / 1000)), 2_000),
          );
        }
      }
      await this.flushCommits();
    } catch (err) {
      failure = err;
      this.metrics.inc('errors');
    }
    // A failed handler leaves without onRevoke (the stage is failing; its batch was not
    // committed and is redelivered to whoever owns the partition next).
    await this.leave(failure === null);
    this.stopping = true;
    await this.finish();
    if (failure !== null) throw failure;
  }

  /** One round: rejoin if asked, else fetch, deliver and commit what was delivered. */
  private async round(eachBatch: (batch: Batch) => Promise<void>): Promise<void> {
    if (this.rejoinNeeded) {
      await this.rebalance();
      return;
    }
    await this.checkPartitionCounts();
    if (this.owned.size === 0) {
      await sleep(this.fetchWaitMs);
      return;
    }
    await this.resolvePositions();
    const from = this.positions();
    const pre = this.prefetch;
    this.prefetch = null;
    const fetched = pre && samePositions(pre.from, from) ? await pre.result : await this.fetch(from);
    if (fetched.length > 0 && !this.stopping && !this.rejoinNeeded) {
      // the next round's fetch, from where this round's records leave the positions
      const next = new Map(from);
      for (const f of fetched) {
        const k = tpKey(f.topic, f.partition);
        if (next.get(k) === f.from && f.next > f.from) next.set(k, f.next);
      }
      const result = this.fetch(next);
      result.catch(() => undefined); // seen when awaited; unused if the positions moved
      this.prefetch = { from: next, result };
    }
    for (const batch of fetched) {
      if (this.stopping || this.rejoinNeeded) break;
      await this.deliver(batch, eachBatch);
    }
    // One OffsetCommit in flight at a time, never waited for by the next fetch: a commit is a
    // round trip to the coordinator that would otherwise delay every record behind it. While
    // one is out, the positions delivered meanwhile go with the next (at-least-once holds: a
    // commit only ever covers delivered records).
    if (this.commitDone) {
      await this.settleCommit(); // done already: rethrows its failure
      if (this.toCommit.size > 0) this.startCommit();
    }
  }

  private startCommit(): void {
    const offsets = [...this.toCommit.values()];
    this.toCommit.clear();
    this.commitDone = false;
    this.pendingCommit = this.commitOffsets(offsets, false)
      .catch((err: unknown) => {
        // Not committed: commit these positions with the next round's, unless newer ones are due.
        for (const o of offsets) {
          const key = tpKey(o.topic, o.partition);
          if (!this.toCommit.has(key) && this.owned.has(key)) this.toCommit.set(key, o);
        }
        throw err;
      })
      .finally(() => {
        this.commitDone = true;
      });
    // a failure is rethrown by the next settleCommit; until then, not unhandled
    this.pendingCommit.catch(() => undefined);
  }

  /** Wait for the commit in flight, then commit the positions still waiting; a failure throws. */
  private async flushCommits(): Promise<void> {
    await this.settleCommit();
    if (this.toCommit.size > 0) {
      this.startCommit();
      await this.settleCommit();
    }
  }

  /** Hand a fetched partition's records to eachBatch in maxBatchRecords slices, committing each. */
  private async deliver(fetched: Fetched, eachBatch: (batch: Batch) => Promise<void>): Promise<void> {
    const key = tpKey(fetched.topic, fetched.partition);
    const o = this.owned.get(key);
    // Revoked or seeked since the fetch was sent: stale.
    if (!o || o.position === null || o.position !== fetched.from) return;
    const epoch = o.seekEpoch;
    const max = Math.max(1, this.opts.maxBatchRecords ?? 1000);
    const records = fetched.records.filter((r) => r.offset >= o.position!);
    if (records.length === 0) {
      // Only control records (transaction markers) or records below a seek: step over them.
      if (fetched.next > o.position) o.position = fetched.next;
      return;
    }
    for (let i = 0; i < records.length; i += max) {
      if (this.stopping || this.rejoinNeeded || this.owned.get(key) !== o || o.seekEpoch !== epoch) return;
      const slice = records.slice(i, i + max);
      try {
        await handlerScope.run(this, () =>
          eachBatch({ topic: fetched.topic, partition: fetched.partition, records: slice }),
        );
      } catch (err) {
        this.handlerFailed = true; // the stage's failure, not the cluster's: never retried here
        throw err;
      }
      this.metrics.inc('received', slice.length);
      // A seek during eachBatch wins over the natural advance.
      if (o.seekEpoch !== epoch) return;
      o.position = slice[slice.length - 1]!.offset + 1n;
      if (this.opts.autoCommit ?? true)
        this.toCommit.set(key, { topic: fetched.topic, partition: fetched.partition, offset: o.position });
    }
    if (o.seekEpoch === epoch && fetched.next > o.position) o.position = fetched.next;
  }

  // ---- group membership -------------------------------------------------------------------

  /** Wait for the commit in flight; its failure (not a rebalance: that sets rejoinNeeded) throws. */
  private async settleCommit(): Promise<void> {
    const p = this.pendingCommit;
    this.pendingCommit = null;
    if (p) await p;
  }

  /** Give everything back (onRevoke), then JoinGroup + SyncGroup until we hold a generation. */
  private async rebalance(): Promise<void> {
    this.prefetch = null;
    await this.flushCommits().catch((err: unknown) =>
      this.log.warn({ err }, 'A commit failed before a rebalance; its records are redelivered.'),
    );
    this.toCommit.clear();
    if (this.owned.size > 0) {
      const revoked = this.assignment();
      this.owned = new Map();
      await this.stageCallback(() => this.opts.onRevoke?.(revoked));
    }
    this.assignedFrom = null;
    this.stopHeartbeat();
    for (let attempt = 0; !this.stopping; attempt++) {
      try {
        const assigned = await this.joinAndSync();
        if (assigned === null) continue;
        this.rejoinNeeded = false;
        this.owned = new Map(
          assigned.map((tp) => [tpKey(tp.topic, tp.partition), { ...tp, position: null, seekEpoch: 0 }]),
        );
        this.startHeartbeat();
        this.metrics.inc('rebalances');
        this.log.info(
          {
            memberId: this.memberId,
            generationId: this.generationId,
            assigned: assigned.map((tp) => `${tp.topic}/${tp.partition}`),
          },
          'Joined the consumer group.',
        );
        await this.resolvePositions();
        await this.stageCallback(() => this.opts.onAssign?.(this.assignment()));
        return;
      } catch (err) {
        if (!this.handlerFailed && this.owned.size > 0) {
          // assigned, but the stage was never told (its positions could not be read): give the
          // assignment up unannounced and join again — never fetch for partitions it was not given
          this.owned = new Map();
          this.rejoinNeeded = true;
          this.stopHeartbeat();
        }
        if (isSecurityFailure(err))
          throw toBusError(err, `joining consumer group ${this.opts.groupId}`, { ...this.bus.identity });
        if (errorName(err, COORDINATOR_ERRORS) || isUnavailable(err)) {
          this.coordinator = null;
          // the cluster is not answering: the loop waits it out, within its budget
          if (!errorName(err, COORDINATOR_ERRORS)) throw err;
        } else if (hasKafkaError(err, 'UNKNOWN_MEMBER_ID')) {
          this.memberId = '';
        } else if (!errorName(err, REJOIN_ERRORS)) {
          throw ERR_KAFKA_GROUP.withCause(err, this.opts.groupId, (err as Error).message);
        }
        if (attempt > 0 && attempt % 10 === 0)
          this.log.warn({ err, attempt }, 'Still trying to join the consumer group.');
        await sleep(RETRY_BACKOFF_MS);
      }
    }
  }

  /**
   * onAssign / onRevoke: the stage's own code (it restores or checkpoints its state there). Its
   * failure ends the consumer like a failed eachBatch, never retried here: a checkpoint that was
   * not written must not be skipped over.
   */
  private async stageCallback(fn: () => Promise<void> | void): Promise<void> {
    try {
      await fn();
    } catch (err) {
      this.handlerFailed = true;
      throw err;
    }
  }

  /** One JoinGroup + SyncGroup round; null if it has to be repeated (e.g. a member id was assigned). */
  private async joinAndSync(): Promise<TopicPartition[] | null> {
    const conn = await this.coordinatorConnection();
    let joined;
    try {
      joined = await joinGroupV9.api.async(
        conn,
        this.opts.groupId,
        SESSION_TIMEOUT_MS,
        REBALANCE_TIMEOUT_MS,
        this.memberId,
        null,
        PROTOCOL_TYPE,
        [{ name: RANGE, metadata: encodeSubscription(this.opts.topics) }],
        null,
      );
    } catch (err) {
      // Since JoinGroup v4 the first join is refused with the member id to use: join again with it.
      const resp = responseOf<{ memberId?: string | null }>(err);
      if (hasKafkaError(err, 'MEMBER_ID_REQUIRED') && resp?.memberId) {
        this.memberId = resp.memberId;
        return null;
      }
      throw err;
    }
    this.memberId = joined.memberId ?? this.memberId;
    this.generationId = joined.generationId;
    let assignments: { memberId: string; assignment: Buffer }[] = [];
    if (joined.leader === this.memberId) {
      const subscriptions = new Map(joined.members.map((m) => [m.memberId, decodeSubscription(m.metadata)]));
      const topics = [...new Set([...subscriptions.values()].flat())];
      const counts = new Map((await this.bus.fetchTopics(topics)).map((t) => [t.name, t.partitions]));
      this.assignedFrom = counts;
      this.lastMetadataCheck = Date.now();
      assignments = [...rangeAssign(subscriptions, counts)].map(([memberId, tps]) => ({
        memberId,
        assignment: encodeAssignment(tps),
      }));
    }
    const synced = await syncGroupV5.api.async(
      conn,
      this.opts.groupId,
      this.generationId,
      this.memberId,
      null,
      PROTOCOL_TYPE,
      RANGE,
      assignments,
    );
    const mine = decodeAssignment(synced.assignment).filter((tp) => this.opts.topics.includes(tp.topic));
    return mine.sort((a, b) => a.topic.localeCompare(b.topic) || a.partition - b.partition);
  }

  private startHeartbeat(): void {
    this.stopHeartbeat();
    const generation = this.generationId;
    const beat = async () => {
      if (this.heartbeatTimer === null || generation !== this.generationId || this.stopping) return;
      try {
        const conn = await this.coordinatorConnection();
        await heartbeatV4.api.async(conn, this.opts.groupId, generation, this.memberId, null);
      } catch (err) {
        const rejoin = errorName(err, REJOIN_ERRORS);
        if (rejoin) {
          // The loop notices between batches; until it rejoins, keep heartbeating so the
          // coordinator knows we are alive (it waits up to the rebalance timeout for us).
          if (!this.rejoinNeeded) this.log.info({ reason: rejoin }, 'The consumer group is rebalancing.');
          this.rejoinNeeded = true;
          if (rejoin !== 'REBALANCE_IN_PROGRESS') return;
        } else if (errorName(err, COORDINATOR_ERRORS) || isNetworkError(err)) {
          this.coordinator = null;
        } else {
          this.log.warn({ err }, 'A consumer-group heartbeat failed.');
        }
      }
      if (this.heartbeatTimer !== null && generation === this.generationId) this.heartbeatTimer.refresh();
    };
    this.heartbeatTimer = setTimeout(() => void beat(), HEARTBEAT_INTERVAL_MS);
  }

  private stopHeartbeat(): void {
    if (this.heartbeatTimer) clearTimeout(this.heartbeatTimer);
    this.heartbeatTimer = null;
  }

  /** Leave the group so the others rebalance now rather than after the session timeout. */
  private async leave(revoke: boolean): Promise<void> {
    this.stopHeartbeat();
    if (revoke && this.owned.size > 0) {
      const revoked = this.assignment();
      this.owned = new Map();
      try {
        await this.opts.onRevoke?.(revoked);
      } catch (err) {
        this.log.warn({ err }, 'onRevoke failed while the consumer was closing.');
      }
    }
    this.owned = new Map();
    if (!this.memberId) return;
    const memberId = this.memberId;
    this.memberId = '';
    this.generationId = -1;
    try {
      const conn = await this.coordinatorConnection();
      await leaveGroupV5.api.async(conn, this.opts.groupId, [
        { memberId, groupInstanceId: null, reason: 'consumer closed' },
      ]);
    } catch (err) {
      // Unknown member: the group already dropped us. Anything else: the session timeout will.
      if (!hasKafkaError(err, 'UNKNOWN_MEMBER_ID'))
        this.log.warn({ err }, 'Leaving the consumer group failed; the session timeout will remove this member.');
    }
  }

  /** The leader rebalances when a subscribed topic grew, so the new partitions get an owner. */
  private async checkPartitionCounts(): Promise<void> {
    if (!this.assignedFrom || Date.now() - this.lastMetadataCheck < METADATA_CHECK_MS) return;
    this.lastMetadataCheck = Date.now();
    const now = await this.bus.fetchTopics([...this.assignedFrom.keys()]);
    if (now.some((t) => t.partitions !== this.assignedFrom!.get(t.name))) {
      this.log.info('A subscribed topic changed its partition count; rebalancing.');
      this.rejoinNeeded = true;
    }
  }

  private async coordinatorConnection(): Promise<Connection> {
    if (!this.coordinator) {
      try {
        const [found] = await this.bus.client.findCoordinator({
          keyType: FindCoordinatorKeyTypes.GROUP,
          keys: [this.opts.groupId],
        });
        if (!found || found.nodeId < 0) throw ERR_KAFKA_GROUP(this.opts.groupId, 'no coordinator is available yet');
        this.coordinator = { host: found.host, port: found.port };
      } catch (err) {
        if (errorName(err, COORDINATOR_ERRORS)) throw err; // retried by the caller
        throw toBusError(err, `finding the coordinator of group ${this.opts.groupId}`, { ...this.bus.identity });
      }
    }
    return this.groupPool.get(this.coordinator);
  }

  // ---- offsets ----------------------------------------------------------------------------

  private async commitOffsets(offsets: TopicPartitionOffset[], manual: boolean): Promise<void> {
    const byTopic = new Map<
      string,
      { partitionIndex: number; committedOffset: bigint; committedLeaderEpoch: number; committedMetadata: null }[]
    >();
    for (const o of offsets) {
      byTopic.set(o.topic, [
        ...(byTopic.get(o.topic) ?? []),
        { partitionIndex: o.partition, committedOffset: o.offset, committedLeaderEpoch: -1, committedMetadata: null },
      ]);
    }
    const topics = [...byTopic].map(([name, partitions]) => ({ name, partitions }));
    for (let attempt = 0; ; attempt++) {
      try {
        const conn = await this.coordinatorConnection();
        await offsetCommitV9.api.async(conn, this.opts.groupId, this.generationId, this.memberId || null, null, topics);
        return;
      } catch (err) {
        const rejoin = errorName(err, REJOIN_ERRORS);
        if (rejoin) {
          // Our generation is over: the records are redelivered to the next owner (at-least-once).
          this.rejoinNeeded = true;
          if (manual)
            throw ERR_KAFKA_GROUP.withCause(
              err,
              this.opts.groupId,
              `commit refused (${rejoin}); the group is rebalancing`,
            );
          return;
        }
        if ((errorName(err, COORDINATOR_ERRORS) || isNetworkError(err)) && attempt < 5) {
          this.coordinator = null;
          await sleep(RETRY_BACKOFF_MS);
          continue;
        }
        throw toBusError(err, `committing offsets of group ${this.opts.groupId}`, { ...this.bus.identity });
      }
    }
  }

  /** Start positions of newly assigned partitions: the group's commit, else the reset policy. */
  private async resolvePositions(): Promise<void> {
    const unresolved = [...this.owned.values()].filter((o) => o.position === null);
    if (unresolved.length === 0) return;
    const byTopic = new Map<string, number[]>();
    for (const o of unresolved) byTopic.set(o.topic, [...(byTopic.get(o.topic) ?? []), o.partition]);
    const conn = await this.coordinatorConnection();
    const res = await offsetFetchV9.api.async(
      conn,
      [
        {
          groupId: this.opts.groupId,
          memberId: null,
          memberEpoch: -1,
          topics: [...byTopic].map(([name, partitionIndexes]) => ({ name, partitionIndexes })),
        },
      ],
      // requireStable: wait for commits still in flight (e.g. by the previous owner) to land.
      true,
    );
    const missing: Owned[] = [];
    for (const o of unresolved) {
      const c = res.groups[0]?.topics
        .find((t) => t.name === o.topic)
        ?.partitions.find((p) => p.partitionIndex === o.partition);
      if (c && c.committedOffset >= 0n) o.position = c.committedOffset;
      else missing.push(o);
    }
    if (missing.length > 0) await this.resetPositions(missing);
  }

  /** No commit, or the committed offset fell out of the log: earliest (default) or latest. */
  private async resetPositions(parts: Owned[]): Promise<void> {
    const fromBeginning = this.opts.fromBeginning ?? true;
    const byTopic = new Map<string, Owned[]>();
    for (const o of parts) byTopic.set(o.topic, [...(byTopic.get(o.topic) ?? []), o]);
    const res = await this.bus.client.listOffsets({
      topics: [...byTopic].map(([name, os]) => ({
        name,
        partitions: os.map((o) => ({ partitionIndex: o.partition, timestamp: fromBeginning ? -2n : -1n })),
      })),
      isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED,
    });
    for (const t of res) {
      for (const p of t.partitions) {
        const o = byTopic.get(t.name)?.find((x) => x.partition === p.partitionIndex);
        if (o) o.position = p.offset;
      }
    }
  }

  // ---- fetching ---------------------------------------------------------------------------

  /** One fetch round from every leader of our partitions. */
  /** Current positions of the partitions we own and have resolved. */
  private positions(): Map<string, bigint> {
    const out = new Map<string, bigint>();
    for (const [k, o] of this.owned) if (o.position !== null) out.set(k, o.position);
    return out;
  }

  private async fetch(from: Map<string, bigint>): Promise<Fetched[]> {
    const metas = new Map<string, TopicMeta>();
    for (const t of new Set([...this.owned.values()].map((o) => o.topic))) metas.set(t, await this.bus.topic(t));
    const byLeader = new Map<number, Owned[]>();
    for (const [k, o] of this.owned) {
      if (!from.has(k)) continue;
      const leader = metas.get(o.topic)!.leaders[o.partition] ?? -1;
      if (leader < 0) continue;
      byLeader.set(leader, [...(byLeader.get(leader) ?? []), o]);
    }
    if (byLeader.size === 0) {
      await sleep(RETRY_BACKOFF_MS);
      return [];
    }
    const rounds = await Promise.all(
      [...byLeader].map(([leader, parts]) => this.fetchFrom(leader, parts, from, metas)),
    );
    return rounds.flat();
  }

  private async fetchFrom(
    leader: number,
    parts: Owned[],
    from: Map<string, bigint>,
    metas: Map<string, TopicMeta>,
  ): Promise<Fetched[]> {
    const byTopic = new Map<string, Owned[]>();
    for (const o of parts) byTopic.set(o.topic, [...(byTopic.get(o.topic) ?? []), o]);
    const nameById = new Map<string, string>();
    const request = [...byTopic].map(([topic, os]) => {
      const meta = metas.get(topic)!;
      nameById.set(meta.id, topic);
      return {
        topicId: meta.id,
        partitions: os.map((o) => ({
          partition: o.partition,
          currentLeaderEpoch: meta.leaderEpochs[o.partition] ?? -1,
          fetchOffset: from.get(tpKey(o.topic, o.partition))!,
          lastFetchedEpoch: -1,
          partitionMaxBytes: PARTITION_MAX_BYTES,
        })),
      };
    });
    let response: FetchResponse;
    const parse = fetchV17Parser((topicId, partition) => from.get(tpKey(nameById.get(topicId) ?? '', partition)) ?? 0n);
    try {
      const conn = await this.fetchPool.get(await this.bus.broker(leader));
      // READ_UNCOMMITTED: bus producers are not transactional; control batches are skipped.
      // sessionId 0 / epoch -1: a full fetch every time, no incremental fetch session to keep.
      // The answer is decoded by fetch-response.ts, not the client (its decoder cost most of the
      // consumer's CPU, and it cannot read tagged fields).
      response = await new Promise<FetchResponse>((resolve, reject) =>
        conn.send(
          fetchV17.api.key,
          fetchV17.api.version,
          () =>
            fetchV17.createRequest(
              this.fetchWaitMs,
              this.fetchMinBytes,
              FETCH_MAX_BYTES,
              FetchIsolationLevels.READ_UNCOMMITTED,
              0,
              -1,
              request,
              [],
              '',
            ),
          parse,
          true,
          true,
          (err, res) => (err ? reject(err) : resolve(res!)),
        ),
      );
    } catch (err) {
      const partial = responseOf<FetchResponse>(err);
      if (isSecurityFailure(err) && !partial)
        throw toBusError(err, `fetching ${[...byTopic.keys()].join(', ')}`, { ...this.bus.identity });
      if (!partial || !Array.isArray(partial.responses)) {
        // No answer at all (broker restarting, connection lost): refresh metadata and retry.
        if (this.stopping) return [];
        this.metrics.inc('fetch_errors');
        this.log.warn({ err, leader }, 'A fetch failed; retrying.');
        for (const t of byTopic.keys()) this.bus.forgetTopic(t);
        await sleep(RETRY_BACKOFF_MS);
        return [];
      }
      response = partial; // per-partition errors: handled below, the other partitions' data is good
    }
    const out: Fetched[] = [];
    const reset: Owned[] = [];
    for (const t of response.responses) {
      const topic = nameById.get(t.topicId);
      if (topic === undefined) continue;
      for (const p of t.partitions) {
        const key = tpKey(topic, p.partitionIndex);
        const o = this.owned.get(key);
        const start = from.get(key);
        if (!o || start === undefined) continue; // revoked meanwhile
        if (p.errorCode === 1) {
          // OFFSET_OUT_OF_RANGE (retention, or a seek past the end): reset, unless the
          // position moved on since this fetch was sent.
          if (o.position === start) reset.push(o);
          continue;
        }
        // TOPIC_AUTHORIZATION_FAILED: no READ ACL on the topic; fetching again cannot succeed
        if (p.errorCode === 29)
          throw ERR_KAFKA_DENIED(
            `fetching ${topic}`,
            'TOPIC_AUTHORIZATION_FAILED',
            this.bus.identity.user ? `principal "${this.bus.identity.user}"` : 'this client',
          );
        if (p.errorCode !== 0) {
          // Leadership moved or metadata is stale: look again before the next fetch.
          this.bus.forgetTopic(topic);
          continue;
        }
        const records: ConsumedRecord[] = new Array(p.records.length);
        for (let i = 0; i < p.records.length; i++) {
          const r = p.records[i]!;
          records[i] = {
            topic,
            partition: p.partitionIndex,
            offset: r.offset,
            key: r.key,
            value: r.value,
            headers: r.headers,
            timestamp: r.timestamp,
          };
        }
        const next = p.next > start ? p.next : start;
        if (records.length > 0 || next > start)
          out.push({ topic, partition: p.partitionIndex, from: start, records, next });
      }
    }
    if (reset.length > 0) {
      for (const o of reset) o.position = null;
      this.log.warn(
        { partitions: reset.map((o) => `${o.topic}/${o.partition}`) },
        'Fetch offsets were out of range; resetting them by policy.',
      );
      await this.resetPositions(reset);
    }
    return out;
  }

  /** Release the connections; a stopped consumer (closed or failed) cannot run again. */
  private async finish(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.stopHeartbeat();
    this.bus.untrack(this);
    await Promise.allSettled([this.groupPool.close(), this.fetchPool.close()]);
  }
}
