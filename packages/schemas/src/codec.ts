import avro from 'avsc';
import {
  AVRO_SCHEMAS,
  PREVIOUS_SCHEMAS,
  TOPIC_MANIFEST,
  type TopicInputs,
  type TopicName,
  type TopicValues,
} from './generated.js';
import { ERR_DECODE, ERR_ENCODE, ERR_UNKNOWN_SCHEMA_ID, ERR_WIRE_FORMAT } from './errors.js';

/**
 * Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body.
 * Standard Kafka tooling (schema-registry-aware consumers) can decode these records given
 * the ids from schemas/manifest.json.
 */
const MAGIC = 0;
const HEADER = 5;

const types = new Map<string, avro.Type>();
function typeOf(schema: keyof typeof AVRO_SCHEMAS): avro.Type {
  let t = types.get(schema);
  if (!t) {
    t = avro.Type.forSchema(AVRO_SCHEMAS[schema] as unknown as avro.Schema);
    types.set(schema, t);
  }
  return t;
}

/** `T` as decoded (every field); `I` as a producer may write it (fields added since the previous version optional). */
export interface TopicCodec<T, I = T> {
  readonly topic: string;
  readonly schemaId: number;
  encode(value: I): Buffer;
  /** Throws a CordonError (never anything else) for bytes that are not a valid record. */
  decode(buf: Buffer): T;
}

const codecs = new Map<string, TopicCodec<unknown>>();

export function codecFor<N extends TopicName>(topic: N): TopicCodec<TopicValues[N], TopicInputs[N]> {
  let c = codecs.get(topic);
  if (!c) {
    const entry = TOPIC_MANIFEST[topic];
    const type = typeOf(entry.schema);
    const id = entry.id;
    // records written with an earlier version of the schema: resolved into the current one
    const older = new Map<number, avro.Resolver>();
    for (const prev of entry.previous ?? [])
      older.set(prev, type.createResolver(avro.Type.forSchema(PREVIOUS_SCHEMAS[prev] as avro.Schema)));
    c = {
      topic,
      schemaId: id,
      encode(value: unknown): Buffer {
        let body: Buffer;
        try {
          body = type.toBuffer(value);
        } catch (err) {
          throw ERR_ENCODE.withCause(err, entry.schema, (err as Error).message);
        }
        const header = Buffer.allocUnsafe(HEADER);
        header.writeUInt8(MAGIC, 0);
        header.writeUInt32BE(id, 1);
        return Buffer.concat([header, body]);
      },
      decode(buf: Buffer): unknown {
        if (!Buffer.isBuffer(buf) || buf.length < HEADER) throw ERR_WIRE_FORMAT(`only ${buf?.length ?? 0} bytes`);
        if (buf[0] !== MAGIC) throw ERR_WIRE_FORMAT(`magic byte is ${buf[0]}, not 0`);
        const got = buf.readUInt32BE(1);
        let resolver: avro.Resolver | undefined;
        if (got !== id) {
          resolver = older.get(got);
          if (!resolver) throw ERR_UNKNOWN_SCHEMA_ID(got, id);
        }
        try {
          return resolver ? type.fromBuffer(buf.subarray(HEADER), resolver) : type.fromBuffer(buf.subarray(HEADER));
        } catch (err) {
          throw ERR_DECODE.withCause(err, entry.schema, (err as Error).message);
        }
      },
    };
    codecs.set(topic, c);
  }
  return c as TopicCodec<TopicValues[N], TopicInputs[N]>;
}

/** Validate a value against its topic's schema without encoding; returns the paths that fail. */
export function invalidPaths<N extends TopicName>(topic: N, value: unknown): string[] {
  const paths: string[] = [];
  typeOf(TOPIC_MANIFEST[topic].schema).isValid(value, { errorHook: (p) => paths.push(p.join('.')) });
  return paths;
}

/** A record as a consumer would decode it: what a producer wrote, with the defaults Avro fills in. */
export function complete<N extends TopicName>(topic: N, value: TopicInputs[N]): TopicValues[N] {
  const c = codecFor(topic);
  return c.decode(c.encode(value));
}
