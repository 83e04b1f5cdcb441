import type { z } from 'zod';
import { zodToJsonSchema } from 'zod-to-json-schema';
import { AVRO_SCHEMAS as SCHEMAS } from '@cordon/schemas';

/**
 * JSON Schema for routes, from the sources that already define the shapes — zod (config,
 * documents, requests) and Avro (records served as they are on the topics) — never a second
 * hand-written copy. Fastify validates requests with it and serializes answers with it, so
 * a field no response schema names cannot leak into an answer.
 */
export type JsonSchema = Record<string, unknown>;

export function fromZod(schema: z.ZodTypeAny): JsonSchema {
  const out = zodToJsonSchema(schema, {
    target: 'jsonSchema7',
    $refStrategy: 'none',
    removeAdditionalStrategy: 'strict',
  }) as JsonSchema;
  delete out.$schema;
  return out;
}

type Avro =
  | string
  | Avro[]
  | {
      type: string;
      name?: string;
      fields?: Array<{ name: string; type: Avro; doc?: string }>;
      symbols?: string[];
      items?: Avro;
      values?: Avro;
      doc?: string;
    };

/** A JSON Schema for the JSON form of an Avro schema (bytes as base64 strings, longs as numbers). */
export function fromAvro(name: keyof typeof SCHEMAS, opts: { omit?: string[] } = {}): JsonSchema {
  const s = SCHEMAS[name] as unknown as Avro;
  const omit = new Set(opts.omit ?? []);
  const conv = (t: Avro): JsonSchema => {
    if (typeof t === 'string') {
      switch (t) {
        case 'null':
          return { type: 'null' };
        case 'boolean':
          return { type: 'boolean' };
        case 'int':
        case 'long':
          return { type: 'integer' };
        case 'float':
        case 'double':
          return { type: 'number' };
        default:
          return { type: 'string' };
      }
    }
    if (Array.isArray(t)) {
      const rest = t.filter((x) => x !== 'null');
      if (rest.length === 1 && rest.length < t.length && typeof rest[0] === 'string')
        return { type: [conv(rest[0]).type, 'null'] };
      return { anyOf: t.map(conv) };
    }
    switch (t.type) {
      case 'record':
        return {
          type: 'object',
          ...(t.doc ? { description: t.doc } : {}),
          properties: Object.fromEntries(
            (t.fields ?? [])
              .filter((f) => t !== s || !omit.has(f.name))
              .map((f) => [f.name, { ...conv(f.type), ...(f.doc ? { description: f.doc } : {}) }]),
          ),
          required: (t.fields ?? []).filter((f) => t !== s || !omit.has(f.name)).map((f) => f.name),
          additionalProperties: false,
        };
      case 'enum':
        return { type: 'string', enum: t.symbols };
      case 'array':
        return { type: 'array', items: conv(t.items!) };
      case 'map':
        return { type: 'object', additionalProperties: conv(t.values!) };
      default:
        return conv(t.type as Avro);
    }
  };
  return conv(s);
}
