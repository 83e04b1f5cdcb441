/**
 * Turns @platformatic/kafka errors into the bus's stable errors. The client reports broker
 * error codes as nested ProtocolErrors carrying `apiId` (e.g. 'REBALANCE_IN_PROGRESS').
 */
import { CordonError } from '@cordon/runtime';
import { ERR_KAFKA, ERR_KAFKA_UNREACHABLE, ERR_UNKNOWN_TOPIC } from '../errors.js';

interface FindableError {
  findBy?: (property: string, value: unknown) => unknown;
  code?: string;
  message?: string;
  response?: unknown;
}

/** True if the broker answered with the error `apiId` (Kafka's error name) anywhere in `err`. */
export function hasKafkaError(err: unknown, apiId: string): boolean {
  const e = err as FindableError | null;
  return Boolean(e && typeof e.findBy === 'function' && e.findBy('apiId', apiId));
}

/** The decoded response a ResponseError carries (the client throws on any error code in it). */
export function responseOf<T>(err: unknown): T | undefined {
  return (err as FindableError | null)?.response as T | undefined;
}

/** The client reports a missing topic in metadata as a plain UserError ("Unknown topic x."). */
export function isUnknownTopic(err: unknown): boolean {
  return hasKafkaError(err, 'UNKNOWN_TOPIC_OR_PARTITION') || /^Unknown topic /.test((err as Error | null)?.message ?? '');
}

export function isNetworkError(err: unknown): boolean {
  const e = err as FindableError | null;
  if (!e) return false;
  if (e.code === 'PLT_KFK_NETWORK' || e.code === 'PLT_KFK_TIMEOUT') return true;
  if (typeof e.findBy === 'function' && (e.findBy('code', 'PLT_KFK_NETWORK') || e.findBy('code', 'ECONNREFUSED'))) return true;
  return false;
}

/** Map any failure of `what` to a CordonError with a stable code, keeping the cause. */
export function toBusError(err: unknown, what: string, ctx: { brokers: string[]; topic?: string }): CordonError {
  if (err instanceof CordonError) return err;
  if (ctx.topic !== undefined && isUnknownTopic(err)) return ERR_UNKNOWN_TOPIC.withCause(err, ctx.topic);
  if (isNetworkError(err)) return ERR_KAFKA_UNREACHABLE.withCause(err, ctx.brokers.join(','));
  const detail = (err as Error)?.message ?? String(err);
  return ERR_KAFKA.withCause(err, `${what}: ${detail}`);
}
