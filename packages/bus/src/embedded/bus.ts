import { EventEmitter } from 'node:events';
import {
  chmodSync,
  closeSync,
  existsSync,
  fchmodSync,
  fstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeSync,
  fsync,
  fsyncSync,
} from 'node:fs';
import { join } from 'node:path';
import { createContext, type Context } from '@cordon/runtime';
import { deadLetter } from '@cordon/schemas';
import {
  ERR_BAD_PARTITION,
  ERR_CLOSED,
  ERR_CORRUPT_LOG,
  ERR_DATA_DIR_LOCKED,
  ERR_NOT_ASSIGNED,
  ERR_UNKNOWN_TOPIC,
} from '../errors.js';
import { partitionForKey } from '../partitioner.js';
import type {
  Admin,
  Batch,
  Bus,
  Consumer,
  ConsumerOptions,
  ConsumedRecord,
  ProduceRecord,
  Producer,
  RecordMetadata,
  TopicInfo,
  TopicPartition,
  TopicPartitionOffset,
  TopicSpec,
} from '../types.js';
import { PartitionLog, type FsyncPolicy, type LogDamage, type StoredRecord } from './log.js';

/**
 * When appends reach the disk. A control topic (every compacted one — policy, blocks,
 * inventory, assignments, agents, state — and `controlTopics`) is fsynced before each send
 * returns: a power loss must not take back a block or a policy that was acknowledged. Data
 * topics (packets, flows, logs…) are fsynced on an interval, on libuv pool threads.
 */
export interface EmbeddedFsyncOptions {
  control?: FsyncPolicy;
  data?: FsyncPolicy;
  /** Topics with the delete policy that are control topics too (agent-commands). */
  controlTopics?: readonly string[];
  /** The `interval` policy's period. Default 1000 ms. */
  intervalMs?: number;
}

export interface EmbeddedBusOptions {
  /** Where topics and committed offsets live; a restart on the same dir resumes. */
  dataDir: string;
  ctx?: Context;
  /** `true`: every batch of every topic; `false`: never (tests); default: see EmbeddedFsyncOptions. */
  fsync?: boolean | EmbeddedFsyncOptions;
  /** Where damaged log bytes are dead-lettered (when the topic exists). Default `cordon.dlq.v1`. */
  dlqTopic?: string;
  /** How often retention and compaction run. Default 60 s. */
  maintenanceIntervalMs?: number;
  /** Tombstones in compacted topics are kept this long so consumers see them. Default 24 h. */
  tombstoneRetentionMs?: number;
}

interface Topic {
  spec: TopicSpec;
  logs: PartitionLog[];
}

interface GroupMember {
  id: number;
  topics: string[];
  onRevoke: (tps: TopicPartition[]) => Promise<void>;
  onAssign: (tps: TopicPartition[]) => Promise<void>;
  assignment: TopicPartition[];
}

interface Group {
  id: string;
  members: GroupMember[];
  committed: Map<string, bigint>; // "topic\0partition" -> next offset
  /** Serialises rebalances so joins and leaves never interleave. */
  rebalancing: Promise<void>;
}

const tpKey = (topic: string, partition: number) => `${topic}\u0000${partition}`;
const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
/** Damaged bytes carried in a dead letter at most (the quarantine file keeps them all). */
const DEAD_LETTER_BYTES = 256 * 1024;

/** A directory only its owner can enter, even when it existed before with looser modes. */
function privateDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: DIR_MODE });
  chmodSync(dir, DIR_MODE);
}
/** Longest delay before an auto-committed offset reaches its group file. */
const AUTO_COMMIT_FLUSH_MS = 100;
/** A group's offset log is rewritten with its newest line past this size. */
const GROUP_LOG_BYTES = 1 << 20;

/** The newest complete snapshot of an offsets log (a torn last line is skipped). */
function lastSnapshot(text: string): Record<string, string> {
  const lines = text.split('\n');
  for (let i = lines.length - 1; i >= 0; i--) {
    if (!lines[i]) continue;
    try {
      return JSON.parse(lines[i]!) as Record<string, string>;
    } catch {
      // torn by a crash mid-write: the line before it holds
    }
  }
  return {};
}

