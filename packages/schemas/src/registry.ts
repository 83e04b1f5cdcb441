import { AVRO_SCHEMAS, PREVIOUS_SCHEMAS, TOPIC_MANIFEST, type TopicName } from './generated.js';

/**
 * Cordon's schemas as a Confluent-compatible schema registry sees them: one subject per topic
 * under TopicNameStrategy (`<topic>-value`), its versions in the order they were introduced
 * (the manifest's previous ids first, the current one last), each with its permanent id — the
 * id every record carries after its magic byte. `cordon schemas serve` answers the registry's
 * read API from this, and `cordon schemas register` writes it into an external registry.
 */
export interface RegistryVersion {
  subject: string;
  version: number;
  id: number;
  /** The Avro schema as JSON text, as a registry returns it. */
  schema: string;
}

export const subjectOf = (topic: string): string => `${topic}-value`;

export function registryVersions(): RegistryVersion[] {
  const out: RegistryVersion[] = [];
  for (const topic of Object.keys(TOPIC_MANIFEST) as TopicName[]) {
    const e = TOPIC_MANIFEST[topic];
    const ids = [...(e.previous ?? [])].sort((a, b) => a - b);
    ids.forEach((id, i) =>
      out.push({ subject: subjectOf(topic), version: i + 1, id, schema: JSON.stringify(PREVIOUS_SCHEMAS[id]) }),
    );
    out.push({
      subject: subjectOf(topic),
      version: ids.length + 1,
      id: e.id,
      schema: JSON.stringify(AVRO_SCHEMAS[e.schema]),
    });
  }
  return out;
}
