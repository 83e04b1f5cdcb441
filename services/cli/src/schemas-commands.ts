import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { registryVersions, type RegistryVersion } from '@cordon/schemas';
import { defineError } from '@cordon/runtime';
import type { Invocation } from './args.js';
import { contextFrom, out } from './cli-context.js';

/**
 * `cordon schemas serve`: the read API of a Confluent-compatible schema registry over Cordon's
 * own schemas (schemas/manifest.json, schemas/avro), so Kafka tooling that decodes the
 * Confluent wire format by asking a registry works on Cordon's topics with no registry to run.
 * `cordon schemas register`: the same subjects, versions and ids written into a registry that
 * runs (Confluent Schema Registry, Karapace, Apicurio's ccompat API), in IMPORT mode so the ids
 * are Cordon's — the ones already in every record.
 */

export const ERR_SCHEMAS_REGISTER = defineError(
  'CORDON_ERR_SCHEMAS_REGISTER',
  (url: string, detail: string) => `registering Cordon's schemas at ${url} failed: ${detail}`,
);

const CONTENT_TYPE = 'application/vnd.schemaregistry.v1+json';

type Reply = [number, unknown];

const notFound = (code: number, message: string): Reply => [404, { error_code: code, message }];

/** The registry read API over `versions`: [status, JSON body] for a method and URL, or null for no such route. */
export function registryRoute(
  versions: readonly RegistryVersion[],
  method: string,
  url: string,
  body: unknown,
): Reply | null {
  const path = decodeURIComponent(new URL(url, 'http://x').pathname).replace(/\/+$/, '') || '/';
  const bySubject = (s: string) => versions.filter((v) => v.subject === s);
  const versionOf = (s: string, v: string) => {
    const all = bySubject(s);
    return v === 'latest' || v === '-1' ? all[all.length - 1] : all.find((x) => x.version === Number(v));
  };
  const full = (v: RegistryVersion) => ({ subject: v.subject, version: v.version, id: v.id, schema: v.schema });
  let m: RegExpExecArray | null;
  if (method === 'GET') {
    if (path === '/') return [200, {}];
    if (path === '/subjects') return [200, [...new Set(versions.map((v) => v.subject))]];
    if (path === '/schemas/types') return [200, ['AVRO']];
    if (path === '/config') return [200, { compatibilityLevel: 'BACKWARD' }];
    if (path === '/mode') return [200, { mode: 'READONLY' }];
    if ((m = /^\/config\/([^/]+)$/.exec(path)))
      return bySubject(m[1]!).length
        ? [200, { compatibilityLevel: 'BACKWARD' }]
        : notFound(40401, 'Subject not found.');
    if ((m = /^\/mode\/([^/]+)$/.exec(path)))
      return bySubject(m[1]!).length ? [200, { mode: 'READONLY' }] : notFound(40401, 'Subject not found.');
    if ((m = /^\/subjects\/([^/]+)\/versions$/.exec(path))) {
      const all = bySubject(m[1]!);
      return all.length ? [200, all.map((v) => v.version)] : notFound(40401, 'Subject not found.');
    }
    if ((m = /^\/subjects\/([^/]+)\/versions\/([^/]+)(\/schema)?$/.exec(path))) {
      if (!bySubject(m[1]!).length) return notFound(40401, 'Subject not found.');
      const v = versionOf(m[1]!, m[2]!);
      if (!v) return notFound(40402, 'Version not found.');
      return [200, m[3] ? JSON.parse(v.schema) : full(v)];
    }
    if ((m = /^\/schemas\/ids\/(\d+)(\/schema|\/versions|\/subjects)?$/.exec(path))) {
      const hits = versions.filter((v) => v.id === Number(m![1]));
      if (!hits.length) return notFound(40403, 'Schema not found');
      if (m[2] === '/schema') return [200, JSON.parse(hits[0]!.schema)];
      if (m[2] === '/versions') return [200, hits.map((v) => ({ subject: v.subject, version: v.version }))];
      if (m[2] === '/subjects') return [200, hits.map((v) => v.subject)];
      return [200, { schema: hits[0]!.schema }];
    }
    return null;
  }
  if (method === 'POST' && (m = /^\/subjects\/([^/]+)$/.exec(path))) {
    // lookup: is this schema registered under the subject? (serializers that do not register ask this)
    const all = bySubject(m[1]!);
    if (!all.length) return notFound(40401, 'Subject not found.');
    const want = canonical((body as { schema?: string } | null)?.schema);
    const hit = all.find((v) => canonical(v.schema) === want);
    return hit ? [200, full(hit)] : notFound(40403, 'Schema not found');
  }
  if (method === 'POST' || method === 'PUT' || method === 'DELETE')
    return [
      405,
      {
        error_code: 405,
        message:
          "This registry serves Cordon's schemas read-only; change schemas/avro and schemas/manifest.json instead.",
      },
    ];
  return null;
}

