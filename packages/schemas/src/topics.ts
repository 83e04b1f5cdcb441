import { TOPIC_MANIFEST, type TopicName } from './generated.js';

export interface TopicProvision {
  name: TopicName;
  partitions: number;
  cleanupPolicy: 'delete' | 'compact';
  retentionMs: number;
}

/** Every Cordon topic as it should be provisioned (`cordon topics apply`). */
export function allTopicSpecs(overrides: { partitions?: Partial<Record<TopicName, number>> } = {}): TopicProvision[] {
  return (Object.keys(TOPIC_MANIFEST) as TopicName[]).map((name) => ({
    name,
    partitions: overrides.partitions?.[name] ?? TOPIC_MANIFEST[name].partitions,
    cleanupPolicy: TOPIC_MANIFEST[name].cleanup,
    retentionMs: TOPIC_MANIFEST[name].retentionMs,
  }));
}
