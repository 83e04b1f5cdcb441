import type { BlockDecision } from '@cordon/schemas';

/** A requested block of one address, as a responder would write it, for enforcer tests. */
export function ipBlockDecision(opts: {
  enforcer: string;
  ip: string;
  ttlMs: number;
  now?: number;
  action?: 'drop' | 'reject';
  scope?: string;
}): BlockDecision {
  const now = opts.now ?? Date.now();
  return {
    block_id: `b-${opts.ip}-${now}`,
    enforcer: opts.enforcer,
    target: {
      kind: 'ip',
      ip: opts.ip,
      proto: null,
      src_ip: null,
      src_port: null,
      dst_ip: null,
      dst_port: null,
      vm: null,
    },
    scope: opts.scope ?? 'test',
    action: opts.action ?? 'drop',
    ttl_ms: opts.ttlMs,
    created_us: now * 1000,
    expires_us: (now + opts.ttlMs) * 1000,
    reason_alert: 'a-1',
    status: 'requested',
  };
}
