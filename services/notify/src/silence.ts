import { alertId, NO_FLOW, type AlertInput } from '@cordon/schemas';

/**
 * Silent sources: a log source, an agent or a watchdog capture that stops sending for longer
 * than expected raises an alert — the gap attackers like most (logs wiped, an agent killed, a
 * capture unplugged). Pure: fed what was seen and when, asked at a time what went silent.
 */

export type SourceKind = 'agent' | 'log' | 'sensor';

export interface SilentSource {
  kind: SourceKind;
  /** agent id; `vm|path` of a log; the sensor name of a capture. */
  name: string;
  vm: string | null;
  lastSeenMs: number;
  expectedMs: number;
}

interface Seen {
  kind: SourceKind;
  name: string;
  vm: string | null;
  lastSeenMs: number;
  /** Set once an alert was raised for the current silence. */
  alerted: boolean;
}

export class SilenceTracker {
  private readonly seen = new Map<string, Seen>();

  constructor(private readonly expectedMs: (kind: SourceKind, name: string) => number | null) {}

  /** A sign of life. A source that comes back after an alert is tracked afresh. */
  observe(kind: SourceKind, name: string, vm: string | null, atMs: number): void {
    const k = `${kind}|${name}`;
    const s = this.seen.get(k);
    if (!s) this.seen.set(k, { kind, name, vm, lastSeenMs: atMs, alerted: false });
    else if (atMs >= s.lastSeenMs) {
      s.lastSeenMs = atMs;
      s.alerted = false;
      if (vm) s.vm = vm;
    }
  }

  /** Stop tracking (an agent that said it is stopping, a capture that ended). */
  forget(kind: SourceKind, name: string): void {
    this.seen.delete(`${kind}|${name}`);
  }

  /** Sources silent for longer than expected at `nowMs` and not yet reported; each is reported once per silence. */
  check(nowMs: number): SilentSource[] {
    const out: SilentSource[] = [];
    for (const s of this.seen.values()) {
      if (s.alerted) continue;
      const expected = this.expectedMs(s.kind, s.name);
      if (expected === null || nowMs - s.lastSeenMs <= expected) continue;
      s.alerted = true;
      out.push({ kind: s.kind, name: s.name, vm: s.vm, lastSeenMs: s.lastSeenMs, expectedMs: expected });
    }
    return out;
  }

  get size(): number {
    return this.seen.size;
  }
}

const WHAT: Record<SourceKind, string> = { agent: 'agent heartbeat', log: 'log source', sensor: 'capture' };

/** The alert for a silent source: its id from the source and when it was last heard, so a re-check never doubles it. */
export function silenceAlert(s: SilentSource, nowMs: number): AlertInput {
  return {
    alert_id: alertId('notify', 'silent', s.kind, s.name, s.lastSeenMs),
    ts_us: nowMs * 1000,
    stage: 'notify',
    vm: s.vm,
    sensor: s.kind === 'sensor' ? s.name : null,
    rule_id: `cordon:silent-${s.kind}`,
    rule_rev: 1,
    signature: `Silent ${WHAT[s.kind]}: ${s.name} sent nothing for ${Math.round((nowMs - s.lastSeenMs) / 1000)} s (expected every ${Math.round(s.expectedMs / 1000)} s)`,
    severity: 2,
    category: 'Silent source',
    action: 'alert',
    ...NO_FLOW,
    evidence: JSON.stringify({
      kind: s.kind,
      source: s.name,
      last_seen: new Date(s.lastSeenMs).toISOString(),
      expected_interval_s: s.expectedMs / 1000,
    }),
    mitre_tactic_ids: ['TA0005'],
    mitre_technique_ids: ['T1562'],
  };
}
