import { useState } from 'preact/hooks';
import { api, qs } from '../api';
import { Badge, describe, Problem, useLoad, when } from '../ui';

interface Alert {
  alert_id: string;
  ts: string;
  stage: string;
  vm: string;
  rule_id: string;
  signature: string;
  severity: number;
  src_addr: string;
  src_port: number | null;
  dst_addr: string;
  dst_port: number | null;
  proto: string;
  action: string;
  acked: boolean;
  acked_by: string | null;
}
interface Detail {
  alert: Alert;
  evidence: unknown;
  flow: null | {
    flow_id: string;
    src_addr: string;
    src_port: number;
    dst_addr: string;
    dst_port: number;
    proto: number;
    first_seen: string;
    last_seen: string;
    bytes_toserver: string;
    bytes_toclient: string;
    end_reason: string;
  };
  blocks: Array<{ ts: string; enforcer: string; target: string; status: string; expires: string }>;
  activeBlocks: Array<{ enforcer: string; target: string; expires: string; left_s: number }>;
  ack: null | { by: string; at: string; note: string };
}

export function AlertsPage(_: { can: (p: string) => boolean }) {
  const [filters, setFilters] = useState({ vm: '', rule: '', q: '', severityMin: '' });
  const [cursor, setCursor] = useState<string | null>(null);
  const page = useLoad(
    () => api<{ items: Alert[]; next: string | null }>('GET', `/alerts${qs({ ...filters, limit: 50, cursor })}`),
    [filters, cursor],
  );
  const set = (k: keyof typeof filters) => (e: Event) => {
    setCursor(null);
    setFilters({ ...filters, [k]: (e.currentTarget as HTMLInputElement).value });
  };
  return (
    <section>
      <h2>Alerts</h2>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <input placeholder="VM" value={filters.vm} onChange={set('vm')} />
        <input placeholder="rule" value={filters.rule} onChange={set('rule')} />
        <input placeholder="signature contains" value={filters.q} onChange={set('q')} />
        <input placeholder="severity ≥" value={filters.severityMin} onChange={set('severityMin')} size={4} />
      </form>
      <Problem error={page.error} />
      <table data-testid="alerts">
        <thead>
          <tr>
            <th>time</th>
            <th>sev</th>
            <th>VM</th>
            <th>rule</th>
            <th>signature</th>
            <th>source</th>
            <th />
          </tr>
        </thead>
        <tbody>
          {(page.data?.items ?? []).map((a) => (
            <tr>
              <td>{when(a.ts)}</td>
              <td>{a.severity}</td>
              <td>{a.vm}</td>
              <td>{a.rule_id}</td>
              <td>
                <a href={`#/alerts/${encodeURIComponent(a.alert_id)}`}>{a.signature}</a>
              </td>
              <td>{a.src_addr}</td>
              <td>{a.acked ? <Badge kind="ok">acked</Badge> : null}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {page.data?.items.length === 0 ? <p class="dim">No alerts match.</p> : null}
      {cursor ? <button onClick={() => setCursor(null)}>Newest</button> : null}
      {page.data?.next ? <button onClick={() => setCursor(page.data!.next)}>Older</button> : null}
    </section>
  );
}

export function AlertDetail({ id, can }: { id: string; can: (p: string) => boolean }) {
  const d = useLoad(() => api<Detail>('GET', `/alerts/${encodeURIComponent(id)}`), [id]);
  const [error, setError] = useState<string | null>(null);
  const [reason, setReason] = useState('');
  const act = async (fn: () => Promise<unknown>) => {
    setError(null);
    try {
      await fn();
      d.reload();
    } catch (e) {
      setError(describe(e));
    }
  };
  if (!d.data) return <Problem error={d.error} />;
  const { alert: a, flow } = d.data;
  return (
    <section data-testid="alert-detail">
      <p>
        <a href="#/alerts">← Alerts</a>
      </p>
      <h2>{a.signature}</h2>
      <dl class="facts">
        <dt>When</dt>
        <dd>{when(a.ts)}</dd>
        <dt>Rule</dt>
        <dd>
          {a.rule_id} ({a.stage}, {a.action}, severity {a.severity})
        </dd>
        <dt>VM</dt>
        <dd>{a.vm || '—'}</dd>
        <dt>From → to</dt>
        <dd>
          {a.src_addr}:{a.src_port ?? ''} → {a.dst_addr}:{a.dst_port ?? ''} {a.proto}
        </dd>
        <dt>Acknowledged</dt>
        <dd>{d.data.ack ? `${d.data.ack.by}, ${when(d.data.ack.at)} ${d.data.ack.note}` : 'no'}</dd>
      </dl>
      {can('alerts:ack') && !d.data.ack ? (
        <button onClick={() => act(() => api('POST', `/alerts/${encodeURIComponent(id)}/ack`, { note: '' }))}>
          Acknowledge
        </button>
      ) : null}
      <h3>Evidence</h3>
      <pre data-testid="evidence">{JSON.stringify(d.data.evidence, null, 2)}</pre>
      <h3>Flow</h3>
      {flow ? (
        <p data-testid="flow">
          {flow.src_addr}:{flow.src_port} → {flow.dst_addr}:{flow.dst_port} · {when(flow.first_seen)} –{' '}
          {when(flow.last_seen)} · {flow.bytes_toserver} B / {flow.bytes_toclient} B · {flow.end_reason}
        </p>
      ) : (
        <p class="dim">No flow recorded for this alert.</p>
      )}
      <h3>Blocks</h3>
      <table data-testid="alert-blocks">
        <tbody>
          {d.data.activeBlocks.map((b) => (
            <tr>
              <td>
                <Badge kind="bad">in force</Badge>
              </td>
              <td>{b.target}</td>
              <td>{b.enforcer}</td>
              <td>{b.left_s} s left</td>
              <td>
                {can('blocks:lift') ? (
                  <>
                    <input placeholder="reason" value={reason} onInput={(e) => setReason(e.currentTarget.value)} />
                    <button
                      onClick={() =>
                        act(() => api('POST', '/blocks/lift', { target: b.target, enforcer: b.enforcer, reason }))
                      }
                    >
                      Lift
                    </button>
                  </>
                ) : null}
              </td>
            </tr>
          ))}
          {d.data.blocks.map((b) => (
            <tr>
              <td>{when(b.ts)}</td>
              <td>{b.target}</td>
              <td>{b.enforcer}</td>
              <td>{b.status}</td>
              <td>until {when(b.expires)}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <Problem error={error} />
    </section>
  );
}
