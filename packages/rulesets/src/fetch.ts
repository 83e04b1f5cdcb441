import { open } from 'node:fs/promises';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ERR_RULES_FETCH, ERR_RULES_TOO_LARGE, ERR_RULES_USAGE } from './errors.js';
import { mib } from './archive.js';

/**
 * Reading a source — an http(s) URL or a local file — into memory, never past a byte limit:
 * a server that announces or sends more is cut off at the limit, not read to the end.
 */

export type Location = { kind: 'url'; url: URL } | { kind: 'file'; path: string };

export function parseLocation(text: string): Location {
  if (/^https?:\/\//i.test(text)) {
    let url: URL;
    try {
      url = new URL(text);
    } catch (err) {
      throw ERR_RULES_USAGE.withCause(err, `--source "${text}" is not a valid URL`);
    }
    return { kind: 'url', url };
  }
  if (/^file:\/\//i.test(text)) return { kind: 'file', path: fileURLToPath(text) };
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(text))
    throw ERR_RULES_USAGE(`--source "${text}": only http, https and local files are supported`);
  return { kind: 'file', path: resolve(text) };
}

export const describeLocation = (l: Location): string => (l.kind === 'url' ? l.url.href : l.path);

/** The last path segment: what the source is called (for its kind and a derived name). */
export function locationFileName(l: Location): string {
  const p = l.kind === 'url' ? decodeURIComponent(l.url.pathname) : l.path;
  return p.split('/').filter(Boolean).pop() ?? '';
}

export interface FetchOptions {
  maxBytes: number;
  timeoutMs: number;
  /** Shown as the limit's flag in the error. */
  limitFlag?: string;
  /** Called as an http download arrives: bytes so far, and the announced length when there is one. */
  onProgress?: (bytes: number, total: number | undefined) => void;
}

/** The whole body, or CORDON_ERR_RULES_FETCH / CORDON_ERR_RULES_TOO_LARGE. `missingOk`: a 404/410 or absent file gives null. */
export async function fetchBytes(l: Location, opts: FetchOptions & { missingOk?: boolean }): Promise<Buffer | null> {
  const where = describeLocation(l);
  const tooLarge = () =>
    ERR_RULES_TOO_LARGE(
      where,
      `it is larger than ${mib(opts.maxBytes)}${opts.limitFlag ? ` (the ${opts.limitFlag} limit)` : ''}`,
    );
  if (l.kind === 'file') {
    let fh;
    try {
      fh = await open(l.path, 'r');
    } catch (err) {
      if (opts.missingOk && (err as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw ERR_RULES_FETCH.withCause(err, where, (err as Error).message);
    }
    try {
      const st = await fh.stat();
      if (!st.isFile()) throw ERR_RULES_FETCH(where, 'not a regular file');
      if (st.size > opts.maxBytes) throw tooLarge();
      // read one byte more than allowed: a file that grew while we read is caught too
      const buf = Buffer.alloc(Math.min(opts.maxBytes + 1, st.size + 1));
      let n = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
        if (bytesRead === 0) break;
        n += bytesRead;
        if (n === buf.length) break;
      }
      if (n > opts.maxBytes) throw tooLarge();
      return buf.subarray(0, n);
    } finally {
      await fh.close();
    }
  }

  const signal = AbortSignal.timeout(opts.timeoutMs);
  let res: Response;
  try {
    res = await fetch(l.url, { signal, redirect: 'follow', headers: { 'user-agent': 'cordon-rules-update' } });
  } catch (err) {
    throw ERR_RULES_FETCH.withCause(
      err,
      where,
      signal.aborted ? `no answer within ${opts.timeoutMs / 1000} s` : describeCause(err),
    );
  }
  if (opts.missingOk && (res.status === 404 || res.status === 410)) {
    await res.body?.cancel();
    return null;
  }
  if (!res.ok) {
    await res.body?.cancel();
    throw ERR_RULES_FETCH(where, `HTTP ${res.status} ${res.statusText}`.trim());
  }
  const announced = Number(res.headers.get('content-length') ?? NaN);
  if (Number.isFinite(announced) && announced > opts.maxBytes) {
    await res.body?.cancel();
    throw tooLarge();
  }
  const chunks: Buffer[] = [];
  let total = 0;
  try {
    for await (const chunk of res.body ?? []) {
      total += (chunk as Uint8Array).byteLength;
      if (total > opts.maxBytes) {
        await res.body?.cancel().catch(() => undefined);
        throw tooLarge();
      }
      chunks.push(Buffer.from(chunk as Uint8Array));
      opts.onProgress?.(total, Number.isFinite(announced) ? announced : undefined);
    }
  } catch (err) {
    if (ERR_RULES_TOO_LARGE.is(err)) throw err;
    throw ERR_RULES_FETCH.withCause(
      err,
      where,
      signal.aborted ? `the download did not finish within ${opts.timeoutMs / 1000} s` : describeCause(err),
    );
  }
  return Buffer.concat(chunks, total);
}

/** undici hides the useful part (ECONNREFUSED, ENOTFOUND) in the cause. */
function describeCause(err: unknown): string {
  const e = err as Error & { cause?: { code?: string; message?: string } };
  return e.cause?.code ? `${e.message} (${e.cause.code})` : (e.cause?.message ?? e.message);
}

/** The location with a suffix added to its file name: the checksum file published beside it. */
export function sidecar(l: Location, suffix: string): Location {
  if (l.kind === 'file') return { kind: 'file', path: `${l.path}${suffix}` };
  const u = new URL(l.url.href);
  u.pathname = `${u.pathname}${suffix}`;
  return { kind: 'url', url: u };
}
