import { isAbsolute, join } from 'node:path';
import { z } from 'zod';

/**
 * The control endpoint of a running `cordon up`: HTTP/1.1 over a unix socket in the data dir,
 * so that `cordon query`, `policy apply`, `blocks list`, … from another terminal work on the
 * data of the instance that runs (which alone may open the embedded bus and ClickHouse).
 *
 *   GET  /v1/status        → 200 {"pid","state":"starting"|"ready"|"stopping","dataDir","version"}
 *   POST /v1/op/<name>     body: one JSON object, validated by the operation's schema (strict)
 *                          → 200, application/x-ndjson: zero or more event lines
 *                            ({"row":…}, {"block":…}, {"alert":…}, {"progress":…}),
 *                            then exactly one {"done":…} or {"error":{"code","message"}}
 *   anything else          → 4xx/5xx with {"error":{"code","message"}}
 *
 * Refused before the operation runs: a body over MAX_REQUEST_BYTES (413), a body that is not
 * JSON or does not match the schema (400), an unknown path (404), a wrong method (405), an
 * instance still starting or stopping (503: the client waits and asks again).
 */

export const CONTROL_SOCKET = 'control.sock';
export const controlSocketPath = (dataDir: string): string => join(dataDir, CONTROL_SOCKET);
export const PROTOCOL_PREFIX = '/v1';

/** The largest request body accepted: far above any real request (the largest is a query's SQL). */
export const MAX_REQUEST_BYTES = 1 << 20;
/** ClickHouse's own max_query_size default. */
export const MAX_SQL_BYTES = 256 * 1024;

export type InstanceState = 'starting' | 'ready' | 'stopping';

export interface StatusReply {
  pid: number;
  state: InstanceState;
  dataDir: string;
  version: string;
  startedAt: string;
}

const absPath = z.string().min(1).max(4096).refine(isAbsolute, 'must be an absolute path');
const name = z.string().min(1).max(256);

/** Every operation's input, validated on both sides (the client builds it, the instance checks it). */
export const OP_INPUTS = {
  query: z.object({ sql: z.string().min(1).max(MAX_SQL_BYTES) }).strict(),
  'policy-apply': z.object({ file: absPath, dryRun: z.boolean(), by: name }).strict(),
  'inventory-apply': z.object({ file: absPath, dryRun: z.boolean(), prune: z.boolean() }).strict(),
  replay: z
    .object({
      pcap: absPath,
      sensor: name.optional(),
      vm: name.optional(),
      batch: z.number().int().min(1).max(65536).optional(),
    })
    .strict(),
  'blocks-list': z.object({ all: z.boolean() }).strict(),
  'blocks-lift': z
    .object({ target: name, enforcer: name.optional(), reason: z.string().max(1024).optional(), by: name })
    .strict(),
  'alerts-tail': z.object({ sinceMs: z.number().int().min(0), follow: z.boolean() }).strict(),
  'records-tail': z
    .object({
      topics: z.array(z.enum(['cordon.alerts.v1', 'cordon.flows.v1', 'cordon.fim.v1', 'cordon.audit.v1'])).min(1),
      sinceMs: z.number().int().min(0).nullable(),
      follow: z.boolean(),
    })
    .strict(),
  'inventory-list': z.object({}).strict(),
  assignments: z.object({ vm: name, history: z.boolean() }).strict(),
  'recommend-show': z.object({ vm: name, ruleSet: name.optional() }).strict(),
  evidence: z
    .object({
      alertId: z.string().min(1).max(128),
      beforeS: z.number().min(0).max(86_400),
      afterS: z.number().min(0).max(86_400),
    })
    .strict(),
  'users-add': z
    .object({ name, role: name, password: z.string().min(1).max(1024), groups: z.array(name).max(100), by: name })
    .strict(),
} as const;

export type OpName = keyof typeof OP_INPUTS;
export type OpInput<N extends OpName> = z.infer<(typeof OP_INPUTS)[N]>;
export const OP_NAMES = Object.keys(OP_INPUTS) as OpName[];

/** One line of an operation's response. */
export type OpEvent =
  | { row: Record<string, unknown> }
  | { block: Record<string, unknown> }
  | { alert: Record<string, unknown> }
  | { record: { topic: string; published: number; value: Record<string, unknown> } }
  | { frame: { ts_us: number; linktype: number; base64: string } }
  | { progress: { done: number; total?: number; unit: string } }
  | { done: unknown }
  | { error: { code: string; message: string } };
