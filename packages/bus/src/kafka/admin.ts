import { FetchIsolationLevels } from '@platformatic/kafka';
import type { Admin, TopicInfo, TopicSpec } from '../types.js';
import { ERR_KAFKA } from '../errors.js';
import type { KafkaBus } from './bus.js';
import { hasKafkaError, toBusError } from './errors.js';

/** How long ensureTopics waits for new topics to have a leader for every partition. */
const TOPIC_READY_TIMEOUT_MS = 15_000;

export class KafkaAdminImpl implements Admin {
  constructor(private readonly bus: KafkaBus) {}

  async ensureTopics(specs: TopicSpec[]): Promise<void> {
    const existing = new Map((await this.bus.fetchTopics(specs.map((s) => s.name))).map((t) => [t.name, t]));
    const client = this.bus.client;
    for (const spec of specs) {
      const have = existing.get(spec.name);
      const ctx = { ...this.bus.identity, topic: spec.name };
      if (have) {
        if (have.partitions < spec.partitions) {
          try {
            await client.createPartitions({
              topics: [{ name: spec.name, count: spec.partitions }],
            });
          } catch (err) {
            throw toBusError(err, `growing topic ${spec.name} to ${spec.partitions} partitions`, ctx);
          }
          this.bus.ctx.log.info(
            { topic: spec.name, from: have.partitions, to: spec.partitions },
            'Grew the partitions of a topic.',
          );
        }
        continue;
      }
      try {
        await client.createTopics({
          topics: [spec.name],
          partitions: spec.partitions,
          // -1: the broker's default.replication.factor, so one spec fits a 1-node lab and a cluster.
          replicas: -1,
          configs: [
            { name: 'cleanup.policy', value: spec.cleanupPolicy },
            { name: 'retention.ms', value: String(spec.retentionMs) },
          ],
        });
        this.bus.ctx.log.info(
          { topic: spec.name, partitions: spec.partitions, cleanupPolicy: spec.cleanupPolicy },
          'Created a topic.',
        );
      } catch (err) {
        // Another process may have created it between our look and our create: that is fine.
        if (!hasKafkaError(err, 'TOPIC_ALREADY_EXISTS')) throw toBusError(err, `creating topic ${spec.name}`, ctx);
      }
    }
    await this.waitReady(specs);
  }

  async listTopics(): Promise<TopicInfo[]> {
    let names: string[];
    try {
      names = await this.bus.client.listTopics({ includeInternals: false });
    } catch (err) {
      throw toBusError(err, 'listing topics', { ...this.bus.identity });
    }
    const metas = await this.bus.fetchTopics(names);
    return metas.map((m) => ({ name: m.name, partitions: m.partitions })).sort((a, b) => a.name.localeCompare(b.name));
  }

  async deleteTopics(names: string[]): Promise<void> {
    const present = (await this.bus.fetchTopics(names)).map((t) => t.name);
    for (const n of names) this.bus.forgetTopic(n);
    if (present.length === 0) return;
    try {
      await this.bus.client.deleteTopics({ topics: present });
    } catch (err) {
      if (!hasKafkaError(err, 'UNKNOWN_TOPIC_OR_PARTITION'))
        throw toBusError(err, `deleting topics ${present.join(', ')}`, { ...this.bus.identity });
    }
  }

  async endOffsets(topic: string): Promise<Map<number, bigint>> {
    const meta = await this.bus.topic(topic);
    try {
      const res = await this.bus.client.listOffsets({
        // -1 = LATEST: the high watermark, i.e. the next offset to be written (all acks=all writes are below it).
        topics: [
          {
            name: topic,
            partitions: Array.from({ length: meta.partitions }, (_, p) => ({ partitionIndex: p, timestamp: -1n })),
          },
        ],
        isolationLevel: FetchIsolationLevels.READ_UNCOMMITTED,
      });
      const out = new Map<number, bigint>();
      for (const t of res) for (const p of t.partitions) out.set(p.partitionIndex, p.offset);
      return new Map([...out].sort(([a], [b]) => a - b));
    } catch (err) {
      throw toBusError(err, `listing end offsets of ${topic}`, { ...this.bus.identity, topic });
    }
  }

  async committedOffsets(groupId: string, topic: string): Promise<Map<number, bigint>> {
    const meta = await this.bus.topic(topic);
    try {
      const res = await this.bus.client.listConsumerGroupOffsets({
        groups: [
          {
            groupId,
            topics: [{ name: topic, partitionIndexes: Array.from({ length: meta.partitions }, (_, p) => p) }],
          },
        ],
      });
      const out = new Map<number, bigint>();
      for (const g of res) {
        for (const t of g.topics) {
          if (t.name !== topic) continue;
          // -1 = no commit for that partition.
          for (const p of t.partitions) if (p.committedOffset >= 0n) out.set(p.partitionIndex, p.committedOffset);
        }
      }
      return new Map([...out].sort(([a], [b]) => a - b));
    } catch (err) {
      throw toBusError(err, `listing committed offsets of group ${groupId}`, { ...this.bus.identity, topic });
    }
  }

  /** Topic creation is asynchronous in KRaft: wait until every partition has a leader. */
  private async waitReady(specs: TopicSpec[]): Promise<void> {
    const deadline = Date.now() + TOPIC_READY_TIMEOUT_MS;
    let pending = specs;
    for (;;) {
      const metas = new Map((await this.bus.fetchTopics(pending.map((s) => s.name))).map((m) => [m.name, m]));
      pending = pending.filter((s) => {
        const m = metas.get(s.name);
        return !m || m.partitions < s.partitions || m.leaders.some((l) => l < 0);
      });
      if (pending.length === 0) return;
      if (Date.now() > deadline) {
        throw ERR_KAFKA(
          `topics ${pending.map((s) => s.name).join(', ')} were created but have no leader after ${TOPIC_READY_TIMEOUT_MS} ms`,
        );
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
