/**
 * Connector options, validated once at the edge. Credentials come from the options object, a
 * credentials file or the environment — never from the URL or argv — and are never logged.
 */
import { readFileSync } from 'node:fs';
import type { Context } from '@cordon/runtime';
import { ERR_VSPHERE_BAD_OPTIONS, ERR_VSPHERE_NO_CREDENTIALS } from './errors.js';

export interface VsphereOptions {
  /** https://host/sdk (vCenter or ESXi). */
  url: string;
  username: string;
  password: string;
  /** PEM file of the CA that signed the server's certificate. */
  caFile?: string;
  /** Accept any certificate. Labs only: logs a warning on every connect. */
  insecure?: boolean;
  ctx: Context;
  /** WaitForUpdatesEx maxWaitSeconds (default 30): how long one long poll may hold. */
  pollSeconds?: number;
  /** Reconnect backoff: exponential from initialMs (250) up to maxMs (30000), with full jitter. */
  backoff?: { initialMs?: number; maxMs?: number };
  /** Timeout of one call that does not wait on the server (default 60000 ms). */
  requestTimeoutMs?: number;
}

export interface ResolvedOptions {
  url: string;
  source: string;
  username: string;
  password: string;
  ca: string | undefined;
  caFile: string | undefined;
  insecure: boolean;
  ctx: Context;
  pollSeconds: number;
  backoffInitialMs: number;
  backoffMaxMs: number;
  requestTimeoutMs: number;
}

const KNOWN = new Set([
  'url',
  'username',
  'password',
  'caFile',
  'insecure',
  'ctx',
  'pollSeconds',
  'backoff',
  'requestTimeoutMs',
]);

/** The URL without credentials, query or fragment: what logs and errors name. */
export function sourceOf(url: URL): string {
  return `${url.protocol}//${url.host}${url.pathname}`;
}

function positive(name: string, v: unknown, dflt: number): number {
  if (v === undefined) return dflt;
  if (typeof v !== 'number' || !Number.isFinite(v) || v <= 0)
    throw ERR_VSPHERE_BAD_OPTIONS(`"${name}" must be a positive number`);
  return v;
}

export function resolveOptions(o: VsphereOptions): ResolvedOptions {
  if (o === null || typeof o !== 'object') throw ERR_VSPHERE_BAD_OPTIONS('options must be an object');
  for (const k of Object.keys(o)) if (!KNOWN.has(k)) throw ERR_VSPHERE_BAD_OPTIONS(`unknown option "${k}"`);
  let url: URL;
  try {
    url = new URL(o.url);
  } catch {
    throw ERR_VSPHERE_BAD_OPTIONS('"url" is not a URL (expected https://host/sdk)');
  }
  if (url.protocol !== 'https:')
    throw ERR_VSPHERE_BAD_OPTIONS(`"url" must be https://host/sdk, got ${url.protocol}//…`);
  if (url.username !== '' || url.password !== '') {
    throw ERR_VSPHERE_BAD_OPTIONS(
      '"url" must not hold credentials; pass username and password (or a credentials file)',
    );
  }
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/sdk';
  if (typeof o.username !== 'string' || o.username === '') throw ERR_VSPHERE_BAD_OPTIONS('"username" is required');
  if (typeof o.password !== 'string' || o.password === '') throw ERR_VSPHERE_BAD_OPTIONS('"password" is required');
  if (o.ctx === undefined || typeof o.ctx.log?.info !== 'function')
    throw ERR_VSPHERE_BAD_OPTIONS('"ctx" (a @cordon/runtime Context) is required');
  if (o.insecure !== undefined && typeof o.insecure !== 'boolean')
    throw ERR_VSPHERE_BAD_OPTIONS('"insecure" must be a boolean');
  if (o.insecure && o.caFile !== undefined) throw ERR_VSPHERE_BAD_OPTIONS('"caFile" and "insecure" exclude each other');
  let ca: string | undefined;
  if (o.caFile !== undefined) {
    try {
      ca = readFileSync(o.caFile, 'utf8');
    } catch (err) {
      throw ERR_VSPHERE_BAD_OPTIONS.withCause(err, `"caFile" ${o.caFile} cannot be read`);
    }
  }
  if (o.backoff !== undefined) {
    for (const k of Object.keys(o.backoff))
      if (k !== 'initialMs' && k !== 'maxMs') throw ERR_VSPHERE_BAD_OPTIONS(`unknown option "backoff.${k}"`);
  }
  return {
    url: url.toString(),
    source: sourceOf(url),
    username: o.username,
    password: o.password,
    ca,
    caFile: o.caFile,
    insecure: o.insecure ?? false,
    ctx: o.ctx,
    pollSeconds: Math.ceil(positive('pollSeconds', o.pollSeconds, 30)),
    backoffInitialMs: positive('backoff.initialMs', o.backoff?.initialMs, 250),
    backoffMaxMs: positive('backoff.maxMs', o.backoff?.maxMs, 30_000),
    requestTimeoutMs: positive('requestTimeoutMs', o.requestTimeoutMs, 60_000),
  };
}

