import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parsePolicyText } from '@cordon/policy';
import type { Invocation } from './args.js';
import { ERR_MANAGER_CALL, ERR_USAGE } from './errors.js';

/**
 * The write commands through the manager's API instead of the data dir (`--manager URL`),
 * so that they are authenticated, checked against the caller's role and audited. The token
 * comes from a file or CORDON_MANAGER_TOKEN, never from argv (which other users can read).
 */
export const MANAGER_TOKEN_ENV = 'CORDON_MANAGER_TOKEN';

export const MANAGER_FLAGS = [
  {
    name: 'manager',
    type: 'string',
    value: 'URL',
    env: 'CORDON_MANAGER_URL',
    help: "go through the manager's API (audited, checked against your role) instead of the data dir",
  },
  {
    name: 'token-file',
    type: 'string',
    value: 'FILE',
    help: `the manager API token (cdn_…); else ${MANAGER_TOKEN_ENV}`,
  },
] as const;

function token(inv: Invocation): string {
  const file = inv.str('token-file');
  const t = file ? readFileSync(file, 'utf8').trim() : process.env[MANAGER_TOKEN_ENV]?.trim();
  if (!t)
    throw ERR_USAGE(
      `--manager needs an API token: --token-file FILE or ${MANAGER_TOKEN_ENV} (make one in the console or with POST /api/v1/tokens)`,
    );
  return t;
}

export async function managerCall<T>(inv: Invocation, method: string, path: string, body?: unknown): Promise<T> {
  const base = inv.str('manager')!.replace(/\/+$/, '');
  let res: Response;
  try {
    res = await fetch(`${base}/api/v1${path}`, {
      method,
      headers: {
        authorization: `Bearer ${token(inv)}`,
        ...(body === undefined ? {} : { 'content-type': 'application/json' }),
      },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
  } catch (err) {
    throw ERR_MANAGER_CALL.withCause(err, base, (err as Error).message);
  }
  const text = await res.text();
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  if (!res.ok) {
    const e = json as { code?: string; message?: string } | null;
    throw ERR_MANAGER_CALL(base, `${res.status} ${e?.code ?? ''} ${e?.message ?? text.slice(0, 200)}`.trim());
  }
  return json as T;
}

/** A policy file as the API takes it: its rule files sent as text beside it. */
export function policyBodyOf(file: string): { id: string; body: Record<string, unknown> } {
  const text = readFileSync(file, 'utf8');
  const p = parsePolicyText(text, file);
  const { id, ruleFiles, ...rest } = p;
  const uploaded = ruleFiles.map((rel) => {
    const path = resolve(file, '..', rel);
    return { name: path.split('/').pop()!, text: readFileSync(path, 'utf8') };
  });
  return { id, body: { ...rest, ...(uploaded.length ? { ruleFiles: uploaded } : {}) } };
}