/**
 * The in-process bus: Kafka's semantics (partitions by murmur2 key hash, consumer groups
 * with range assignment and rebalancing on join/leave, committed offsets, compaction,
 * retention) for a single process, persisted under `dataDir/bus` so a restart resumes.
 * One process owns a data dir at a time (a lock file says which).
 */
export class EmbeddedBus implements Bus {
  readonly kind = 'embedded' as const;
  readonly admin: Admin;
  private readonly dir: string;
  private readonly ctx: Context;
  private readonly topics = new Map<string, Topic>();
  private readonly groups = new Map<string, Group>();
  private readonly events = new EventEmitter();
  private readonly consumers = new Set<EmbeddedConsumer>();
  private rr = 0;
  private nextMemberId = 1;
  private closed = false;
  private readonly timer: NodeJS.Timeout;
  private readonly lockFile: string;
  private readonly dirtyGroups = new Set<string>();
  /** Open offset logs of the groups committed to so far. */
  private readonly groupFds = new Map<string, { fd: number; bytes: number }>();
  private flushTimer: NodeJS.Timeout | null = null;
  private readonly syncTimer: NodeJS.Timeout;
  private readonly fsync: Required<EmbeddedFsyncOptions>;
  /** Group offset logs written since their last fsync. */
  private readonly unsyncedGroups = new Set<number>();
  /** The highest committed offset of any group, per partition: no log hands out offsets below it. */
  private readonly floors = new Map<string, bigint>();
  /** Damaged log bytes waiting for the DLQ topic to exist. */
  private readonly quarantined: Array<{ topic: string; partition: number; damage: LogDamage; file: string }> = [];

  constructor(private readonly opts: EmbeddedBusOptions) {
    this.ctx = opts.ctx ?? createContext();
    this.dir = join(opts.dataDir, 'bus');
    for (const d of [this.dir, join(this.dir, 'groups'), join(this.dir, 'topics')]) privateDir(d);
    const f = opts.fsync;
    const all = (p: FsyncPolicy) => ({ control: p, data: p, controlTopics: [], intervalMs: 1000 });
    this.fsync =
      f === true
        ? all('every-batch')
        : f === false
          ? all('never')
          : { control: 'every-batch', data: 'interval', controlTopics: [], intervalMs: 1000, ...f };
    this.lockFile = join(this.dir, 'LOCK');
    this.lock();
    this.events.setMaxListeners(0);
    this.loadFloors();
    this.loadTopics();
    this.admin = this.makeAdmin();
    this.deadLetterQuarantined();
    this.timer = setInterval(() => this.maintain(), opts.maintenanceIntervalMs ?? 60_000);
    this.timer.unref();
    this.syncTimer = setInterval(() => this.syncInBackground(), this.fsync.intervalMs);
    this.syncTimer.unref();
  }

  private lock(): void {
    if (existsSync(this.lockFile)) {
      const pid = Number(readFileSync(this.lockFile, 'utf8').trim());
      let alive = false;
      if (pid > 0 && pid !== process.pid) {
        try {
          process.kill(pid, 0);
          alive = true;
        } catch (err) {
          // EPERM: the process exists, as another user
          alive = (err as NodeJS.ErrnoException).code === 'EPERM';
        }
      }
      if (alive) throw ERR_DATA_DIR_LOCKED(this.dir, pid);
    }
    atomicWrite(this.lockFile, String(process.pid), false);
  }

  /** What every consumer group committed, so that no partition hands out an offset below it again. */
  private loadFloors(): void {
    const groups = join(this.dir, 'groups');
    for (const name of readdirSync(groups)) {
      const file = join(groups, name);
      let data: Record<string, string> = {};
      try {
        if (name.endsWith('.offsets')) data = lastSnapshot(readFileSync(file, 'utf8'));
        else if (name.endsWith('.json')) data = JSON.parse(readFileSync(file, 'utf8')) as Record<string, string>;
      } catch {
        continue; // an unreadable legacy file: the group starts over, as group() does
      }
      for (const [k, v] of Object.entries(data)) {
        const off = BigInt(v);
        if (off > (this.floors.get(k) ?? -1n)) this.floors.set(k, off);
      }
    }
  }

