import { useState } from 'preact/hooks';
import { api, type Me } from '../api';
import { Badge, describe, Problem, useLoad, when } from '../ui';

interface User {
  name: string;
  role: string;
  groups: string[];
  disabled: boolean;
  updated: string;
  updatedBy: string;
}
interface Role {
  id: string;
  builtin: boolean;
  description: string;
  permissions: string[];
  groups: string[];
}
interface Token {
  id: string;
  name: string;
  user: string;
  permissions: string[] | null;
  expires: string;
  expired: boolean;
}

export function UsersPage({ can, me }: { can: (p: string) => boolean; me: Me }) {
  const users = useLoad(() => (can('users:read') ? api<User[]>('GET', '/users') : Promise.resolve([])), []);
  const roles = useLoad(() => (can('roles:read') ? api<Role[]>('GET', '/roles') : Promise.resolve([])), []);
  const tokens = useLoad(() => api<Token[]>('GET', '/tokens'), []);
  const [nu, setNu] = useState({ name: '', role: 'analyst', password: '' });
  const [tokenName, setTokenName] = useState('');
  const [shown, setShown] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const act = async (fn: () => Promise<unknown>, then: () => void) => {
    setError(null);
    try {
      await fn();
      then();
    } catch (e) {
      setError(describe(e));
    }
  };
  return (
    <section>
      <Problem error={users.error ?? roles.error ?? error} />
      {can('users:read') ? (
        <>
          <h2>Users</h2>
          <table data-testid="users">
            <thead>
              <tr>
                <th>name</th>
                <th>role</th>
                <th>scope</th>
                <th>state</th>
                <th>changed</th>
              </tr>
            </thead>
            <tbody>
              {(users.data ?? []).map((u) => (
                <tr>
                  <td>{u.name}</td>
                  <td>{u.role}</td>
                  <td>{u.groups.join(', ') || 'every VM'}</td>
                  <td>{u.disabled ? <Badge kind="bad">disabled</Badge> : <Badge kind="ok">active</Badge>}</td>
                  <td>
                    {when(u.updated)} by {u.updatedBy}
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
      {can('users:write') ? (
        <form
          class="filters"
          onSubmit={(e) => (
            e.preventDefault(),
            act(
              () => api('POST', '/users', { ...nu, groups: [] }),
              () => (setNu({ name: '', role: 'analyst', password: '' }), users.reload()),
            )
          )}
        >
          <input
            placeholder="new user"
            value={nu.name}
            onInput={(e) => setNu({ ...nu, name: e.currentTarget.value })}
          />
          <select value={nu.role} onChange={(e) => setNu({ ...nu, role: e.currentTarget.value })}>
            {(roles.data ?? []).map((r) => (
              <option value={r.id}>{r.id}</option>
            ))}
          </select>
          <input
            type="password"
            placeholder="password (12+)"
            autocomplete="new-password"
            value={nu.password}
            onInput={(e) => setNu({ ...nu, password: e.currentTarget.value })}
          />
          <button type="submit">Create user</button>
        </form>
      ) : null}
      {can('roles:read') ? (
        <>
          <h2>Roles</h2>
          <table data-testid="roles">
            <tbody>
              {(roles.data ?? []).map((r) => (
                <tr>
                  <td>
                    {r.id} {r.builtin ? <Badge kind="info">built in</Badge> : null}
                  </td>
                  <td>{r.description}</td>
                  <td class="dim">{r.permissions.join(', ')}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      ) : null}
      <h2>Your API tokens</h2>
      <p class="dim">
        Signed in as {me.user} ({me.role}). A token is shown once, when it is made; the manager keeps only its hash.
      </p>
      <table data-testid="tokens">
        <tbody>
          {(tokens.data ?? []).map((t) => (
            <tr>
              <td>{t.name}</td>
              <td>{t.user}</td>
              <td class="dim">{t.permissions?.join(', ') ?? 'all of the role'}</td>
              <td>{t.expired ? <Badge kind="bad">expired</Badge> : `until ${when(t.expires)}`}</td>
              <td>
                <button onClick={() => act(() => api('DELETE', `/tokens/${t.id}`), tokens.reload)}>Revoke</button>
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <form
        class="filters"
        onSubmit={(e) => (
          e.preventDefault(),
          act(
            async () =>
              setShown((await api<{ token: string }>('POST', '/tokens', { name: tokenName || 'console' })).token),
            tokens.reload,
          )
        )}
      >
        <input placeholder="token name" value={tokenName} onInput={(e) => setTokenName(e.currentTarget.value)} />
        <button type="submit">Make a token</button>
      </form>
      {shown ? (
        <p class="done">
          Your new token (copy it now, it is not shown again): <code>{shown}</code>
        </p>
      ) : null}
    </section>
  );
}