function canonical(schema: string | undefined): string {
  try {
    return JSON.stringify(JSON.parse(schema ?? ''));
  } catch {
    return '';
  }
}

/** Serve the read API on host:port (0: any free port); resolves once listening. */
export async function serveSchemas(host: string, port: number): Promise<{ server: Server; url: string }> {
  const versions = registryVersions();
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size <= 1 << 20) chunks.push(c);
    });
    req.on('end', () => {
      let body: unknown = null;
      try {
        body = chunks.length ? JSON.parse(Buffer.concat(chunks).toString('utf8')) : null;
      } catch {
        body = null;
      }
      let reply: Reply | null;
      try {
        reply =
          size > 1 << 20
            ? [413, { error_code: 413, message: 'Request too large' }]
            : registryRoute(versions, req.method ?? 'GET', req.url ?? '/', body);
      } catch {
        reply = [400, { error_code: 400, message: 'Bad request' }];
      }
      const [status, payload] = reply ?? [404, { error_code: 404, message: 'HTTP 404 Not Found' }];
      res.writeHead(status, { 'content-type': CONTENT_TYPE });
      res.end(JSON.stringify(payload));
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const a = server.address() as AddressInfo;
  return { server, url: `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}` };
}

/**
 * Write every subject's versions into a Confluent-compatible registry with Cordon's ids:
 * the subject is put in IMPORT mode for the writes (registries assign ids themselves
 * otherwise) and back to READWRITE after. A version already there with the same id is fine;
 * one with another id is an error (records carry Cordon's ids, the registry would not find them).
 */
export async function registerSchemas(
  url: string,
  opts: { headers?: Record<string, string> } = {},
): Promise<{ registered: number; present: number }> {
  const base = url.replace(/\/+$/, '');
  const call = async (method: string, path: string, body?: unknown): Promise<{ status: number; json: any }> => {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: { 'content-type': CONTENT_TYPE, accept: CONTENT_TYPE, ...opts.headers },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
    const text = await res.text();
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = text;
    }
    return { status: res.status, json };
  };
  let registered = 0;
  let present = 0;
  const bySubject = new Map<string, RegistryVersion[]>();
  for (const v of registryVersions()) bySubject.set(v.subject, [...(bySubject.get(v.subject) ?? []), v]);
  for (const [subject, versions] of bySubject) {
    const s = encodeURIComponent(subject);
    let moded = false;
    try {
      for (const v of versions) {
        const found = await call('POST', `/subjects/${s}`, { schema: v.schema });
        if (found.status === 200) {
          if (found.json?.id !== v.id)
            throw ERR_SCHEMAS_REGISTER(
              url,
              `${subject} version ${v.version} is registered with id ${found.json?.id}, Cordon's records carry ${v.id}`,
            );
          present++;
          continue;
        }
        if (!moded) {
          const m = await call('PUT', `/mode/${s}`, { mode: 'IMPORT' });
          if (m.status >= 300)
            throw ERR_SCHEMAS_REGISTER(
              url,
              `the registry refused IMPORT mode for ${subject} (HTTP ${m.status}: ${JSON.stringify(m.json)}); Cordon's fixed ids need it`,
            );
          moded = true;
        }
        const r = await call('POST', `/subjects/${s}/versions`, {
          schemaType: 'AVRO',
          schema: v.schema,
          id: v.id,
          version: v.version,
        });
        if (r.status >= 300)
          throw ERR_SCHEMAS_REGISTER(
            url,
            `${subject} version ${v.version} (id ${v.id}): HTTP ${r.status} ${JSON.stringify(r.json)}`,
          );
        if (r.json?.id !== undefined && r.json.id !== v.id)
          throw ERR_SCHEMAS_REGISTER(url, `${subject} got id ${r.json.id}, not ${v.id}`);
        registered++;
      }
    } finally {
      if (moded) await call('PUT', `/mode/${s}`, { mode: 'READWRITE' });
    }
  }
  return { registered, present };
}

export async function schemasServeCommand(inv: Invocation): Promise<number> {
  const listen = inv.str('listen')!;
  const i = listen.lastIndexOf(':');
  const host = listen.slice(0, i).replace(/^\[|\]$/g, '') || '127.0.0.1';
  const port = Number(listen.slice(i + 1));
  const { server, url } = await serveSchemas(host, port);
  const ctx = contextFrom(inv);
  ctx.log.info(
    { url, subjects: new Set(registryVersions().map((v) => v.subject)).size },
    "Serving Cordon's schemas with the schema registry read API.",
  );
  out(url);
  await new Promise<void>((resolve) => {
    const stop = () => server.close(() => resolve());
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
  });
  return 0;
}

export async function schemasRegisterCommand(inv: Invocation): Promise<number> {
  const url = inv.str('registry')!;
  const r = await registerSchemas(url);
  out(JSON.stringify({ registry: url, ...r }));
  return 0;
}