  // ---------------------------------------------------------------- topics

  private topicDir(name: string): string {
    return join(this.dir, 'topics', encodeURIComponent(name));
  }

  private loadTopics(): void {
    const file = join(this.dir, 'topics.json');
    if (!existsSync(file)) return;
    const specs = JSON.parse(readFileSync(file, 'utf8')) as TopicSpec[];
    for (const spec of specs) this.openTopic(spec);
  }

  private saveTopics(): void {
    atomicWrite(
      join(this.dir, 'topics.json'),
      JSON.stringify(
        [...this.topics.values()].map((t) => t.spec),
        null,
        2,
      ),
    );
  }

  private openTopic(spec: TopicSpec): Topic {
    privateDir(this.topicDir(spec.name));
    const topic: Topic = { spec, logs: [] };
    for (let p = 0; p < spec.partitions; p++) topic.logs.push(this.openLog(spec, p));
    this.topics.set(spec.name, topic);
    return topic;
  }

  private policyOf(spec: TopicSpec): FsyncPolicy {
    return spec.cleanupPolicy === 'compact' || this.fsync.controlTopics.includes(spec.name)
      ? this.fsync.control
      : this.fsync.data;
  }

  private openLog(spec: TopicSpec, p: number): PartitionLog {
    const file = join(this.topicDir(spec.name), `${p}.log`);
    const floor = this.floors.get(tpKey(spec.name, p));
    const log = new PartitionLog({
      file,
      fsync: this.policyOf(spec),
      ...(floor !== undefined ? { floor } : {}),
      onDamage: (damage) => this.quarantine(spec.name, p, file, damage),
    });
    log.open();
    return log;
  }

  /**
   * Damaged bytes of a log: kept whole in bus/quarantine/ (owner-only) and dead-lettered to
   * the DLQ topic (the first DEAD_LETTER_BYTES of them), so the loss is seen in the dlq table
   * and the bytes can be looked at; the log itself goes on from the next good record.
   */
  private quarantine(topic: string, partition: number, file: string, damage: LogDamage): void {
    const qdir = join(this.dir, 'quarantine');
    privateDir(qdir);
    const qfile = join(
      qdir,
      `${encodeURIComponent(topic)}-${partition}-at-${damage.position}-${this.ctx.clock.now()}.bin`,
    );
    atomicWrite(qfile, damage.bytes);
    this.ctx.log.error(
      { err: ERR_CORRUPT_LOG(file, `${damage.detail}; kept in ${qfile}`), firstOffset: String(damage.firstOffset) },
      'A partition log was damaged; the damaged bytes were quarantined.',
    );
    this.quarantined.push({ topic, partition, damage, file: qfile });
  }

  /** Dead letters for quarantined bytes, once the DLQ topic exists. */
  private deadLetterQuarantined(): void {
    const dlq = this.opts.dlqTopic ?? 'cordon.dlq.v1';
    if (!this.topics.has(dlq) || this.quarantined.length === 0) return;
    const records = this.quarantined.splice(0).map(({ topic, partition, damage, file }) => {
      const err = ERR_CORRUPT_LOG(
        `${topic}/${partition}`,
        `${damage.detail}; the whole of it is in ${file}${damage.bytes.length > DEAD_LETTER_BYTES ? `, its first ${DEAD_LETTER_BYTES} bytes here` : ''}`,
      );
      const l = deadLetter(
        'bus',
        { topic, partition, offset: damage.firstOffset },
        { key: null, value: damage.bytes.subarray(0, DEAD_LETTER_BYTES) },
        err,
        this.ctx.clock.now() * 1000,
      );
      return { key: l.key, value: l.value };
    });
    // at open, not on a hot path: on disk before the bus is handed out
    for (const m of this.append(dlq, records)) this.topic(dlq).logs[m.partition]!.sync();
  }

