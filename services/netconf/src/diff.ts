import { alertId, NO_FLOW, type AlertInput, type ListeningSocket, type NetSnapshot, type Route } from '@cordon/schemas';

/**
 * The pure netconf stage: a VM's previous and new network configuration → alerts. What an
 * intruder changes: a new listening socket (a backdoor, a bind shell), an interface put in
 * promiscuous mode (a sniffer), routes added, removed or re-pointed (traffic diverted). The
 * first snapshot of a VM is its baseline and raises nothing.
 */
const sockKey = (s: ListeningSocket) => `${s.proto} ${s.address}:${s.port}`;
const routeKey = (r: Route) => `${r.destination} dev ${r.dev}`;

export interface NetChange {
  rule: string;
  signature: string;
  severity: number;
  detail: Record<string, unknown>;
}

export function diffSnapshots(prev: NetSnapshot | null, next: NetSnapshot): NetChange[] {
  if (!prev) return [];
  const out: NetChange[] = [];
  const before = new Map(prev.listening.map((s) => [sockKey(s), s]));
  for (const s of next.listening) {
    if (before.has(sockKey(s))) continue;
    const wild = s.address === '0.0.0.0' || s.address === '::';
    out.push({
      rule: 'netconf:new-listening-socket',
      signature: `New listening socket ${sockKey(s)}${s.process ? ` (${s.process})` : ''}`,
      severity: wild ? 2 : 3,
      detail: { socket: { ...s } },
    });
  }
  const prevIf = new Map(prev.interfaces.map((i) => [i.name, i]));
  for (const i of next.interfaces) {
    const p = prevIf.get(i.name);
    if (i.promiscuous && !p?.promiscuous) {
      out.push({
        rule: 'netconf:promiscuous-interface',
        signature: `Interface ${i.name} entered promiscuous mode`,
        severity: 1,
        detail: { interface: { ...i } },
      });
    }
    if (!p)
      out.push({
        rule: 'netconf:new-interface',
        signature: `New interface ${i.name}`,
        severity: 3,
        detail: { interface: { ...i } },
      });
  }
  const prevRoutes = new Map(prev.routes.map((r) => [routeKey(r), r]));
  const nextRoutes = new Map(next.routes.map((r) => [routeKey(r), r]));
  for (const [k, r] of nextRoutes) {
    const p = prevRoutes.get(k);
    const isDefault = r.destination === '0.0.0.0/0' || r.destination === '::/0';
    if (!p)
      out.push({
        rule: 'netconf:route-added',
        signature: `Route added: ${k}${r.gateway ? ` via ${r.gateway}` : ''}`,
        severity: isDefault ? 1 : 3,
        detail: { route: { ...r } },
      });
    else if (p.gateway !== r.gateway) {
      out.push({
        rule: 'netconf:route-changed',
        signature: `Route ${k} now via ${r.gateway ?? 'direct'} (was ${p.gateway ?? 'direct'})`,
        severity: isDefault ? 1 : 2,
        detail: { before: { ...p }, after: { ...r } },
      });
    }
  }
  for (const [k, r] of prevRoutes) {
    if (!nextRoutes.has(k))
      out.push({
        rule: 'netconf:route-removed',
        signature: `Route removed: ${k}`,
        severity: 3,
        detail: { route: { ...r } },
      });
  }
  return out;
}

export function toAlert(c: NetChange, next: NetSnapshot): AlertInput {
  return {
    alert_id: alertId('netconf', next.vm, next.ts_us, c.rule, c.signature),
    ts_us: next.ts_us,
    stage: 'netconf',
    vm: next.vm,
    sensor: `agent:${next.agent}`,
    rule_id: c.rule,
    rule_rev: 1,
    signature: c.signature,
    severity: c.severity,
    category: 'network-configuration',
    action: 'alert',
    ...NO_FLOW,
    evidence: JSON.stringify(c.detail),
  };
}
