import { createHash } from 'node:crypto';
import type { Alert } from './generated.js';

/**
 * The one alert id: a hash of the stage and what identifies the alert within it (never the
 * time it was computed), so a replayed input gives the same id and the sink counts it once.
 */
export function alertId(stage: string, ...parts: ReadonlyArray<string | number | bigint>): string {
  return createHash('sha256').update([stage, ...parts.map(String)].join('\u0000')).digest('hex').slice(0, 32);
}

/** The network fields of an alert that is about a host, not a flow (file changes, listening sockets). */
export const NO_FLOW: Pick<Alert, 'src_ip' | 'src_port' | 'dst_ip' | 'dst_port' | 'proto' | 'flow_id'> = Object.freeze({
  src_ip: null,
  src_port: null,
  dst_ip: null,
  dst_port: null,
  proto: null,
  flow_id: null,
});