  /**
   * The `interval` policy's tick: fsync what was appended or committed since the last one, on
   * libuv pool threads (see PartitionLog.syncInBackground); close() uses syncAll.
   */
  private syncInBackground(): void {
    if (this.closed) return;
    for (const t of this.topics.values()) for (const l of t.logs) l.syncInBackground();
    if (this.fsync.data !== 'never' || this.fsync.control !== 'never')
      for (const fd of this.unsyncedGroups)
        fsync(fd, (err) => {
          // still open and not flushed: the next tick tries again
          if (err && [...this.groupFds.values()].some((h) => h.fd === fd)) this.unsyncedGroups.add(fd);
        });
    this.unsyncedGroups.clear();
  }

  /** fsync what was appended or committed since the last tick, now (closing). */
  private syncAll(): void {
    if (this.closed) return;
    for (const t of this.topics.values()) for (const l of t.logs) l.sync();
    if (this.fsync.data !== 'never' || this.fsync.control !== 'never')
      for (const fd of this.unsyncedGroups) fsyncSync(fd);
    this.unsyncedGroups.clear();
  }

  topic(name: string): Topic {
    const t = this.topics.get(name);
    if (!t) throw ERR_UNKNOWN_TOPIC(name);
    return t;
  }

  private makeAdmin(): Admin {
    return {
      ensureTopics: async (specs) => {
        this.assertOpen('bus');
        for (const spec of specs) {
          const existing = this.topics.get(spec.name);
          if (!existing) this.openTopic({ ...spec });
          else if (spec.partitions > existing.spec.partitions) {
            for (let p = existing.spec.partitions; p < spec.partitions; p++)
              existing.logs.push(this.openLog(existing.spec, p));
            existing.spec.partitions = spec.partitions;
          }
        }
        this.saveTopics();
        this.deadLetterQuarantined();
      },
      listTopics: async (): Promise<TopicInfo[]> =>
        [...this.topics.values()].map((t) => ({ name: t.spec.name, partitions: t.spec.partitions })),
      deleteTopics: async (names) => {
        for (const name of names) {
          const t = this.topics.get(name);
          if (!t) continue;
          for (const log of t.logs) log.close();
          this.topics.delete(name);
          rmSync(this.topicDir(name), { recursive: true, force: true });
        }
        this.saveTopics();
      },
      endOffsets: async (topic) => new Map(this.topic(topic).logs.map((l, p) => [p, l.nextOffset])),
      committedOffsets: async (groupId, topic) => {
        // loaded from disk when this process has not used the group yet
        const g = this.group(groupId);
        const out = new Map<number, bigint>();
        for (const [k, v] of g.committed) {
          const [t, p] = k.split('\u0000');
          if (t === topic) out.set(Number(p), v);
        }
        return out;
      },
    };
  }

  // ---------------------------------------------------------------- produce

  append(topicName: string, records: ProduceRecord[]): RecordMetadata[] {
    this.assertOpen('bus');
    const topic = this.topic(topicName);
    const n = topic.spec.partitions;
    const byPartition = new Map<number, Array<{ i: number; r: Omit<StoredRecord, 'offset'> }>>();
    records.forEach((r, i) => {
      const p = r.partition ?? partitionForKey(r.key, n, () => this.rr++);
      if (p < 0 || p >= n) throw ERR_BAD_PARTITION(topicName, p, n);
      let list = byPartition.get(p);
      if (!list) byPartition.set(p, (list = []));
      list.push({
        i,
        r: { key: r.key, value: r.value, headers: r.headers ?? {}, timestamp: r.timestamp ?? this.ctx.clock.now() },
      });
    });
    const out: RecordMetadata[] = new Array(records.length);
    for (const [p, list] of byPartition) {
      const stored = topic.logs[p]!.append(list.map((x) => x.r));
      stored.forEach((s, j) => (out[list[j]!.i] = { topic: topicName, partition: p, offset: s.offset }));
      this.events.emit(tpKey(topicName, p));
    }
    return out;
  }

