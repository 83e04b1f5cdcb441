import type { Bus } from '../types.js';
import { KafkaBus, type KafkaBusOptions } from './bus.js';

export type { KafkaBusOptions } from './bus.js';
export {
  DEFAULT_TUNING,
  resolveTuning,
  topicClass,
  type KafkaTuning,
  type PathTuning,
  type TopicClass,
} from './tuning.js';
export {
  loadKafkaClientConfig,
  parseClientProperties,
  clientConfigFrom,
  type KafkaClientConfig,
  type KafkaSecurity,
  type SaslMechanism,
} from './client-config.js';

/** A bus on Apache Kafka brokers (`cordon run <service>`; tests: infra/kafka/start.sh). */
export function createKafkaBus(opts: KafkaBusOptions): Bus {
  return new KafkaBus(opts);
}
