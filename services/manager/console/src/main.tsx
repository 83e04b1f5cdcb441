import { render } from 'preact';
import { useEffect, useState } from 'preact/hooks';
import { api, setCsrf, type Me } from './api';
import { AlertDetail, AlertsPage } from './pages/alerts';
import { AuditPage } from './pages/audit';
import { BlocksPage } from './pages/blocks';
import { InventoryPage } from './pages/inventory';
import { Login } from './pages/login';
import { PoliciesPage } from './pages/policies';
import { UsersPage } from './pages/users';
import { describe, Problem } from './ui';
import './style.css';

const PAGES: Array<{ path: string; label: string; needs: string | null }> = [
  { path: 'inventory', label: 'Inventory', needs: 'inventory:read' },
  { path: 'alerts', label: 'Alerts', needs: 'alerts:read' },
  { path: 'blocks', label: 'Blocks', needs: 'blocks:read' },
  { path: 'policies', label: 'Policies', needs: 'policies:read' },
  { path: 'users', label: 'Users & roles', needs: null },
  { path: 'audit', label: 'Audit', needs: 'audit:read' },
];

function useHash(): string {
  const [hash, setHash] = useState(location.hash.slice(2));
  useEffect(() => {
    const on = () => setHash(location.hash.slice(2));
    addEventListener('hashchange', on);
    return () => removeEventListener('hashchange', on);
  }, []);
  return hash;
}

function App() {
  const [me, setMe] = useState<Me | null | undefined>(undefined);
  const [error, setError] = useState<string | null>(null);
  const hash = useHash();
  useEffect(() => {
    api<Me>('GET', '/auth/me').then(
      (m) => {
        setCsrf(m.csrf);
        setMe(m);
      },
      () => setMe(null),
    );
  }, []);
  if (me === undefined) return <p class="loading">Loading…</p>;
  if (me === null)
    return (
      <Login
        onIn={(m) => {
          setCsrf(m.csrf);
          setMe(m);
          if (!location.hash) location.hash = '#/inventory';
        }}
      />
    );
  const can = (p: string | null) => p === null || me.permissions.includes(p);
  const pages = PAGES.filter((p) => can(p.needs));
  const [page, ...rest] = hash.split('/');
  const current = pages.find((p) => p.path === page) ?? pages[0];
  const logout = async () => {
    try {
      await api('POST', '/auth/logout');
      setMe(null);
      setCsrf(null);
    } catch (e) {
      setError(describe(e));
    }
  };
  return (
    <div class="shell">
      <header>
        <strong class="brand">Cordon</strong>
        <nav>
          {pages.map((p) => (
            <a href={`#/${p.path}`} class={p === current ? 'active' : ''}>
              {p.label}
            </a>
          ))}
        </nav>
        <span class="who" data-testid="who">
          {me.user} · {me.role}
          {me.groups.length ? ` · ${me.groups.join(', ')}` : ''}
        </span>
        <button class="link" onClick={logout}>
          Sign out
        </button>
      </header>
      <Problem error={error} />
      <main>
        {current?.path === 'inventory' && <InventoryPage can={can} />}
        {current?.path === 'alerts' &&
          (rest[0] ? <AlertDetail id={decodeURIComponent(rest[0])} can={can} /> : <AlertsPage can={can} />)}
        {current?.path === 'blocks' && <BlocksPage can={can} />}
        {current?.path === 'policies' && <PoliciesPage can={can} />}
        {current?.path === 'users' && <UsersPage can={can} me={me} />}
        {current?.path === 'audit' && <AuditPage />}
        {!current && <p>Your role grants no page of the console.</p>}
      </main>
    </div>
  );
}

render(<App />, document.getElementById('app')!);