  producer(): Producer {
    let closed = false;
    return {
      send: async (topic, records) => {
        if (closed) throw ERR_CLOSED('producer');
        const out = this.append(topic, records);
        // a control topic's send returns once its records are on disk (PartitionLog.durable)
        const logs = this.topic(topic).logs;
        await Promise.all([...new Set(out.map((m) => m.partition))].map((p) => logs[p]!.durable()));
        return out;
      },
      close: async () => {
        closed = true;
      },
    };
  }

  // ---------------------------------------------------------------- groups

  /** Where a group's committed offsets are appended, one JSON snapshot per line. */
  private groupLog(id: string): string {
    return join(this.dir, 'groups', `${encodeURIComponent(id)}.offsets`);
  }

  group(id: string): Group {
    let g = this.groups.get(id);
    if (!g) {
      const committed = new Map<string, bigint>();
      const legacy = join(this.dir, 'groups', `${encodeURIComponent(id)}.json`);
      const data = existsSync(this.groupLog(id))
        ? lastSnapshot(readFileSync(this.groupLog(id), 'utf8'))
        : existsSync(legacy)
          ? (JSON.parse(readFileSync(legacy, 'utf8')) as Record<string, string>)
          : {};
      for (const [k, v] of Object.entries(data)) committed.set(k, BigInt(v));
      g = { id, members: [], committed, rebalancing: Promise.resolve() };
      this.groups.set(id, g);
    }
    return g;
  }

  /**
   * Record a group's offsets. `durable` (an explicit `consumer.commit`) writes them to disk
   * now; the per-batch auto-commit only marks the group, and its file is rewritten at most
   * every AUTO_COMMIT_FLUSH_MS, as Kafka clients auto-commit on an interval: a file rename per
   * consumed batch was a third of the event loop's time on the protection path. A process
   * killed in between re-reads at most that interval's records (at-least-once, as always).
   */
  commit(groupId: string, offsets: TopicPartitionOffset[], durable = true): void {
    const g = this.group(groupId);
    for (const o of offsets) g.committed.set(tpKey(o.topic, o.partition), o.offset);
    if (durable) {
      this.dirtyGroups.delete(groupId);
      this.writeGroup(groupId);
      return;
    }
    this.dirtyGroups.add(groupId);
    if (!this.flushTimer) {
      this.flushTimer = setTimeout(() => this.flushCommits(), AUTO_COMMIT_FLUSH_MS);
      this.flushTimer.unref();
    }
  }

  /** Write every group whose offsets moved since its file was last written. */
  flushCommits(): void {
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = null;
    for (const id of this.dirtyGroups) this.writeGroup(id);
    this.dirtyGroups.clear();
  }

  /**
   * Append the group's offsets as one line: a write, where rewriting and renaming a file per
   * commit cost a third of the event loop. A line torn by a crash is skipped on load (the line
   * before it wins: at-least-once). Past GROUP_LOG_BYTES the file is rewritten with the newest
   * line only. Offsets are fsynced with the data topics' interval: they need not outlive the
   * records they point into.
   */
  private writeGroup(groupId: string): void {
    const data: Record<string, string> = {};
    for (const [k, v] of this.group(groupId).committed) data[k] = v.toString();
    const line = `${JSON.stringify(data)}\n`;
    let h = this.groupFds.get(groupId);
    if (h && h.bytes + line.length > GROUP_LOG_BYTES) {
      this.unsyncedGroups.delete(h.fd);
      closeSync(h.fd);
      this.groupFds.delete(groupId);
      atomicWrite(this.groupLog(groupId), line, this.fsync.data !== 'never');
      h = undefined;
    } else {
      if (!h) {
        const fd = openSync(this.groupLog(groupId), 'a', FILE_MODE);
        fchmodSync(fd, FILE_MODE);
        this.groupFds.set(groupId, (h = { fd, bytes: fstatSync(fd).size }));
      }
      writeSync(h.fd, line);
      h.bytes += line.length;
      this.unsyncedGroups.add(h.fd);
    }
  }

