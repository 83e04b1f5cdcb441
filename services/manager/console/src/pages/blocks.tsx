import { useState } from 'preact/hooks';
import { api } from '../api';
import { Badge, describe, Problem, useLoad, when } from '../ui';

interface Block {
  enforcer: string;
  target: string;
  action: string;
  /** requested, or what the enforcer reported: applied, failed */
  status: string;
  /** the enforcer's error code for a failure */
  error: string | null;
  expires: string;
  left_s: number;
  active: boolean;
  reason_alert: string;
  vm: string | null;
}

export function BlocksPage({ can }: { can: (p: string) => boolean }) {
  const blocks = useLoad(() => api<Block[]>('GET', '/blocks'), []);
  const [reason, setReason] = useState<Record<string, string>>({});
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const lift = async (b: Block) => {
    setError(null);
    setDone(null);
    try {
      await api('POST', '/blocks/lift', {
        target: b.target,
        enforcer: b.enforcer,
        reason: reason[`${b.enforcer}|${b.target}`] ?? '',
      });
      setDone(`Lifted ${b.target} on ${b.enforcer}.`);
      blocks.reload();
    } catch (e) {
      setError(describe(e));
    }
  };
  return (
    <section>
      <h2>Blocks in force</h2>
      <Problem error={blocks.error ?? error} />
      {done ? (
        <p class="done" role="status">
          {done}
        </p>
      ) : null}
      <table data-testid="blocks">
        <thead>
          <tr>
            <th>target</th>
            <th>enforcer</th>
            <th>VM</th>
            <th>action</th>
            <th>status</th>
            <th>expires</th>
            <th>alert</th>
            <th>lift (reason)</th>
          </tr>
        </thead>
        <tbody>
          {(blocks.data ?? []).map((b) => {
            const k = `${b.enforcer}|${b.target}`;
            return (
              <tr data-block={k}>
                <td>{b.target}</td>
                <td>{b.enforcer}</td>
                <td>{b.vm ?? '—'}</td>
                <td>{b.action}</td>
                <td>
                  <Badge kind={b.status === 'applied' ? 'ok' : b.status === 'failed' ? 'bad' : 'warn'}>
                    {b.status}
                  </Badge>
                  {b.error ? <span class="dim"> {b.error}</span> : null}
                </td>
                <td>
                  {when(b.expires)} ({b.left_s} s)
                </td>
                <td>{b.reason_alert ? <a href={`#/alerts/${encodeURIComponent(b.reason_alert)}`}>alert</a> : '—'}</td>
                <td>
                  <input
                    aria-label="reason"
                    placeholder="why"
                    value={reason[k] ?? ''}
                    onInput={(e) => setReason({ ...reason, [k]: e.currentTarget.value })}
                  />
                  <button
                    onClick={() => lift(b)}
                    title={can('blocks:lift') ? 'Lift this block' : 'Your role cannot lift blocks'}
                  >
                    Lift
                  </button>
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {blocks.data?.length === 0 ? <p class="dim">No block is in force.</p> : null}
    </section>
  );
}