export interface FromUrlOptions extends Omit<VsphereOptions, 'url' | 'username' | 'password'> {
  /**
   * A file of KEY=VALUE lines (`#` comments, blank lines, optional quotes around the value):
   *   CORDON_VSPHERE_USERNAME=administrator@vsphere.local
   *   CORDON_VSPHERE_PASSWORD=…
   * Used instead of the environment when given.
   */
  credentialsFile?: string;
  /** Where CORDON_VSPHERE_USERNAME / CORDON_VSPHERE_PASSWORD are read from (default process.env). */
  env?: Record<string, string | undefined>;
}

/** Parse a credentials file (KEY=VALUE lines). */
export function parseCredentialsFile(text: string, file: string): Record<string, string> {
  const out: Record<string, string> = {};
  text.split(/\r?\n/).forEach((line, i) => {
    const t = line.trim();
    if (t === '' || t.startsWith('#')) return;
    const eq = t.indexOf('=');
    if (eq <= 0) throw ERR_VSPHERE_NO_CREDENTIALS(file, `line ${i + 1} is not KEY=VALUE`);
    let v = t.slice(eq + 1).trim();
    if (v.length >= 2 && ((v.startsWith('"') && v.endsWith('"')) || (v.startsWith("'") && v.endsWith("'"))))
      v = v.slice(1, -1);
    out[t.slice(0, eq).trim()] = v;
  });
  return out;
}

/**
 * Options from a platform URL such as `vsphere+https://vcenter.example/sdk` and credentials
 * from `credentialsFile` or the environment.
 */
export function optionsFromUrl(platformUrl: string, o: FromUrlOptions): VsphereOptions {
  const { credentialsFile, env = process.env, ...rest } = o;
  if (!platformUrl.startsWith('vsphere+https://'))
    throw ERR_VSPHERE_BAD_OPTIONS('the platform URL must start with vsphere+https://');
  const url = platformUrl.slice('vsphere+'.length);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw ERR_VSPHERE_BAD_OPTIONS('the platform URL is not a URL (expected vsphere+https://host/sdk)');
  }
  if (parsed.username !== '' || parsed.password !== '') {
    throw ERR_VSPHERE_BAD_OPTIONS(
      'the platform URL must not hold credentials; use CORDON_VSPHERE_USERNAME/CORDON_VSPHERE_PASSWORD or a credentials file',
    );
  }
  const source = sourceOf(parsed);
  let vars: Record<string, string | undefined> = env;
  if (credentialsFile !== undefined) {
    let text: string;
    try {
      text = readFileSync(credentialsFile, 'utf8');
    } catch (err) {
      throw ERR_VSPHERE_NO_CREDENTIALS.withCause(err, source, `the credentials file ${credentialsFile} cannot be read`);
    }
    vars = parseCredentialsFile(text, credentialsFile);
  }
  const username = vars.CORDON_VSPHERE_USERNAME;
  const password = vars.CORDON_VSPHERE_PASSWORD;
  const where = credentialsFile !== undefined ? `the credentials file ${credentialsFile}` : 'the environment';
  if (!username) throw ERR_VSPHERE_NO_CREDENTIALS(source, `CORDON_VSPHERE_USERNAME is not set in ${where}`);
  if (!password) throw ERR_VSPHERE_NO_CREDENTIALS(source, `CORDON_VSPHERE_PASSWORD is not set in ${where}`);
  return { ...rest, url, username, password };
}