  committed(groupId: string, topic: string, partition: number): bigint | undefined {
    return this.group(groupId).committed.get(tpKey(topic, partition));
  }

  join(groupId: string, member: Omit<GroupMember, 'id' | 'assignment'>): GroupMember {
    const g = this.group(groupId);
    const m: GroupMember = { ...member, id: this.nextMemberId++, assignment: [] };
    g.members.push(m);
    // the rebalance runs behind the group's queue; failures are logged there, and the
    // member's fetch loop simply sees its assignment when it lands
    void this.rebalance(g);
    return m;
  }

  leave(groupId: string, member: GroupMember): Promise<void> {
    const g = this.group(groupId);
    g.members = g.members.filter((x) => x !== member);
    // a member leaving (a stage stopping) leaves its progress on disk
    this.flushCommits();
    return this.rebalance(g, member);
  }

  /**
   * Eager rebalance, as Kafka's classic protocol: every member gives up its partitions
   * (onRevoke, so it can commit or checkpoint), then partitions are range-assigned again.
   */
  private rebalance(g: Group, leaving?: GroupMember): Promise<void> {
    g.rebalancing = g.rebalancing.then(async () => {
      const everyone = leaving ? [...g.members, leaving] : [...g.members];
      await Promise.all(
        everyone.map(async (m) => {
          const old = m.assignment;
          m.assignment = [];
          if (old.length) await m.onRevoke(old);
        }),
      );
      const members = [...g.members].sort((a, b) => a.id - b.id);
      const topics = new Set(members.flatMap((m) => m.topics));
      const next = new Map<GroupMember, TopicPartition[]>(members.map((m) => [m, []]));
      for (const t of [...topics].sort()) {
        const topic = this.topics.get(t);
        if (!topic) continue;
        const subs = members.filter((m) => m.topics.includes(t));
        const n = topic.spec.partitions;
        const per = Math.floor(n / subs.length);
        const extra = n % subs.length;
        let p = 0;
        subs.forEach((m, i) => {
          const count = per + (i < extra ? 1 : 0);
          for (let k = 0; k < count; k++) next.get(m)!.push({ topic: t, partition: p++ });
        });
      }
      await Promise.all(
        members.map(async (m) => {
          m.assignment = next.get(m)!;
          await m.onAssign(m.assignment);
        }),
      );
    });
    g.rebalancing = g.rebalancing.catch((err: unknown) => {
      this.ctx.log.error({ err }, 'A consumer group rebalance callback failed.');
    });
    return g.rebalancing;
  }

  /**
   * Call `fn` on every append to each of `partitions` and on every `wake()`, until the returned
   * function is called. A consumer listens once per assignment, not once per wait.
   */
  listen(partitions: readonly TopicPartition[], fn: () => void): () => void {
    const keys = [...partitions.map((tp) => tpKey(tp.topic, tp.partition)), 'wake'];
    for (const k of keys) this.events.on(k, fn);
    return () => {
      for (const k of keys) this.events.off(k, fn);
    };
  }

  wake(): void {
    this.events.emit('wake');
  }

  consumer(opts: ConsumerOptions): Consumer {
    this.assertOpen('bus');
    const c = new EmbeddedConsumer(this, opts);
    this.consumers.add(c);
    return c;
  }

  forget(c: EmbeddedConsumer): void {
    this.consumers.delete(c);
  }

  // ---------------------------------------------------------------- maintenance

