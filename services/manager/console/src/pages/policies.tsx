import { useState } from 'preact/hooks';
import { api, qs } from '../api';
import { Badge, describe, Problem, useLoad, when } from '../ui';

interface Summary {
  id: string;
  version: number;
  updated: string;
  updatedBy: string;
  mode: string | null;
  rulesets: string[];
}
interface Resolved {
  vm: string | null;
  groups: string[];
  mode: { value: string | null; from: string };
  rules: Array<{ sid: string; value: string; from: string; overrides: Array<{ level: string; value: string }> }>;
}
interface Group {
  id: string;
  members: number;
  description: string;
}

export function PoliciesPage({ can }: { can: (p: string) => boolean }) {
  const list = useLoad(() => api<Summary[]>('GET', '/policies'), []);
  const groups = useLoad(() => (can('groups:read') ? api<Group[]>('GET', '/groups') : Promise.resolve([])), []);
  const [id, setId] = useState<string | null>(null);
  const [vm, setVm] = useState('');
  const policy = id ?? list.data?.[0]?.id ?? null;
  const resolved = useLoad(
    () =>
      policy
        ? api<Resolved>('GET', `/policies/${encodeURIComponent(policy)}/resolved${qs({ vm })}`)
        : Promise.resolve(null),
    [policy, vm],
  );
  const [o, setO] = useState({ level: 'base', target: '', sid: '', value: 'prevent' });
  const [error, setError] = useState<string | null>(null);
  const override = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      await api('PUT', `/policies/${encodeURIComponent(policy!)}/overrides`, {
        level: o.level,
        ...(o.level !== 'base' ? { target: o.target } : {}),
        ...(o.sid ? { sid: o.sid } : {}),
        value: o.value === 'clear' ? null : o.value,
      });
      resolved.reload();
      list.reload();
    } catch (err) {
      setError(describe(err));
    }
  };
  return (
    <section class="split">
      <div>
        <h2>Policies</h2>
        <Problem error={list.error} />
        <ul class="plain">
          {(list.data ?? []).map((p) => (
            <li>
              <button class={`link ${p.id === policy ? 'active' : ''}`} onClick={() => setId(p.id)}>
                {p.id}
              </button>{' '}
              v{p.version} · {p.mode ?? 'rule actions'} · {when(p.updated)} by {p.updatedBy}
            </li>
          ))}
        </ul>
        <h3>VM groups</h3>
        <ul class="plain">
          {(groups.data ?? []).map((g) => (
            <li>
              {g.id} <span class="dim">({g.members} VMs)</span>
            </li>
          ))}
        </ul>
      </div>
      <div class="panel" data-testid="policy-resolved">
        <h3>
          Resolved for{' '}
          <input placeholder="base (or a VM id)" value={vm} onChange={(e) => setVm(e.currentTarget.value)} />
        </h3>
        <Problem error={resolved.error} />
        {resolved.data ? (
          <>
            <p>
              Mode: <strong>{resolved.data.mode.value ?? "the rule's own action"}</strong>{' '}
              <Badge kind="info">from {resolved.data.mode.from}</Badge>
              {resolved.data.groups.length ? (
                <span class="dim"> · groups {resolved.data.groups.join(', ')}</span>
              ) : null}
            </p>
            <table>
              <thead>
                <tr>
                  <th>rule</th>
                  <th>resolved</th>
                  <th>from</th>
                  <th>set at</th>
                </tr>
              </thead>
              <tbody>
                {resolved.data.rules.map((r) => (
                  <tr>
                    <td>{r.sid}</td>
                    <td>
                      <Badge kind={r.value === 'prevent' ? 'bad' : 'ok'}>{r.value}</Badge>
                    </td>
                    <td>{r.from}</td>
                    <td class="dim">{r.overrides.map((x) => `${x.level}: ${x.value}`).join(' · ')}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </>
        ) : null}
        {can('policies:write') && policy ? (
          <form class="filters" onSubmit={override}>
            <select value={o.level} onChange={(e) => setO({ ...o, level: e.currentTarget.value })}>
              <option value="base">base</option>
              <option value="group">group</option>
              <option value="vm">VM</option>
            </select>
            {o.level !== 'base' ? (
              <input
                placeholder={o.level === 'group' ? 'group id' : 'VM id'}
                value={o.target}
                onInput={(e) => setO({ ...o, target: e.currentTarget.value })}
              />
            ) : null}
            <input
              placeholder="rule sid (empty: mode)"
              value={o.sid}
              onInput={(e) => setO({ ...o, sid: e.currentTarget.value })}
            />
            <select value={o.value} onChange={(e) => setO({ ...o, value: e.currentTarget.value })}>
              <option value="prevent">prevent</option>
              <option value="detect">detect</option>
              <option value="clear">clear</option>
            </select>
            <button type="submit">Set override</button>
          </form>
        ) : null}
        <Problem error={error} />
      </div>
    </section>
  );
}
