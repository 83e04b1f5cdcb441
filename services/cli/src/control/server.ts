import { chmodSync, lstatSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { childContext, describeError, type Context } from '@cordon/runtime';
import type { Bus } from '@cordon/bus';
import type { Store } from '@cordon/store';
import {
  ERR_CONTROL_BAD_REQUEST,
  ERR_CONTROL_NOT_FOUND,
  ERR_CONTROL_NOT_READY,
  ERR_CONTROL_REQUEST_TOO_LARGE,
} from '../errors.js';
import { OPS } from '../ops.js';
import {
  controlSocketPath,
  MAX_REQUEST_BYTES,
  OP_INPUTS,
  PROTOCOL_PREFIX,
  type InstanceState,
  type OpEvent,
  type OpName,
  type StatusReply,
} from './protocol.js';

export interface ControlServerDeps {
  ctx: Context;
  dataDir: string;
  version: string;
  bus: () => Promise<Bus>;
  readStore: () => Promise<Store>;
}

export interface ControlServer {
  readonly path: string;
  setState(state: InstanceState): void;
  close(): Promise<void>;
}

/** Most clients at once: a terminal or two, a script; more is a runaway loop, not an analyst. */
const MAX_CONNECTIONS = 32;

/**
 * The data dir is the instance's alone: 0700, so nobody else reaches the socket in it. A dir
 * made looser by hand is tightened (and said so) when it is ours; if it is not ours the
 * socket's own mode still keeps others out.
 */
function privateDir(dir: string, ctx: Context): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = statSync(dir);
  if ((st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) {
    chmodSync(dir, 0o700);
    ctx.log.info(
      { dataDir: dir, was: (st.mode & 0o777).toString(8) },
      "The data dir was readable by others; it is now the owner's alone (0700).",
    );
  }
}

function sendError(res: ServerResponse, status: number, err: unknown): void {
  const { code, message } = describeError(err);
  if (res.headersSent) {
    res.end(`${JSON.stringify({ error: { code, message } })}\n`);
    return;
  }
  const body = JSON.stringify({ error: { code, message } });
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(body),
    connection: 'close',
  });
  res.end(body);
}

/** The body, refused past MAX_REQUEST_BYTES whether or not a content-length announced it. */
function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const announced = Number(req.headers['content-length'] ?? 0);
    if (announced > MAX_REQUEST_BYTES) {
      reject(ERR_CONTROL_REQUEST_TOO_LARGE(MAX_REQUEST_BYTES));
      return;
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_REQUEST_BYTES) {
        req.removeAllListeners('data');
        req.pause();
        reject(ERR_CONTROL_REQUEST_TOO_LARGE(MAX_REQUEST_BYTES));
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

/**
 * Open `<dataDir>/control.sock` (see protocol.ts). Called by the process that holds the data
 * dir's lock, so a socket file already there is a crashed instance's and is replaced.
 */
export async function startControlServer(deps: ControlServerDeps): Promise<ControlServer> {
  const ctx = childContext(deps.ctx, 'control');
  const path = controlSocketPath(deps.dataDir);
  privateDir(deps.dataDir, ctx);
  let state: InstanceState = 'starting';
  const startedAt = new Date().toISOString();
  const running = new Set<AbortController>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = req.url ?? '/';
    if (url === `${PROTOCOL_PREFIX}/status`) {
      if (req.method !== 'GET') return sendError(res, 405, ERR_CONTROL_NOT_FOUND(req.method ?? '?', url));
      const status: StatusReply = { pid: process.pid, state, dataDir: deps.dataDir, version: deps.version, startedAt };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(status));
      return;
    }
    const m = new RegExp(`^${PROTOCOL_PREFIX}/op/([a-z-]+)$`).exec(url);
    const name = m?.[1] as OpName | undefined;
    if (!name || !Object.hasOwn(OP_INPUTS, name))
      return sendError(res, 404, ERR_CONTROL_NOT_FOUND(req.method ?? '?', url));
    if (req.method !== 'POST') return sendError(res, 405, ERR_CONTROL_NOT_FOUND(req.method ?? '?', url));
    let input: unknown;
    try {
      const body = await readBody(req);
      if (!/^application\/json\b/.test(req.headers['content-type'] ?? ''))
        throw ERR_CONTROL_BAD_REQUEST('the body must be application/json');
      try {
        input = JSON.parse(body.toString('utf8'));
      } catch (err) {
        throw ERR_CONTROL_BAD_REQUEST.withCause(err, `the body is not JSON (${(err as Error).message})`);
      }
      const parsed = OP_INPUTS[name].safeParse(input);
      if (!parsed.success) {
        throw ERR_CONTROL_BAD_REQUEST(
          parsed.error.issues.map((i) => `${i.path.join('.') || 'body'}: ${i.message}`).join('; '),
        );
      }
      input = parsed.data;
    } catch (err) {
      return sendError(res, ERR_CONTROL_REQUEST_TOO_LARGE.is(err) ? 413 : 400, err);
    }
    if (state !== 'ready') return sendError(res, 503, ERR_CONTROL_NOT_READY(state));

    const abort = new AbortController();
    running.add(abort);
    res.on('close', () => abort.abort());
    res.writeHead(200, { 'content-type': 'application/x-ndjson', 'cache-control': 'no-store' });
    const emit = (ev: OpEvent) => {
      if (!res.writableEnded) res.write(`${JSON.stringify(ev)}\n`);
    };
    ctx.log.debug({ op: name }, 'Control request.');
    try {
      const run = OPS[name] as (d: Parameters<(typeof OPS)['query']>[0], i: unknown) => Promise<unknown>;
      const done = await run(
        { ctx: deps.ctx, dataDir: deps.dataDir, bus: deps.bus, readStore: deps.readStore, emit, signal: abort.signal },
        input,
      );
      emit({ done: done ?? null });
    } catch (err) {
      const { code, message } = describeError(err);
      ctx.log.info({ op: name, code }, 'A control request failed.');
      emit({ error: { code, message } });
    } finally {
      running.delete(abort);
      res.end();
    }
  };

  const server = createServer({ requestTimeout: 30_000, headersTimeout: 10_000 }, (req, res) => {
    handle(req, res).catch((err: unknown) => sendError(res, 500, err));
  });
  server.maxConnections = MAX_CONNECTIONS;
  rmSync(path, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ path, readableAll: false, writableAll: false }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  chmodSync(path, 0o600);
  const st = lstatSync(path);
  ctx.log.debug({ path, mode: (st.mode & 0o777).toString(8) }, 'The control socket is open.');

  return {
    path,
    setState(s) {
      state = s;
    },
    async close() {
      state = 'stopping';
      for (const a of running) a.abort();
      server.closeIdleConnections();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        // a client that keeps a response open (alerts tail --follow) has been aborted above
        setTimeout(() => {
          server.closeAllConnections();
          resolve();
        }, 2_000).unref();
      });
      rmSync(path, { force: true });
    },
  };
}