  /** Retention for delete topics, newest-per-key for compacted ones. Runs on a timer and on demand. */
  maintain(now = this.ctx.clock.now()): void {
    if (this.closed) return;
    const tombstoneMs = this.opts.tombstoneRetentionMs ?? 86_400_000;
    for (const topic of this.topics.values()) {
      for (const log of topic.logs) {
        if (topic.spec.cleanupPolicy === 'delete') {
          if (topic.spec.retentionMs < 0) continue;
          const cutoff = now - topic.spec.retentionMs;
          const first = log.records.findIndex((r) => r.timestamp >= cutoff);
          if (first === 0) continue;
          log.replace(first < 0 ? [] : log.records.slice(first));
        } else {
          const newest = new Map<string, bigint>();
          for (const r of log.records) newest.set(r.key ? r.key.toString('base64') : '', r.offset);
          const last = log.records[log.records.length - 1];
          // the newest record always stays (as Kafka never cleans the active segment), so a
          // reader can tell it has reached the end of a compacted partition
          const kept = log.records.filter((r) => {
            if (r === last) return true;
            if (newest.get(r.key ? r.key.toString('base64') : '') !== r.offset) return false;
            return !(r.value === null && r.timestamp < now - tombstoneMs);
          });
          if (kept.length !== log.records.length) log.replace(kept);
        }
      }
    }
  }

  private assertOpen(what: string): void {
    if (this.closed) throw ERR_CLOSED(what);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await Promise.all([...this.consumers].map((c) => c.close()));
    this.flushCommits();
    this.syncAll();
    for (const h of this.groupFds.values()) closeSync(h.fd);
    this.groupFds.clear();
    this.closed = true;
    clearInterval(this.timer);
    clearInterval(this.syncTimer);
    for (const t of this.topics.values()) for (const l of t.logs) l.close();
    rmSync(this.lockFile, { force: true });
  }
}

/** Replace `file` whole (rename): a reader or a restart sees the old content or the new. Owner-only. */
function atomicWrite(file: string, data: string | Buffer, fsync = true): void {
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', FILE_MODE);
  fchmodSync(fd, FILE_MODE);
  writeSync(fd, typeof data === 'string' ? Buffer.from(data) : data);
  if (fsync) fsyncSync(fd);
  closeSync(fd);
  renameSync(tmp, file);
}

class EmbeddedConsumer implements Consumer {
  private member: ReturnType<EmbeddedBus['join']> | null = null;
  private readonly positions = new Map<string, bigint>();
  private owned: TopicPartition[] = [];
  private stopped = false;
  private running: Promise<void> | null = null;
  /** Stops listening to the owned partitions (`listen`). */
  private unlisten: () => void = () => {};
  /** The loop's wait: resolved by the next append to an owned partition or wake (null: not waiting). */
  private resume: (() => void) | null = null;
  /** An append or wake came while the loop was not waiting: its next wait returns at once. */
  private pending = false;
  private readonly notify = (): void => {
    const r = this.resume;
    if (r === null) {
      this.pending = true;
      return;
    }
    this.resume = null;
    r();
  };
  private cursor = 0;

  constructor(
    private readonly bus: EmbeddedBus,
    private readonly opts: ConsumerOptions,
  ) {
    for (const t of opts.topics) bus.topic(t); // unknown topics fail fast
  }

  run(eachBatch: (batch: Batch) => Promise<void>): Promise<void> {
    if (this.running) return this.running;
    if (this.stopped) return Promise.reject(ERR_CLOSED('consumer'));
    this.member = this.bus.join(this.opts.groupId, {
      topics: this.opts.topics,
      onRevoke: async (tps) => {
        this.own([]);
        await this.opts.onRevoke?.(tps);
      },
      onAssign: async (tps) => {
        for (const tp of tps) {
          const committed = this.bus.committed(this.opts.groupId, tp.topic, tp.partition);
          const log = this.bus.topic(tp.topic).logs[tp.partition]!;
          const start = committed ?? ((this.opts.fromBeginning ?? true) ? log.startOffset() : log.nextOffset);
          this.positions.set(tpKey(tp.topic, tp.partition), start);
        }
        this.own(tps);
        await this.opts.onAssign?.(tps);
        this.bus.wake();
      },
    });
    this.own(this.owned);
    this.running = this.loop(eachBatch).finally(() => this.leave());
    return this.running;
  }

