import { useState } from 'preact/hooks';
import { api, type Me } from '../api';
import { describe, Problem } from '../ui';

export function Login({ onIn }: { onIn: (me: Me) => void }) {
  const [user, setUser] = useState('');
  const [password, setPassword] = useState('');
  const [error, setError] = useState<string | null>(null);
  const submit = async (e: Event) => {
    e.preventDefault();
    setError(null);
    try {
      onIn(await api<Me>('POST', '/auth/login', { user, password }));
    } catch (err) {
      setError(describe(err));
    }
  };
  return (
    <form class="login" onSubmit={submit}>
      <h1>Cordon</h1>
      <label>
        User
        <input
          name="user"
          autocomplete="username"
          value={user}
          onInput={(e) => setUser(e.currentTarget.value)}
          required
        />
      </label>
      <label>
        Password
        <input
          name="password"
          type="password"
          autocomplete="current-password"
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
          required
        />
      </label>
      <button type="submit">Sign in</button>
      <Problem error={error} />
    </form>
  );
}
