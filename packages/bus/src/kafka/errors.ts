/**
 * Turns @platformatic/kafka errors into the bus's stable errors. The client reports broker
 * error codes as nested ProtocolErrors carrying `apiId` (e.g. 'REBALANCE_IN_PROGRESS').
 */
import { CordonError } from '@cordon/runtime';
import {
  ERR_KAFKA,
  ERR_KAFKA_AUTH,
  ERR_KAFKA_DENIED,
  ERR_KAFKA_TLS,
  ERR_KAFKA_UNREACHABLE,
  ERR_UNKNOWN_TOPIC,
} from '../errors.js';

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
  return (
    hasKafkaError(err, 'UNKNOWN_TOPIC_OR_PARTITION') || /^Unknown topic /.test((err as Error | null)?.message ?? '')
  );
}

export function isNetworkError(err: unknown): boolean {
  const e = err as FindableError | null;
  if (!e) return false;
  // a refused login arrives as a NetworkError, but trying again cannot succeed
  if (isSecurityFailure(err)) return false;
  if (e.code === 'PLT_KFK_NETWORK' || e.code === 'PLT_KFK_TIMEOUT') return true;
  if (typeof e.findBy === 'function' && (e.findBy('code', 'PLT_KFK_NETWORK') || e.findBy('code', 'ECONNREFUSED')))
    return true;
  return false;
}

/**
 * How long a client keeps trying while the cluster does not answer (a broker restarting, a
 * leader or coordinator moving) before it gives up with the error: the producer for a send,
 * the consumer for its rounds. Kafka's own producer waits delivery.timeout.ms (120 s).
 */
export const UNAVAILABLE_BUDGET_MS = 60_000;

/** Partition answers that mean "not now": a leader moving, too few replicas in sync, a slow disk. */
export const PARTITION_UNAVAILABLE_ERRORS: readonly string[] = [
  'NOT_LEADER_OR_FOLLOWER',
  'LEADER_NOT_AVAILABLE',
  'REQUEST_TIMED_OUT',
  'NOT_ENOUGH_REPLICAS',
  'NOT_ENOUGH_REPLICAS_AFTER_APPEND',
  'NETWORK_EXCEPTION',
  'KAFKA_STORAGE_ERROR',
  'FENCED_LEADER_EPOCH',
  'UNKNOWN_LEADER_EPOCH',
];
/** …and the group coordinator moving. */
const UNAVAILABLE_API_ERRORS = new Set([
  ...PARTITION_UNAVAILABLE_ERRORS,
  'NOT_COORDINATOR',
  'COORDINATOR_NOT_AVAILABLE',
  'COORDINATOR_LOAD_IN_PROGRESS',
]);
const UNAVAILABLE_CODES = new Set([
  'PLT_KFK_NETWORK',
  'PLT_KFK_TIMEOUT',
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
]);

/**
 * The cluster is (for now) not there: no connection, a broker restarting, a leader or group
 * coordinator moving — anywhere in `err`'s tree, including a bus error that wraps one
 * (ERR_KAFKA_UNREACHABLE). Waiting can cure it; a security failure never is this.
 */
export function isUnavailable(err: unknown): boolean {
  if (isSecurityFailure(err)) return false;
  return Boolean(
    findError(
      err,
      (e) =>
        (typeof e.code === 'string' && (UNAVAILABLE_CODES.has(e.code) || e.code === ERR_KAFKA_UNREACHABLE.code)) ||
        (typeof e.apiId === 'string' && UNAVAILABLE_API_ERRORS.has(e.apiId)),
    ),
  );
}

/**
 * The first error in `err`'s tree — its aggregated `errors` and its `cause` chain, which the
 * client's findBy does not follow (an authentication failure arrives as a NetworkError whose
 * cause is the AuthenticationError) — that `match` accepts.
 */
export function findError(
  err: unknown,
  match: (e: Record<string, unknown>) => boolean,
  depth = 0,
): Record<string, unknown> | null {
  if (!err || typeof err !== 'object' || depth > 8) return null;
  const e = err as Record<string, unknown>;
  if (match(e)) return e;
  for (const inner of Array.isArray(e.errors) ? e.errors : []) {
    const found = findError(inner, match, depth + 1);
    if (found) return found;
  }
  return findError(e.cause, match, depth + 1);
}

/** The broker refused for want of an ACL: TOPIC_/GROUP_/CLUSTER_/TRANSACTIONAL_ID_AUTHORIZATION_FAILED. */
export function authorizationFailure(err: unknown): string | null {
  const found = findError(err, (e) => typeof e.apiId === 'string' && e.apiId.endsWith('_AUTHORIZATION_FAILED'));
  return (found?.apiId as string | undefined) ?? null;
}

/** Refused credentials, a missing ACL or a failed TLS handshake: retrying cannot help. */
export function isSecurityFailure(err: unknown): boolean {
  return Boolean(
    findError(
      err,
      (e) =>
        e.code === 'PLT_KFK_AUTHENTICATION' ||
        e.apiId === 'SASL_AUTHENTICATION_FAILED' ||
        e.apiId === 'UNSUPPORTED_SASL_MECHANISM',
    ) ||
    authorizationFailure(err) ||
    findError(err, (e) => typeof e.code === 'string' && TLS_CODES.test(e.code)),
  );
}

const TLS_CODES =
  /^(ERR_TLS_|ERR_SSL_|UNABLE_TO_|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|CERT_|HOSTNAME_MISMATCH)/;

/** Who the bus authenticates as, for messages. */
export interface BusIdentity {
  brokers: string[];
  topic?: string;
  /** The SASL user, when there is one. */
  user?: string;
}

/** Map any failure of `what` to a CordonError with a stable code, keeping the cause. */
export function toBusError(err: unknown, what: string, ctx: BusIdentity): CordonError {
  if (err instanceof CordonError) return err;
  const who = ctx.user ? `principal "${ctx.user}"` : 'this client (no SASL user: is a client configuration missing?)';
  if (
    findError(
      err,
      (e) =>
        e.code === 'PLT_KFK_AUTHENTICATION' ||
        e.apiId === 'SASL_AUTHENTICATION_FAILED' ||
        e.apiId === 'UNSUPPORTED_SASL_MECHANISM',
    )
  ) {
    return ERR_KAFKA_AUTH.withCause(err, ctx.brokers.join(','), who);
  }
  const denied = authorizationFailure(err);
  if (denied) return ERR_KAFKA_DENIED.withCause(err, ctx.topic ? `${what} (topic ${ctx.topic})` : what, denied, who);
  if (ctx.topic !== undefined && isUnknownTopic(err)) return ERR_UNKNOWN_TOPIC.withCause(err, ctx.topic);
  const tls = findError(err, (e) => typeof e.code === 'string' && TLS_CODES.test(e.code));
  if (tls)
    return ERR_KAFKA_TLS.withCause(
      err,
      ctx.brokers.join(','),
      `${tls.code as string}: ${(tls.message as string | undefined) ?? ''}`.trim(),
    );
  if (isNetworkError(err)) return ERR_KAFKA_UNREACHABLE.withCause(err, ctx.brokers.join(','));
  const detail = (err as Error)?.message ?? String(err);
  return ERR_KAFKA.withCause(err, `${what}: ${detail}`);
}