  /**
   * These partitions are the consumer's now: their appends (and the bus's wake) end its waits.
   * Not listening once it is closed or has left its group (a revoke while it leaves).
   */
  private own(tps: TopicPartition[]): void {
    this.owned = tps;
    this.unlisten();
    this.unlisten = this.stopped || this.member === null ? () => {} : this.bus.listen(tps, this.notify);
  }

  private async loop(eachBatch: (batch: Batch) => Promise<void>): Promise<void> {
    const max = this.opts.maxBatchRecords ?? 1000;
    while (!this.stopped) {
      const batch = this.nextBatch(max);
      if (!batch) {
        await this.waitAny();
        continue;
      }
      await eachBatch(batch);
      const last = batch.records[batch.records.length - 1]!.offset + 1n;
      const key = tpKey(batch.topic, batch.partition);
      // a seek during eachBatch wins over the natural advance
      if (this.positions.get(key) === batch.records[0]!.offset) this.positions.set(key, last);
      if ((this.opts.autoCommit ?? true) && this.owns(batch.topic, batch.partition)) {
        this.bus.commit(this.opts.groupId, [{ topic: batch.topic, partition: batch.partition, offset: last }], false);
      }
      // let other work (producers, timers) run between batches
      await new Promise<void>((r) => setImmediate(r));
    }
  }

  private nextBatch(max: number): Batch | null {
    const owned = this.owned;
    for (let i = 0; i < owned.length; i++) {
      const tp = owned[(this.cursor + i) % owned.length]!;
      const key = tpKey(tp.topic, tp.partition);
      const pos = this.positions.get(key) ?? 0n;
      const log = this.bus.topic(tp.topic).logs[tp.partition]!;
      if (pos >= log.nextOffset) continue;
      const from = log.indexOf(pos);
      if (from >= log.records.length) continue;
      const slice = log.records.slice(from, from + max);
      this.cursor = (this.cursor + i + 1) % Math.max(owned.length, 1);
      // the slice may start past pos (compaction or retention removed records): move on
      this.positions.set(key, slice[0]!.offset);
      return {
        topic: tp.topic,
        partition: tp.partition,
        records: slice.map((r): ConsumedRecord => ({
          topic: tp.topic,
          partition: tp.partition,
          offset: r.offset,
          key: r.key,
          value: r.value,
          headers: r.headers,
          timestamp: r.timestamp,
        })),
      };
    }
    return null;
  }

  /** Until an owned partition gets a record, or the bus wakes its consumers (an assignment, a seek, a close). */
  private waitAny(): Promise<void> {
    if (this.pending) {
      // something came while the last batch was handled: look again (there may be nothing new)
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => (this.resume = resolve));
  }

  private owns(topic: string, partition: number): boolean {
    return this.owned.some((tp) => tp.topic === topic && tp.partition === partition);
  }

  async commit(offsets: TopicPartitionOffset[]): Promise<void> {
    this.bus.commit(this.opts.groupId, offsets);
  }

  seek(tp: TopicPartitionOffset): void {
    if (!this.owns(tp.topic, tp.partition)) throw ERR_NOT_ASSIGNED(tp.topic, tp.partition);
    this.positions.set(tpKey(tp.topic, tp.partition), tp.offset);
    this.bus.wake();
  }

  assignment(): TopicPartition[] {
    return [...this.owned];
  }

  private async leave(): Promise<void> {
    this.unlisten();
    this.unlisten = () => {};
    if (!this.member) return;
    const m = this.member;
    this.member = null;
    await this.bus.leave(this.opts.groupId, m);
    this.bus.forget(this);
  }

  async close(): Promise<void> {
    this.stopped = true;
    this.notify();
    if (this.running) await this.running.catch(() => undefined);
    else await this.leave();
  }
}

export function createEmbeddedBus(opts: EmbeddedBusOptions): EmbeddedBus {
  return new EmbeddedBus(opts);
}
