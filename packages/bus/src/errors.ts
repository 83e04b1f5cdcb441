import { defineError } from '@cordon/runtime';

export const ERR_UNKNOWN_TOPIC = defineError(
  'CORDON_ERR_BUS_UNKNOWN_TOPIC',
  (topic: string) => `topic "${topic}" does not exist; run "cordon topics apply" to create every topic`,
);
export const ERR_BAD_PARTITION = defineError(
  'CORDON_ERR_BUS_BAD_PARTITION',
  (topic: string, partition: number, count: number) =>
    `partition ${partition} of topic "${topic}" does not exist (it has ${count})`,
);
export const ERR_CLOSED = defineError('CORDON_ERR_BUS_CLOSED', (what: string) => `${what} is closed; create a new one`);
export const ERR_NOT_ASSIGNED = defineError(
  'CORDON_ERR_BUS_NOT_ASSIGNED',
  (topic: string, partition: number) => `partition ${topic}/${partition} is not assigned to this consumer`,
);
export const ERR_CORRUPT_LOG = defineError(
  'CORDON_ERR_BUS_CORRUPT_LOG',
  (file: string, detail: string) =>
    `embedded bus log ${file} is corrupt (${detail}); the tail after the last good record was truncated`,
);
export const ERR_KAFKA = defineError('CORDON_ERR_BUS_KAFKA', (detail: string) => `Kafka request failed: ${detail}`);
export const ERR_DATA_DIR_LOCKED = defineError(
  'CORDON_ERR_BUS_DATA_DIR_LOCKED',
  (dir: string, pid: number) =>
    `embedded bus data dir ${dir} is in use by process ${pid} (a running "cordon up" or "cordon run"?), and one process ` +
    `at a time may open it. Commands such as "cordon query" and "cordon policy apply" go through that process when it ` +
    `runs "cordon up"; otherwise stop process ${pid} (kill -INT ${pid}) or use another --data-dir`,
);
export const ERR_KAFKA_UNREACHABLE = defineError(
  'CORDON_ERR_BUS_KAFKA_UNREACHABLE',
  (brokers: string) =>
    `cannot reach the Kafka brokers ${brokers}; check that Kafka is running there (for tests: infra/kafka/start.sh) and that KAFKA_BROKERS names it`,
);
export const ERR_KAFKA_GROUP = defineError(
  'CORDON_ERR_BUS_KAFKA_GROUP',
  (groupId: string, detail: string) => `consumer group "${groupId}" could not be joined or kept: ${detail}`,
);
export const ERR_KAFKA_CLIENT_CONFIG = defineError(
  'CORDON_ERR_BUS_KAFKA_CLIENT_CONFIG',
  (file: string, detail: string) => `Kafka client configuration ${file} cannot be used: ${detail}`,
);
export const ERR_KAFKA_AUTH = defineError(
  'CORDON_ERR_BUS_KAFKA_AUTH',
  (brokers: string, who: string) =>
    `the Kafka brokers ${brokers} refused to authenticate ${who}; check sasl.username, sasl.password and sasl.mechanisms in the client configuration (kafka.clientConfig, CORDON_KAFKA_CLIENT_CONFIG)`,
);
export const ERR_KAFKA_DENIED = defineError(
  'CORDON_ERR_BUS_KAFKA_DENIED',
  (what: string, apiId: string, who: string) =>
    `the Kafka brokers refused ${what} to ${who} (${apiId}): its ACLs do not allow it. A stage's principal is allowed what its module declares (inputs, reads, outputs; infra/kafka/acls.txt, docs/security.md)`,
);
export const ERR_KAFKA_TLS = defineError(
  'CORDON_ERR_BUS_KAFKA_TLS',
  (brokers: string, detail: string) =>
    `TLS to the Kafka brokers ${brokers} failed: ${detail}; check ssl.ca.location in the client configuration (the CA that signed the brokers' certificates) and that they speak TLS`,
);
export const ERR_KAFKA_TUNING = defineError(
  'CORDON_ERR_BUS_KAFKA_TUNING',
  (detail: string) => `Kafka bus tuning (bus.tuning) cannot be used: ${detail}`,
);
