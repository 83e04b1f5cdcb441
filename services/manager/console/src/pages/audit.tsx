import { useState } from 'preact/hooks';
import { api, qs } from '../api';
import { Badge, Problem, useLoad, when } from '../ui';

interface Row {
  audit_id: string;
  ts: string;
  actor: string;
  role: string;
  auth: string;
  action: string;
  object: string;
  before: string | null;
  after: string | null;
  result: string;
  source_ip: string;
  detail: string;
}

export function AuditPage() {
  const [f, setF] = useState({ actor: '', action: '', object: '' });
  const [cursor, setCursor] = useState<string | null>(null);
  const page = useLoad(
    () => api<{ items: Row[]; next: string | null }>('GET', `/audit${qs({ ...f, limit: 50, cursor })}`),
    [f, cursor],
  );
  const set = (k: keyof typeof f) => (e: Event) => {
    setCursor(null);
    setF({ ...f, [k]: (e.currentTarget as HTMLInputElement).value });
  };
  return (
    <section>
      <h2>Audit trail</h2>
      <form class="filters" onSubmit={(e) => e.preventDefault()}>
        <input placeholder="actor" value={f.actor} onChange={set('actor')} />
        <input placeholder="action (block.lift)" value={f.action} onChange={set('action')} />
        <input placeholder="object starts with" value={f.object} onChange={set('object')} />
      </form>
      <Problem error={page.error} />
      <table data-testid="audit">
        <thead>
          <tr>
            <th>time</th>
            <th>actor</th>
            <th>role</th>
            <th>action</th>
            <th>object</th>
            <th>result</th>
            <th>from</th>
            <th>before → after</th>
          </tr>
        </thead>
        <tbody>
          {(page.data?.items ?? []).map((r) => (
            <tr>
              <td>{when(r.ts)}</td>
              <td>{r.actor}</td>
              <td>{r.role}</td>
              <td>{r.action}</td>
              <td>{r.object}</td>
              <td>
                <Badge kind={r.result === 'ok' ? 'ok' : 'bad'}>{r.result}</Badge> <span class="dim">{r.detail}</span>
              </td>
              <td>{r.source_ip}</td>
              <td>
                <details>
                  <summary>change</summary>
                  <pre>{`before: ${r.before ?? '—'}\nafter:  ${r.after ?? '—'}`}</pre>
                </details>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      {cursor ? <button onClick={() => setCursor(null)}>Newest</button> : null}
      {page.data?.next ? <button onClick={() => setCursor(page.data!.next)}>Older</button> : null}
    </section>
  );
}
