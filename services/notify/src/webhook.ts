import { createHmac, timingSafeEqual } from 'node:crypto';
import type { Alert } from '@cordon/schemas';
import { alertToOcsf } from './ocsf.js';
import { ERR_NOTIFY_SIGNATURE } from './errors.js';

/**
 * Alert webhooks: the body (Cordon's alert, OCSF, or a Slack-compatible message), its
 * signature, and the retry and rate policies. The delivery loop is in module.ts: one consumer
 * group per target, its offset committed only after the target accepted the alert.
 */

export type WebhookFormat = 'cordon' | 'ocsf' | 'slack';

export const SIGNATURE_HEADER = 'x-cordon-signature';
export const TIMESTAMP_HEADER = 'x-cordon-timestamp';
export const DELIVERY_HEADER = 'x-cordon-delivery';

/** The JSON body a target receives for an alert. */
export function webhookBody(a: Alert, format: WebhookFormat): string {
  if (format === 'ocsf') return JSON.stringify(alertToOcsf(a));
  if (format === 'slack') {
    const where = [
      a.src_ip && `from ${a.src_ip}${a.src_port !== null ? `:${a.src_port}` : ''}`,
      a.dst_ip && `to ${a.dst_ip}${a.dst_port !== null ? `:${a.dst_port}` : ''}`,
      a.vm && `on ${a.vm}`,
    ]
      .filter(Boolean)
      .join(' ');
    const sev = ['critical', 'critical', 'high', 'medium', 'low'][Math.min(4, Math.max(0, a.severity))];
    const text = `:rotating_light: *${a.signature}* (${a.rule_id}, severity ${a.severity} ${sev}) ${where}`.trim();
    const tags = [...(a.mitre_technique_ids ?? []), ...(a.cves ?? [])];
    return JSON.stringify({
      text,
      blocks: [
        { type: 'section', text: { type: 'mrkdwn', text } },
        {
          type: 'context',
          elements: [
            {
              type: 'mrkdwn',
              text: `${new Date(a.ts_us / 1000).toISOString()} · ${a.stage} · ${a.action}${tags.length ? ` · ${tags.join(' ')}` : ''} · alert ${a.alert_id}`,
            },
          ],
        },
      ],
    });
  }
  const { ts_us, ...rest } = a;
  return JSON.stringify({ ts: new Date(ts_us / 1000).toISOString(), ...rest });
}

/** `v1=<hex>`: HMAC-SHA256 with the target's secret over `<timestamp>.<body>`. */
export function signWebhook(secret: string, timestampS: number, body: string): string {
  return `v1=${createHmac('sha256', secret).update(`${timestampS}.${body}`).digest('hex')}`;
}

/**
 * For receivers: throws CORDON_ERR_NOTIFY_SIGNATURE unless the signature is the secret's over
 * this timestamp and body, and the timestamp is within `toleranceS` of now (a captured request
 * replayed later is refused).
 */
export function verifyWebhook(
  secret: string,
  headers: { timestamp?: string | null; signature?: string | null },
  body: string,
  nowS: number,
  toleranceS = 300,
): void {
  const ts = Number(headers.timestamp);
  if (!headers.timestamp || !Number.isInteger(ts))
    throw ERR_NOTIFY_SIGNATURE(`the ${TIMESTAMP_HEADER} header is missing or not whole seconds`);
  if (Math.abs(nowS - ts) > toleranceS)
    throw ERR_NOTIFY_SIGNATURE(
      `the timestamp is ${Math.abs(nowS - ts)} s from now, more than the ${toleranceS} s window`,
    );
  const want = Buffer.from(signWebhook(secret, ts, body));
  const got = Buffer.from(headers.signature ?? '');
  if (got.length !== want.length || !timingSafeEqual(got, want))
    throw ERR_NOTIFY_SIGNATURE('it does not match the body and timestamp');
}

export interface RetryPolicy {
  /** Attempts in all (the first included) before the alert goes to the DLQ. */
  maxAttempts: number;
  initialMs: number;
  maxMs: number;
}

/** Exponential backoff with full jitter: a random wait in [d/2, d], d = initial·2^(attempt-1) capped at max. */
export function backoffMs(p: RetryPolicy, attempt: number, random: () => number = Math.random): number {
  const d = Math.min(p.maxMs, p.initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(d / 2 + random() * (d / 2));
}

/** A token bucket: at most `perS` deliveries a second, bursts up to `perS`. */
export class RateLimiter {
  private tokens: number;
  private last: number;
  constructor(
    private readonly perS: number,
    private readonly now: () => number,
  ) {
    this.tokens = perS;
    this.last = now();
  }
  /** Milliseconds to wait before the next delivery may go (0: now); takes the token when 0. */
  take(): number {
    const t = this.now();
    this.tokens = Math.min(this.perS, this.tokens + ((t - this.last) / 1000) * this.perS);
    this.last = t;
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.tokens) / this.perS) * 1000);
  }
}

/** Whether an HTTP status is worth another attempt (the target may recover) or final. */
export const retryable = (status: number): boolean =>
  status === 408 || status === 425 || status === 429 || status >= 500;
