// The console's one way to the API: same origin, the session cookie, and the CSRF header on changes.

export interface Me {
  user: string;
  role: string;
  permissions: string[];
  groups: string[];
  auth: string;
  csrf: string | null;
  expiresAt: string | null;
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let csrf: string | null = null;
export const setCsrf = (c: string | null): void => {
  csrf = c;
};

export async function api<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && csrf) headers['x-cordon-csrf'] = csrf;
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    credentials: 'same-origin',
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  const json = text ? JSON.parse(text) : null;
  if (!res.ok)
    throw new ApiError(res.status, json?.code ?? 'CORDON_ERR_MANAGER_INTERNAL', json?.message ?? res.statusText);
  return json as T;
}

export const qs = (o: Record<string, string | number | undefined | null>): string => {
  const p = Object.entries(o).filter(([, v]) => v !== undefined && v !== null && v !== '');
  return p.length ? `?${p.map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(String(v))}`).join('&')}` : '';
};
