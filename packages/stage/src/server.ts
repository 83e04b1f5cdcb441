import { createServer, type Server } from 'node:http';
import type { Logger } from '@cordon/runtime';
import { ERR_METRICS_ADDR } from './errors.js';
import type { StageTelemetry } from './telemetry.js';

export const DEFAULT_METRICS_ADDR = '127.0.0.1:9464';

/** `HOST:PORT`, `[v6]:PORT` or `off` → where to listen, or null. */
export function parseMetricsAddr(addr: string): { host: string; port: number } | null {
  if (addr === 'off') return null;
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):(\d{1,5})$/.exec(addr);
  const port = Number(m?.[3]);
  if (!m || !(port >= 0 && port <= 65535)) throw ERR_METRICS_ADDR(addr);
  return { host: m[1] ?? m[2]!, port };
}

export interface MetricsServer {
  /** Where it listens, e.g. `http://127.0.0.1:9464/metrics`. */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Prometheus text format at `/metrics` (and `/healthz`). A port in use is reported and
 * skipped, not fatal: metrics must never keep a stage from protecting anything.
 */
export async function startMetricsServer(
  addr: string,
  telemetry: StageTelemetry,
  log: Logger,
): Promise<MetricsServer | null> {
  const where = parseMetricsAddr(addr);
  if (!where) return null;
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      return;
    }
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    telemetry.text().then(
      (body) => res.writeHead(200, { 'content-type': telemetry.contentType }).end(body),
      (err: unknown) => {
        log.error({ err }, 'Metrics could not be collected.');
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics could not be collected\n');
      },
    );
  });
  server.keepAliveTimeout = 5_000;
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(where.port, where.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (err) {
    log.warn(
      { err, addr },
      'The metrics endpoint could not listen; going on without it (set --metrics-addr or "off").',
    );
    return null;
  }
  server.unref();
  const a = server.address();
  const port = typeof a === 'object' && a ? a.port : where.port;
  const host = where.host.includes(':') ? `[${where.host}]` : where.host;
  return {
    url: `http://${host}:${port}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
